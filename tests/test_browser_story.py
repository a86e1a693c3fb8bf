"""The whole story in a real browser (Debian's headless Chromium, driven by Playwright; no browser download).

A customer complains angrily in the demo shop's widget, the bot recovers and hands over, an agent
logs in, sees the case history and suggestions, sends one with a click, the customer sees it,
and a reload keeps the conversation. HTML/JS payloads go both ways and never execute.
Screenshots land in var/screenshots/.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from bot.casedb.engine import session_scope
from bot.casedb.models import Account, ChatConversation
from bot.gateway.accounts import create_account
from bot.services import wait_for
from bot.settings import PROJECT_ROOT

CHROMIUM = os.environ.get("MEND_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = PROJECT_ROOT / "var" / "screenshots"
PORT = 5380
PASSWORD = "a browser test password"
CUSTOMER_XSS = '<img src=x onerror="window.__xss=1">is anyone there?'
AGENT_XSS = '<script>window.__xss=2</script><img src=x onerror="window.__xss=3"> (html stays text)'


@pytest.fixture(scope="module")
def site(live_bot, tmp_path_factory):
    """The gateway as its own process, in front of the live bot."""
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    url = live_bot.case_db_url
    with session_scope(url) as session:
        session.query(ChatConversation).update({"status": "closed", "assigned_agent": None})
        if session.query(Account).filter(Account.username == "bea").first() is None:
            create_account(session, "bea", PASSWORD, "agent", "Bea")
            create_account(session, "tia", PASSWORD, "trainer", "Tia")
    work = tmp_path_factory.mktemp("browser")
    log = work / "gateway.log"
    env = dict(os.environ, MEND_DATABASE_URL=url, MEND_RASA_URL=live_bot.rasa_url, RASA_TELEMETRY_ENABLED="false",
               MEND_CUSTOMER_TOKEN_SECRET="browser-test-token-secret-long-enough-123456",
               MEND_SESSION_SECRET="browser-test-session-secret-long-enough-123456",
               MEND_TRAINER_EXPORT_DIR=str(work / "trainer"),
               PYTHONPATH=str(PROJECT_ROOT))
    process = subprocess.Popen([sys.executable, "-m", "bot", "gateway", "--port", str(PORT)], cwd=PROJECT_ROOT,
                               env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{PORT}/healthz", 60, process)
        yield type("Site", (), {"url": f"http://127.0.0.1:{PORT}", "exports": work / "trainer",
                                "__str__": lambda self: self.url})()
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


def _log_in(page, url: str, username: str) -> None:
    """Open a staff page: the login form comes first and leads back to it."""
    page.goto(url)
    assert "/login" in page.url
    page.fill('input[name="username"]', username)
    page.fill('input[name="password"]', PASSWORD)
    page.locator('button[type="submit"]').click()
    page.wait_for_url("**" + url[url.index("/", 8):])


def _staff_page(browser, url: str, username: str, **context_options):
    """A new browser context with a staff member logged in on ``url``; returns (context, page)."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, **context_options)
    page = context.new_page()
    _log_in(page, url, username)
    return context, page


def _widget_messages(page, sender: str):
    return page.locator(f'[data-testid="message"][data-sender="{sender}"]')


def test_customer_and_agent_story_in_a_real_browser(site, browser):
    customer_context = browser.new_context(viewport={"width": 1280, "height": 860})
    customer = customer_context.new_page()
    customer.goto(site.url + "/?as=cust-1001")
    customer.locator('[data-testid="launcher"]').click()
    box = customer.locator('[data-testid="input"]')
    box.fill("This is RIDICULOUS. Where are my headphones?? The delivery was promised days ago and still nothing!!")
    box.press("Enter")
    customer.locator('[data-testid="quick-reply"]').first.wait_for(timeout=90_000)
    bot_text = " ".join(_widget_messages(customer, "bot").all_inner_texts())
    assert "A1001" in bot_text and "No need to explain again" in bot_text
    customer.screenshot(path=str(SHOTS / "01-customer-bot-recovers.png"))

    box.fill("No. I want to talk to a person.")
    box.press("Enter")
    customer.get_by_text("colleague", exact=False).first.wait_for(timeout=60_000)

    agent_context, agent = _staff_page(browser, site.url + "/console", "bea")
    item = agent.locator('[data-testid="queue-waiting"] [data-testid="queue-item"]').filter(has_text="Dana")
    item.first.wait_for(timeout=30_000)
    item.first.click()
    history = agent.locator('[data-testid="history"]')
    history.get_by_text("A1001", exact=False).first.wait_for(timeout=30_000)
    assert "CASE-501" in history.inner_text()
    assert "CASE-501" in agent.locator('[data-testid="handoff-summary"]').inner_text()
    agent.locator('[data-testid="suggestion"]').first.wait_for(timeout=30_000)
    assert agent.locator('[data-testid="message"][data-sender="customer"] [data-testid="cue"]').count() > 0
    # What the bot did, from Rasa's tracker: how it read the customer, and which policy chose each action.
    readings = agent.locator('[data-testid="activity-item"][data-kind="reading"]')
    readings.filter(has_text="frustration angry").first.wait_for(timeout=30_000)
    assert "chosen by " in agent.locator('[data-testid="activity-item"][data-kind="action"]').first.inner_text()
    readings_before = readings.count()
    agent.locator('[data-testid="take-over"]').click()
    customer.get_by_text("Bea", exact=False).first.wait_for(timeout=30_000)
    agent.screenshot(path=str(SHOTS / "02-agent-console-after-takeover.png"))

    # The customer's HTML arrives as text in the console and runs nowhere.
    box.fill(CUSTOMER_XSS)
    box.press("Enter")
    agent.locator('[data-testid="transcript"]').get_by_text(CUSTOMER_XSS).wait_for(timeout=30_000)
    # One process, no event broker: the list is read again when the conversation changes, so the new
    # message's reading shows up (and the customer's text is in the transcript only, never in the list).
    agent.wait_for_function("n => document.querySelectorAll('[data-testid=activity-item][data-kind=reading]')"
                            ".length > n", arg=readings_before, timeout=30_000)
    assert "<img" not in agent.locator('[data-testid="activity"]').inner_text()
    agent.locator('[data-testid="activity"]').screenshot(path=str(SHOTS / "08-agent-what-the-bot-did.png"))
    agent.locator('[data-testid="suggestion-send"]:not([disabled])').first.wait_for(timeout=30_000)
    # Read and click in one step in the page: the suggestions for the customer's newest message may replace
    # the list at any moment (they did, between a read and a click), and the customer must get what was clicked.
    suggested_text, why = agent.locator('[data-testid="suggestion"]').first.evaluate(
        "el => { const text = el.querySelector('.suggestion-text').innerText;"
        " const why = el.querySelector('[data-testid=\"suggestion-why\"]').innerText;"
        " el.querySelector('[data-testid=\"suggestion-send\"]').click(); return [text, why]; }")
    assert why.startswith("Why: ")
    # What was clicked reaches the customer (a custom action's suggestion runs the action: its reply may come as
    # several messages, the last ending as the suggestion does).
    _widget_messages(customer, "agent").filter(has_text=" ".join(suggested_text.split())[-40:]).first.wait_for(
        timeout=30_000)

    composer = agent.locator('[data-testid="composer-input"]')
    composer.fill(AGENT_XSS)
    agent.locator('[data-testid="composer-send"]').click()
    _widget_messages(customer, "agent").filter(has_text="html stays text").first.wait_for(timeout=30_000)
    assert AGENT_XSS in _widget_messages(customer, "agent").last.inner_text()
    assert customer.evaluate("window.__xss") is None and agent.evaluate("window.__xss") is None
    agent.screenshot(path=str(SHOTS / "03-agent-console-replied.png"))
    customer.screenshot(path=str(SHOTS / "04-customer-sees-agent.png"))

    # A reload keeps the whole conversation (history comes back from the server).
    before = _widget_messages(customer, "agent").count()
    customer.reload()
    if not customer.locator('[data-testid="panel"]').is_visible():
        customer.locator('[data-testid="launcher"]').click()
    _widget_messages(customer, "agent").nth(before - 1).wait_for(timeout=30_000)
    assert _widget_messages(customer, "customer").first.inner_text().startswith("This is RIDICULOUS")
    assert customer.evaluate("window.__xss") is None
    customer.screenshot(path=str(SHOTS / "05-customer-after-reload.png"))

    # Hand back: the customer is told, and the bot answers again.
    agent.locator('[data-testid="hand-back"]').click()
    customer.get_by_text("assistant is back", exact=False).first.wait_for(timeout=30_000)
    agent_context.close()
    customer_context.close()


def _settled_box(locator, timeout_s: float = 5.0) -> dict:
    """The element's box once two readings 100 ms apart agree (CSS transitions have finished)."""
    deadline = time.monotonic() + timeout_s
    box = locator.bounding_box()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        again = locator.bounding_box()
        if again == box:
            return box
        box = again
    return box


def test_widget_is_usable_at_phone_width_and_by_keyboard(site, browser):
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(site.url + "/")
    launcher = page.locator('[data-testid="launcher"]')
    assert launcher.get_attribute("aria-label") and launcher.get_attribute("aria-expanded") == "false"
    launcher.focus()
    page.keyboard.press("Enter")
    panel = page.locator('[data-testid="panel"]')
    panel.wait_for()
    size = _settled_box(panel)  # measured once the opening animation is over, as the customer sees it
    assert size["width"] >= 370 and size["height"] >= 700
    assert page.evaluate("document.activeElement.id") == "mend-widget"  # focus went into the widget
    page.keyboard.type("hello, I have a question about my order")
    page.keyboard.press("Enter")
    _widget_messages(page, "bot").first.wait_for(timeout=60_000)
    page.screenshot(path=str(SHOTS / "06-phone-width.png"))
    page.keyboard.press("Escape")
    assert not panel.is_visible()
    context.close()


def test_trainer_replays_a_story_marks_a_wrong_turn_and_exports_it(site, browser):
    context, page = _staff_page(browser, site.url + "/trainer", "tia", reduced_motion="reduce")
    item = page.locator('[data-testid="item"][data-kind="story"]').filter(has_text="calm, full playbook")
    item.first.wait_for(timeout=30_000)
    item.first.click()
    status = page.locator('[data-testid="replay-status"]')
    status.filter(has_text="passed").wait_for(timeout=60_000)
    page.locator('[data-testid="step-forward"]').click()
    page.locator('[data-testid="step-forward"]').click()
    assert "3" in page.locator('[data-testid="turn-indicator"]').inner_text()
    rows = page.locator('[data-testid="action-row"]')
    assert rows.count() >= 3 and rows.first.get_attribute("data-diverged") == "false"
    assert "action_handle_complaint" in rows.first.inner_text() and "RulePolicy" in rows.first.inner_text()
    assert page.locator('[data-testid="conformance"]').get_by_text("acknowledge", exact=False).count() > 0
    page.locator('[data-testid="frustration-chart"]').wait_for()
    wrong = page.locator('[data-testid="action-row"][data-step="2"]')
    wrong.locator('[data-testid="mark-wrong"]').click()
    wrong.locator('[data-testid="correct-action"]').select_option("action_handoff")
    page.locator('[data-testid="export-name"]').fill("calm delivery should hand over")
    page.locator('[data-testid="export-save"]').click()
    page.locator('[data-testid="export-result"]').filter(has_text="test_calm_delivery_should_hand_over.yml").wait_for(
        timeout=30_000)
    saved = site.exports / "test_calm_delivery_should_hand_over.yml"
    assert "action: action_handoff" in saved.read_text(encoding="utf-8")
    page.screenshot(path=str(SHOTS / "07-trainer-replay-and-export.png"))
    context.close()
