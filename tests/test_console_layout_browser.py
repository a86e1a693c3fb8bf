"""The agent console as a support team works in it, in a real browser (Debian's Chromium):
a "/" canned reply filled from the case and sent, the transcript getting most of the height at
1280x800, a new customer message rated live, the queue filters, the admins' canned-replies
dialog, and the console at 390 px. Screenshots land in var/screenshots/.

Rasa is tests/fake_rasa.py (no trained model needed); the gateway runs as its own process."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from bot.casedb.engine import session_scope
from bot.gateway import canned
from bot.gateway.accounts import create_account
from bot.services import wait_for
from bot.settings import PROJECT_ROOT
from tests.conftest import _reset
from tests.fake_rasa import FakeRasaThread
from tests.test_browser_story import CHROMIUM, SHOTS, browser  # noqa: F401 - the browser fixture

BASE = int(os.environ.get("MEND_TEST_PORT_BASE", "5305"))
PASSWORD = "a browser test password"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    work = tmp_path_factory.mktemp("console")
    url = f"sqlite:///{work / 'mend.db'}"
    _reset(url)
    with session_scope(url) as session:
        canned.seed_defaults(session)
        create_account(session, "ada", PASSWORD, "admin", "Ada Lovelace")
    port = BASE + 21
    with FakeRasaThread(BASE + 11) as rasa:
        env = dict(os.environ, MEND_DATABASE_URL=url, MEND_RASA_URL=rasa.url, RASA_TELEMETRY_ENABLED="false",
                   MEND_CUSTOMER_TOKEN_SECRET="console-test-token-secret-long-enough-123456",
                   MEND_SESSION_SECRET="console-test-session-secret-long-enough-123456",
                   MEND_TRAINER_EXPORT_DIR=str(work / "trainer"), PYTHONPATH=str(PROJECT_ROOT))
        process = subprocess.Popen([sys.executable, "-m", "bot", "gateway", "--port", str(port)], cwd=PROJECT_ROOT,
                                   env=env, stdout=open(work / "gateway.log", "w"), stderr=subprocess.STDOUT)
        try:
            wait_for(f"http://127.0.0.1:{port}/healthz", 60, process)
            yield type("Site", (), {"url": f"http://127.0.0.1:{port}"})()
        finally:
            process.terminate()
            process.wait(timeout=20)


def _login(browser, url: str, width: int, height: int):
    context = browser.new_context(viewport={"width": width, "height": height}, reduced_motion="reduce")
    page = context.new_page()
    page.goto(url + "/console")
    assert "/login" in page.url
    page.fill('input[name="username"]', "ada")
    page.fill('input[name="password"]', PASSWORD)
    page.locator('button[type="submit"]').click()
    page.wait_for_url("**/console")
    return context, page


def test_the_console_as_a_team_works_in_it(site, browser):  # noqa: F811 - pytest fixture
    customer_context = browser.new_context(viewport={"width": 1000, "height": 800})
    customer = customer_context.new_page()
    customer.goto(site.url + "/?as=cust-1001")
    customer.locator('[data-testid="launcher"]').click()
    box = customer.locator('[data-testid="input"]')
    box.fill("I want to talk to a person please")
    box.press("Enter")
    customer.get_by_text("colleague", exact=False).first.wait_for(timeout=30_000)

    # A calm guest chatting with the bot: a card the "angry only" filter hides.
    guest_context = browser.new_context()
    guest = guest_context.new_page()
    guest.goto(site.url + "/")
    guest.locator('[data-testid="launcher"]').click()
    guest.locator('[data-testid="input"]').fill("hello, a quick question about sizes")
    guest.locator('[data-testid="input"]').press("Enter")
    guest.get_by_text("looking into it", exact=False).first.wait_for(timeout=30_000)

    context, agent = _login(browser, site.url, 1280, 800)
    item = agent.locator('[data-testid="queue-waiting"] [data-testid="queue-item"]').filter(has_text="Dana")
    item.first.click()
    agent.locator('[data-testid="take-over"]').click()
    composer = agent.locator('[data-testid="composer-input"]')
    agent.locator('[data-testid="composer-input"]:not([disabled])').wait_for(timeout=30_000)

    # "/tr" opens the picker; Enter puts the filled reply in the composer, unsent.
    composer.click()
    composer.type("/tr")
    picker = agent.locator('[data-testid="canned-picker"]')
    picker.locator('[data-testid="canned-option"][data-shortcut="track"]').wait_for(timeout=10_000)
    assert picker.locator('[data-testid="canned-option"]').count() == 1
    agent.screenshot(path=str(SHOTS / "22b-console-canned-picker.png"))
    composer.press("Enter")
    expect(composer).to_have_value(re.compile("SS48213377"), timeout=10_000)
    text = composer.input_value()
    assert text.startswith("Your order A1001 (noise-cancelling headphones) is with SwiftShip") and "{" not in text
    assert not picker.is_visible()
    assert customer.locator('[data-testid="message"][data-sender="agent"]').count() == 0  # not sent yet
    agent.locator('[data-testid="composer-send"]').click()
    sent = customer.locator('[data-testid="message"][data-sender="agent"]').filter(has_text="SS48213377")
    sent.wait_for(timeout=30_000)

    # A new customer message gets its rating live (no reload).
    box.fill("WHERE IS IT?? this is the THIRD TIME I ask!!")
    box.press("Enter")
    last = agent.locator('[data-testid="message"][data-sender="customer"]').last
    last.locator('[data-testid="frustration-badge"][data-level="angry"]').wait_for(timeout=30_000)
    assert last.locator('[data-testid="cue"]').count() >= 2
    box.fill("I AM FURIOUS!! THIRD TIME!!")
    box.press("Enter")
    # The queue card follows the conversation's level (it was calm when the customer asked for a person).
    agent.locator('[data-testid="queue-mine"] [data-testid="queue-item"][data-level="angry"]').wait_for(timeout=30_000)
    # The chart says the conversation's level, the same one as the queue card (the tracker's), and
    # calls its dots what they are: each message's own reading.
    agent.locator('[data-testid="frustration-chart"][data-level="angry"]').wait_for(timeout=30_000)
    expect(agent.locator(".chart-summary")).to_contain_text("last message")

    # The transcript gets most of the height at 1280x800.
    agent.screenshot(path=str(SHOTS / "22-console-canned-1280.png"))
    box_ = agent.locator('[data-testid="transcript"]').bounding_box()
    assert box_["height"] >= 0.5 * 800, box_

    # Filters: "angry only" hides the calm guest card; back to everything shows it again.
    live_guest = agent.locator('[data-testid="queue-item"][data-guest="true"]')
    live_guest.first.wait_for(timeout=30_000)
    agent.locator('[data-testid="queue-filter-show"]').select_option("angry")
    visible = agent.locator('[data-testid="queue-item"]:visible')
    assert visible.count() >= 1
    assert all(level == "angry" for level in
               [visible.nth(i).get_attribute("data-level") for i in range(visible.count())])
    assert not live_guest.first.is_visible()
    assert "Showing" in agent.locator('[data-testid="queue-filter-status"]').inner_text()
    agent.locator('[data-testid="queue-filter-show"]').select_option("all")
    assert live_guest.first.is_visible()

    # The admins' dialog: a bad placeholder is refused clearly, a good reply is added and offered.
    agent.locator('[data-testid="canned-admin-open"]').click()
    dialog = agent.locator('[data-testid="canned-admin"]')
    dialog.locator('[data-testid="canned-admin-item"][data-shortcut="hello"]').wait_for(timeout=10_000)
    dialog.locator('[data-testid="canned-shortcut"]').fill("refund")
    dialog.locator('[data-testid="canned-title"]').fill("Refund sent")
    dialog.locator('[data-testid="canned-text"]').fill("<b>Refund</b> for {order_id} of {amount} sent.")
    dialog.locator('[data-testid="canned-save"]').click()
    error = dialog.locator('[data-testid="canned-admin-error"]')
    error.wait_for(timeout=10_000)
    assert "{amount}" in error.inner_text()
    dialog.locator('[data-testid="canned-text"]').fill("<b>Refund</b> for {order_id} sent.")
    dialog.locator('[data-testid="canned-save"]').click()
    dialog.locator('[data-testid="canned-admin-item"][data-shortcut="refund"]').wait_for(timeout=10_000)
    agent.screenshot(path=str(SHOTS / "24-console-canned-admin.png"))
    dialog.locator('[data-testid="canned-admin-close"]').click()
    composer.fill("")
    composer.type("/ref")
    composer.press("Tab")
    expect(composer).to_have_value(re.compile("A1001"), timeout=10_000)
    assert composer.input_value() == "<b>Refund</b> for A1001 sent."  # text, as the admin wrote it
    assert agent.locator("b").filter(has_text="Refund").count() == 0

    # A guest: what the case cannot fill stays visible, is named, and is selected for the agent to type over.
    composer.fill("")
    agent.locator('[data-testid="queue-live"] [data-testid="queue-item"][data-guest="true"]').first.click()
    agent.locator('[data-testid="take-over"]').click()
    agent.locator('[data-testid="composer-input"]:not([disabled])').wait_for(timeout=30_000)
    composer.type("/hel")
    agent.locator('[data-testid="canned-option"][data-shortcut="hello"]').wait_for(timeout=10_000)
    composer.press("Enter")
    expect(composer).to_have_value(re.compile(r"^Hi \[first name\], this is Ada from"), timeout=10_000)
    missing = agent.locator('[data-testid="canned-missing"]')
    expect(missing).to_have_text(re.compile(r"\[first name\]"))
    composer.type("Robin")  # replaces the selected gap
    assert composer.input_value().startswith("Hi Robin, this is Ada")
    context.close()

    # 390 px: one pane at a time; the queue, the conversation and the case are each a tap away.
    phone_context, phone = _login(browser, site.url, 390, 844)
    phone.locator('[data-testid="pane-tabs"]').wait_for()
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width  # nothing sticks out sideways
    phone.locator('[data-testid="queue-item"]').filter(has_text="Dana").first.click()
    phone.locator('[data-testid="transcript"] [data-testid="message"]').first.wait_for(timeout=30_000)
    composer = phone.locator('[data-testid="composer-input"]')
    assert composer.is_visible() and composer.is_enabled()
    cbox = composer.bounding_box()
    assert cbox["y"] + cbox["height"] <= 844 and cbox["width"] >= 300
    phone.screenshot(path=str(SHOTS / "23-console-390.png"))
    phone.locator('[data-testid="pane-tab-side"]').click()
    assert phone.locator('[data-testid="history"]').is_visible()
    phone.locator('[data-testid="pane-tab-queue"]').click()
    assert phone.locator('[data-testid="queue-filter"]').is_visible()
    phone.screenshot(path=str(SHOTS / "23b-console-390-queue.png"))
    phone_context.close()
    customer_context.close()
    guest_context.close()
