"""The console's team tools in Debian's Chromium: a private note, reassigning to a colleague, search.

The gateway runs as its own process on a fresh seeded case database with Rasa down (the
conversations are already with people, so no model is needed). Screenshots land in
var/screenshots/ at 1280 px (notes) and 390 px (search).
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bot.casedb.engine import session_scope
from bot.casedb.models import ChatConversation
from bot.gateway import transcript
from bot.gateway.accounts import create_account
from bot.services import wait_for
from bot.settings import PROJECT_ROOT
from tests.conftest import _reset
from tests.test_browser_story import CHROMIUM, SHOTS, browser  # noqa: F401 (the shared fixture)

BASE = int(os.environ.get("MEND_TEST_PORT_BASE", "5305"))
PORT = BASE + 43
PASSWORD = "team browser password"
NOTE = '<img src=x onerror="window.__xss=1">Refund approved by finance; tell her Friday & apologise'
DANA, SAM = "w-team-browser-dana", "w-team-browser-sam"


def _seed(url: str) -> None:
    """Dana's conversation is Lina's; Sam waits in the queue (as the gateway leaves them after handoffs)."""
    with session_scope(url) as session:
        create_account(session, "lina", PASSWORD, "agent", "Lina")
        create_account(session, "ravi", PASSWORD, "agent", "Ravi")
        for conversation_id, customer, text in ((DANA, "cust-1001", "my headphones are late AGAIN"),
                                                (SAM, "cust-1002", "you charged my card twice")):
            transcript.open_conversation(session, conversation_id, customer)
            message, _ = transcript.add_message(session, conversation_id, "customer", text, client_id="c1")
            transcript.set_parse(session, message.id, {}, True)
        transcript.update(session, DANA, status="agent", assigned_agent="lina", last_agent="lina",
                          handoff_reason="customer_request", issue_type="delivery", case_id="CASE-501")
        transcript.update(session, SAM, status="waiting", handoff_reason="customer_request", issue_type="billing")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    work = tmp_path_factory.mktemp("team-browser")
    url = f"sqlite:///{work / 'mend.db'}"
    _reset(url)
    _seed(url)
    env = dict(os.environ, MEND_DATABASE_URL=url, MEND_RASA_URL=f"http://127.0.0.1:{BASE + 47}",
               RASA_TELEMETRY_ENABLED="false", PYTHONPATH=str(PROJECT_ROOT),
               MEND_CUSTOMER_TOKEN_SECRET="team-browser-token-secret-long-enough-123456",
               MEND_SESSION_SECRET="team-browser-session-secret-long-enough-123456",
               MEND_TRAINER_EXPORT_DIR=str(work / "trainer"))
    log = open(work / "gateway.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "bot", "gateway", "--port", str(PORT)], cwd=PROJECT_ROOT,
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{PORT}/healthz", 60, process)
        yield type("Site", (), {"url": f"http://127.0.0.1:{PORT}", "db_url": url, "log": work / "gateway.log"})()
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def _console(browser, site, username: str, width: int, height: int):
    context = browser.new_context(viewport={"width": width, "height": height}, reduced_motion="reduce")
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(site.url + "/console")
    page.fill('input[name="username"]', username)
    page.fill('input[name="password"]', PASSWORD)
    page.locator('button[type="submit"]').click()
    page.wait_for_url("**/console")
    page.locator('[data-testid="connection"][data-state="open"]').wait_for(timeout=15_000)
    return context, page, errors


def test_a_private_note_then_passing_the_conversation_to_a_colleague(site, browser):
    ravi_context, ravi, _ = _console(browser, site, "ravi", 1280, 900)
    context, page, errors = _console(browser, site, "lina", 1280, 900)
    mine = page.locator(f'[data-testid="queue-mine"] [data-conversation-id="{DANA}"]')
    mine.click()
    page.locator(".conversation-customer").filter(has_text="Dana Whitfield").wait_for()

    panel = page.locator('[data-testid="notes-panel"]')
    assert "staff only" in panel.inner_text().lower()
    page.locator('[data-testid="note-input"]').fill(NOTE)
    page.locator('[data-testid="note-add"]').click()
    note = page.locator('[data-testid="notes-list"] [data-testid="note"]')
    note.first.wait_for(timeout=10_000)
    assert note.count() == 1
    assert note.locator('[data-testid="note-text"]').inner_text() == NOTE  # shown as text, markup and all
    assert note.locator('[data-testid="note-author"]').inner_text() == "Lina"
    assert note.locator("time").count() == 1
    assert page.locator('[data-testid="notes-list"] img').count() == 0
    assert page.evaluate("window.__xss") is None
    assert page.locator('[data-testid="note-input"]').input_value() == ""
    # The note is no message: the transcript (what the customer sees) does not have it.
    assert "Refund approved by finance" not in page.locator('[data-testid="transcript"]').inner_text()
    page.screenshot(path=str(SHOTS / "20-console-notes-1280.png"))

    # An empty note is not sent: the button stays off.
    page.locator('[data-testid="note-input"]').fill("   ")
    assert page.locator('[data-testid="note-add"]').is_disabled()

    select = page.locator('[data-testid="reassign-select"]')
    select.wait_for()
    labels = select.locator("option").all_inner_texts()
    assert "Ravi" in labels and "Back to the queue" in labels and not any(l.startswith("Lina") for l in labels)
    select.select_option("ravi")
    page.locator('[data-testid="reassign-button"]').click()
    mine.wait_for(state="detached", timeout=15_000)
    page.locator('[data-testid="toast"]').filter(has_text="Passed to Ravi").wait_for()
    page.locator('[data-testid="composer-input"]:disabled').wait_for(timeout=10_000)
    assert page.locator('[data-testid="reassign"]').is_hidden()  # no longer hers to pass on

    ravi.locator('[data-testid="toast"]').filter(has_text="assigned to you").wait_for(timeout=15_000)
    ravi.locator(f'[data-testid="queue-mine"] [data-conversation-id="{DANA}"]').click()
    ravi.locator('[data-testid="notes-list"] [data-testid="note-text"]').filter(has_text="Refund approved").wait_for()
    ravi.locator('[data-testid="transcript"]').get_by_text("Ravi from our team has joined the conversation.").wait_for()
    with session_scope(site.db_url) as session:
        assert session.get(ChatConversation, DANA).assigned_agent == "ravi"
    assert errors == []
    context.close()
    ravi_context.close()


def test_searching_by_order_id_on_a_phone_and_opening_the_result(site, browser):
    context, page, errors = _console(browser, site, "lina", 390, 844)
    box = page.locator('[data-testid="search-input"]')
    box.fill("b2002")
    results = page.locator('[data-testid="search-results"] [data-testid="search-result"]')
    results.first.wait_for(timeout=10_000)
    assert results.count() == 1 and "Sam Ortiz" in results.first.inner_text()
    assert page.locator('[data-testid="queue-waiting"]').is_hidden()  # the results stand in for the queue
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing sticks out sideways
    page.screenshot(path=str(SHOTS / "21-console-search-390.png"))

    results.first.click()
    page.locator(".conversation-customer").filter(has_text="Sam Ortiz").wait_for(timeout=10_000)
    page.locator('[data-testid="transcript"]').get_by_text("you charged my card twice").wait_for()
    assert page.locator('[data-testid="reassign"]').is_hidden()  # not hers (yet): nothing to pass on
    page.locator('[data-testid="take-over"]').click()
    page.locator('[data-testid="reassign-select"]').wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(SHOTS / "21-console-search-390-taken.png"))
    page.locator('[data-testid="pane-tab-side"]').click()
    page.locator('[data-testid="note-input"]').fill("Double charge confirmed in the payment log.")
    page.locator('[data-testid="note-add"]').click()
    page.locator('[data-testid="notes-list"] [data-testid="note"]').first.wait_for()
    page.locator('[data-testid="notes-panel"]').screenshot(path=str(SHOTS / "21-console-search-390-notes.png"))

    page.locator('[data-testid="pane-tab-queue"]').click()
    box.press("Escape")
    assert box.input_value() == ""
    page.locator('[data-testid="search-results"]').wait_for(state="hidden")
    page.locator("#queue-waiting-heading").wait_for(state="visible")  # the queue is back
    box.fill("zz-nobody-zz")
    page.locator('[data-testid="search-status"]').filter(has_text="No conversation matches").wait_for()
    box.fill("%%")
    page.locator('[data-testid="search-status"]').filter(has_text="No conversation matches “%%”").wait_for()
    assert results.count() == 0
    assert errors == []
    context.close()
