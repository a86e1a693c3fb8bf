"""The widget in a real browser (Debian's headless Chromium, Playwright) while things change under it.

The header follows a handoff as it happens ("Waiting for a person", then the agent's name, then
the assistant again), a dead or frozen gateway shows as a lost connection within 2 s, and after
the gateway comes back the message typed meanwhile is delivered once and answered.
Screenshots land in var/screenshots/.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.casedb.engine import session_scope
from bot.casedb.models import Account, ChatConversation, ChatMessage
from bot.gateway.accounts import create_account
from bot.gateway.client import Staff
from bot.services import wait_for
from bot.settings import PROJECT_ROOT
from tests.test_browser_story import CHROMIUM, SHOTS, browser  # noqa: F401 (the shared Chromium fixture)

PASSWORD = "a widget browser test password"
LOST_WITHIN = 2.0  # seconds: the target


class Gateway:
    """The gateway as its own process, so the test can freeze, kill and restart it."""

    def __init__(self, live_bot, port: int, log_path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.env = dict(os.environ, MEND_DATABASE_URL=live_bot.case_db_url, MEND_RASA_URL=live_bot.rasa_url,
                        MEND_RASA_TOKEN=live_bot.rasa_token, RASA_TELEMETRY_ENABLED="false",
                        MEND_CUSTOMER_TOKEN_SECRET="widget-browser-token-secret-long-enough-123456",
                        MEND_SESSION_SECRET="widget-browser-session-secret-long-enough-123456",
                        PYTHONPATH=str(PROJECT_ROOT))
        self.process = None

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "bot", "gateway", "--port", str(self.port)],
                                        cwd=PROJECT_ROOT, env=self.env, stdout=open(self.log_path, "a"),
                                        stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(f"{self.url}/healthz", 120, self.process)

    def signal(self, sig: int) -> None:
        os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.process.wait(timeout=20)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="module")
def gateway(live_bot, tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    url = live_bot.case_db_url
    with session_scope(url) as session:
        session.query(ChatConversation).update({"status": "closed", "assigned_agent": None})
        if session.query(Account).filter(Account.username == "nora").first() is None:
            create_account(session, "nora", PASSWORD, "agent", "Nora")
    base = int(os.environ.get("MEND_TEST_PORT_BASE", "5305"))
    server = Gateway(live_bot, base + 40, tmp_path_factory.mktemp("widget") / "gateway.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _agent(base_url: str, path: str) -> int:
    """An agent acting through the console API (take over, hand back); the HTTP status."""
    async def act() -> int:
        agent = Staff(base_url)
        try:
            assert await agent.login("nora", PASSWORD) == 302
            status, _ = await agent.post(path)
            return status
        finally:
            await agent.close()
    with ThreadPoolExecutor(1) as thread:  # Playwright's sync API keeps an event loop running in this one
        return thread.submit(asyncio.run, act()).result(timeout=120)


def _conversation_id(case_db_url: str, customer_id: str) -> str:
    with session_scope(case_db_url) as session:
        return session.query(ChatConversation).filter(ChatConversation.customer_id == customer_id,
                                                      ChatConversation.status != "closed") \
            .order_by(ChatConversation.created_at.desc()).first().id


def _stored(case_db_url: str, conversation_id: str, text: str) -> int:
    with session_scope(case_db_url) as session:
        return session.query(ChatMessage).filter(ChatMessage.conversation_id == conversation_id,
                                                 ChatMessage.sender == "customer", ChatMessage.text == text).count()


WATCH_LOST = """() => {
  const banner = document.getElementById('mend-widget').shadowRoot.querySelector('[data-testid=connection]');
  window.__lostAt = null;
  const seen = () => { if (!banner.hidden && banner.textContent.includes('Connection lost') && !window.__lostAt)
                         window.__lostAt = Date.now(); };
  new MutationObserver(seen).observe(banner, {attributes: true, childList: true, subtree: true, characterData: true});
}"""


def _seconds_until_shown(page, locator, since_wall: float, timeout_s: float = 10.0) -> float:
    """When the page itself showed "Connection lost" (its clock, recorded as it happened), after ``since_wall``."""
    locator.filter(has_text="Connection lost").wait_for(state="visible", timeout=timeout_s * 1000)
    return page.evaluate("window.__lostAt") / 1000 - since_wall


def test_header_follows_the_handoff_and_a_lost_connection_shows_within_two_seconds(gateway, live_bot, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.goto(gateway.url + "/?as=cust-1002")
    page.locator('[data-testid="launcher"]').click()
    status = page.locator('[data-testid="status"]')
    box = page.locator('[data-testid="input"]')
    bot = page.locator('[data-testid="message"][data-sender="bot"]')

    box.fill("I was charged twice for order B2002")
    box.press("Enter")
    bot.first.wait_for(timeout=90_000)
    assert status.inner_text() == "Mend assistant"
    conversation_id = _conversation_id(live_bot.case_db_url, "cust-1002")

    # The handoff, live: no reload.
    box.fill("I want to talk to a real person please")
    box.press("Enter")
    page.wait_for_function(
        "() => document.getElementById('mend-widget').shadowRoot.querySelector('[data-testid=status]')"
        ".getAttribute('data-status') === 'waiting'", timeout=60_000)
    assert "Waiting for a person" in status.inner_text()
    page.screenshot(path=str(SHOTS / "20-widget-waiting-for-a-person.png"))

    assert _agent(gateway.url, f"/api/conversations/{conversation_id}/take") == 200
    status.filter(has_text="Nora").wait_for(timeout=30_000)
    assert status.get_attribute("data-status") == "agent"
    page.screenshot(path=str(SHOTS / "21-widget-agent-joined.png"))

    assert _agent(gateway.url, f"/api/conversations/{conversation_id}/handback") == 200
    status.filter(has_text="Mend assistant").wait_for(timeout=30_000)
    assert status.get_attribute("data-status") == "bot"

    connection = page.locator('[data-testid="connection"]')
    assert not connection.is_visible()
    # A frozen gateway: the socket stays open but nothing answers. The heartbeat notices.
    page.evaluate(WATCH_LOST)
    gateway.signal(signal.SIGSTOP)
    frozen = time.time()
    try:
        lost_frozen = _seconds_until_shown(page, connection, frozen)
        page.screenshot(path=str(SHOTS / "22-widget-connection-lost.png"))
    finally:
        gateway.signal(signal.SIGCONT)
    assert lost_frozen <= LOST_WITHIN, f"a frozen gateway was shown after {lost_frozen:.1f}s"
    connection.wait_for(state="hidden", timeout=30_000)  # reconnected by itself

    # A killed gateway, and a message typed while it is down: kept, then delivered once after the restart.
    page.evaluate(WATCH_LOST)
    killed = time.time()
    gateway.kill()
    lost_killed = _seconds_until_shown(page, connection, killed)
    assert lost_killed <= LOST_WITHIN, f"a killed gateway was shown after {lost_killed:.1f}s"
    replies_before = bot.count()
    unsent = "Are you still there? I need the duplicate charge refunded"
    box.fill(unsent)
    box.press("Enter")
    sending = page.locator('[data-testid="message"][data-sender="customer"][data-state="sending"]')
    sending.filter(has_text="duplicate charge refunded").wait_for(timeout=5_000)
    page.screenshot(path=str(SHOTS / "23-widget-message-kept-while-down.png"))

    gateway.start()
    connection.wait_for(state="hidden", timeout=60_000)
    page.locator('[data-testid="message"][data-sender="customer"][data-state="sent"]') \
        .filter(has_text="duplicate charge refunded").wait_for(timeout=30_000)
    bot.nth(replies_before).wait_for(timeout=90_000)  # answered
    assert _stored(live_bot.case_db_url, conversation_id, unsent) == 1
    page.screenshot(path=str(SHOTS / "24-widget-reconnected-and-answered.png"))
    assert page.evaluate("window.localStorage.getItem(Object.keys(window.localStorage)"
                         ".find(k => k.startsWith('mend:pending:')) || '') ") in (None, "")
    print(f"\nwidget: lost connection shown {lost_frozen:.2f}s after the gateway froze, "
          f"{lost_killed:.2f}s after it was killed")
    context.close()
