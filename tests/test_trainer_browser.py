"""The trainer page in Debian's Chromium: a recorded conversation with an agent takeover, and the playbook panel.

A trainer opens a conversation Nora took over: her steps read as hers ("Agent said (Nora)", never
"Bot said", never red), the status says passed with what it counted. Replaying all the stories,
the conformance panel says what it counts, out of what, and why the rest is left out.
The same recorded conversation on a phone (390 px): replayed, a step opened, exported as a test
story, with nothing wider than the screen and every control a normal tap can reach.
Screenshots at 1280 px and 390 px land in var/screenshots/.
"""
from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import pytest

from bot.casedb.engine import session_scope
from bot.casedb.models import ChatConversation
from bot.gateway.client import Staff, Widget
from tests.test_browser_story import CHROMIUM, CHROMIUM_FLAGS, SHOTS, browser  # noqa: F401 (the shared fixture)
from tests.test_browser_widget import Gateway
from tests.test_gateway import PASSWORD, _account
from tests.test_trainer_recorded import NORA_SAYS, record_takeover

TOKEN_SECRET = "widget-browser-token-secret-long-enough-123456"  # the Gateway helper's customer token secret


@pytest.fixture(scope="module")
def site(live_bot, tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    with session_scope(live_bot.case_db_url) as session:  # earlier tests' conversations are over
        session.query(ChatConversation).update({"status": "closed", "assigned_agent": None})
    for username, name, role in (("nora", "Nora", "agent"), ("tess", "Tess", "trainer")):
        _account(live_bot.case_db_url, username, name, role)
    base = int(os.environ.get("MEND_TEST_PORT_BASE", "5305"))
    work = tmp_path_factory.mktemp("trainer-browser")
    server = Gateway(live_bot, base + 41, work / "gateway.log")
    server.env["MEND_TRAINER_EXPORT_DIR"] = str(work / "trainer")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def conversation_id(site):
    """A conversation Nora took over, recorded through the gateway's own protocol."""
    async def record() -> str:
        async with aiohttp.ClientSession() as http:
            staff = []
            try:
                return await record_takeover(lambda: Widget(site.url, http),
                                             lambda: staff.append(Staff(site.url)) or staff[-1], TOKEN_SECRET)
            finally:
                for member in staff:
                    await member.close()
    with ThreadPoolExecutor(1) as thread:  # Playwright's sync API keeps an event loop running in this one
        return thread.submit(asyncio.run, record()).result(timeout=300)


def _trainer_page(browser, site, width: int = 1280, height: int = 900):
    context = browser.new_context(viewport={"width": width, "height": height}, reduced_motion="reduce")
    page = context.new_page()
    page.goto(site.url + "/trainer")
    page.fill('input[name="username"]', "tess")
    page.fill('input[name="password"]', PASSWORD)
    page.locator('button[type="submit"]').click()
    page.wait_for_url("**/trainer")
    return context, page


def test_a_conversation_an_agent_took_over_shows_her_steps_as_hers(site, browser, conversation_id):
    context, page = _trainer_page(browser, site)
    item = page.locator(f'[data-testid="item"][data-item-id="conversation:{conversation_id}"]')
    item.first.wait_for(timeout=30_000)
    item.first.click()
    status = page.locator('[data-testid="replay-status"]')
    status.filter(has_text="passed").wait_for(timeout=120_000)
    assert "by Nora (a person had the conversation) not judged" in status.inner_text()
    for _ in range(12):  # step through to the end, as a trainer would
        if page.locator('[data-testid="step-forward"]').is_disabled():
            break
        page.locator('[data-testid="step-forward"]').click()

    agent_rows = page.locator('[data-testid="agent-row"]')
    assert agent_rows.count() >= 1  # Nora answered one message
    said = page.locator('[data-testid="agent-said"]').filter(has_text=NORA_SAYS)
    assert said.count() == 1 and said.inner_text().upper().startswith("AGENT SAID (NORA)")
    assert "Agent said (Nora)" in said.evaluate("n => n.querySelector('.who').textContent")
    assert page.locator('[data-testid="bot-said"]').filter(has_text=NORA_SAYS).count() == 0
    assert page.locator('[data-testid="action-row"][data-diverged="true"], [data-testid="diverged"]').count() == 0
    assert page.locator('[data-testid="agent-row"] [data-testid="mark-wrong"]').count() == 0
    assert page.locator('[data-testid="held-by"]').filter(has_text="Nora had the conversation").count() >= 1
    said.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "08-trainer-conversation-agent-steps-1280.png"))
    context.close()


def test_the_playbook_panel_says_what_it_counts_out_of_what_and_why(site, browser):
    context, page = _trainer_page(browser, site)
    page.locator('[data-testid="item"][data-kind="story"]').first.wait_for(timeout=30_000)
    stories = page.locator('[data-testid="item"][data-kind="story"]').count()
    page.locator('[data-testid="replay-all"]').click()
    summary = page.locator('[data-testid="replay-summary"]')
    summary.locator('[data-testid="summed-conformance"]').wait_for(timeout=300_000)
    scope = summary.locator('[data-testid="conformance-scope"]')
    counted, total = int(scope.get_attribute("data-counted")), int(scope.get_attribute("data-total"))
    assert total == stories and 1 <= counted < total
    assert f"Counted: {counted} of {total} replays" in scope.inner_text()
    reasons = summary.locator('[data-testid="not-counted"] li').all_inner_texts()
    assert sum(int(r.split()[2]) for r in reasons) == total - counted, reasons
    assert any("because the story does not list the playbook_step slot its actions set" in r for r in reasons)
    acknowledge = summary.locator('tr[data-step="acknowledge"] td').inner_text()
    assert acknowledge.endswith(f"of {counted}") and int(acknowledge.split()[0]) == counted
    assert summary.locator('tr[data-step="learn"]').count() == 0
    assert "0 failed" in summary.inner_text()
    summary.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "09-trainer-playbook-panel-1280.png"), full_page=True)
    context.close()


def _fits_the_screen(page, stage: str) -> None:
    """No sideways scrolling of the page: anything wide scrolls inside its own box."""
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    if width[0] > width[1] + 1:
        culprits = page.evaluate("""() => [...document.querySelectorAll('body *')]
            .filter(n => n.getBoundingClientRect().right > window.innerWidth + 1)
            .slice(0, 8).map(n => n.tagName + '.' + n.className + ' ' + Math.round(n.getBoundingClientRect().right))""")
        pytest.fail(f"{stage}: the page is {width[0]} px wide on a {width[1]} px screen: {culprits}")


def _tap(page, control) -> None:
    """A control a thumb can use: on screen horizontally, at least 40 px tall, then a normal (not forced) click."""
    control.scroll_into_view_if_needed()
    assert control.is_visible()
    box = control.bounding_box()
    inner = page.evaluate("window.innerWidth")
    assert box["x"] >= 0 and box["x"] + box["width"] <= inner + 1, (control, box)
    assert box["height"] >= 40, (control, box)
    control.click()


def test_on_a_phone_a_recorded_conversation_replays_and_exports_without_sideways_scrolling(site, browser, conversation_id):
    context, page = _trainer_page(browser, site, 390, 844)
    _fits_the_screen(page, "the list")
    item = page.locator(f'[data-testid="item"][data-item-id="conversation:{conversation_id}"]')
    item.first.wait_for(timeout=30_000)
    _tap(page, item.first)
    status = page.locator('[data-testid="replay-status"]')
    status.filter(has_text="passed").wait_for(timeout=120_000)
    assert "by Nora (a person had the conversation) not judged" in status.inner_text()
    _fits_the_screen(page, "the replay")

    forward = page.locator('[data-testid="step-forward"]')
    for _ in range(12):  # step through to the end with the player's own buttons
        if forward.is_disabled():
            break
        _tap(page, forward)
    assert forward.is_disabled()
    indicator = page.locator('[data-testid="turn-indicator"]').inner_text()
    turns = page.locator('[data-testid="turn"]')
    assert indicator.lower() == f"turn {turns.count()} of {turns.count()}" and turns.count() >= 3

    # the step list: the bot's steps with their verdict, Nora's as hers (not judged, never red)
    bot_rows = page.locator('[data-testid="action-row"]')
    assert bot_rows.count() >= 1
    assert bot_rows.locator(".badge.as-expected").count() == bot_rows.count()
    said = page.locator('[data-testid="agent-said"]').filter(has_text=NORA_SAYS)
    assert said.count() == 1 and said.inner_text().upper().startswith("AGENT SAID (NORA)")
    agent_row = page.locator('[data-testid="agent-row"]').filter(has=said)
    assert "not judged: Nora had the conversation" in agent_row.inner_text()
    assert page.locator('[data-testid="bot-said"]').filter(has_text=NORA_SAYS).count() == 0
    assert page.locator('[data-testid="diverged"], [data-diverged="true"]').count() == 0
    inner = page.evaluate("window.innerWidth")
    for row in [*bot_rows.all(), *page.locator('[data-testid="agent-row"]').all()]:
        box = row.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= inner + 1, box
    _fits_the_screen(page, "the step list")

    # a bot step's detail: the correction picker opens under it, fits, and closes again untouched
    closing_step = bot_rows.last  # the bot's closing step, after Nora handed back
    _tap(page, closing_step.locator('[data-testid="mark-wrong"]'))
    picker = closing_step.locator(".picker")
    picker.wait_for(state="visible")
    choose = picker.locator('[data-testid="correct-action"]')
    assert choose.is_visible() and choose.bounding_box()["x"] + choose.bounding_box()["width"] <= inner + 1
    assert choose.bounding_box()["height"] >= 40
    _fits_the_screen(page, "a step's correction picker")
    picker.evaluate("n => n.scrollIntoView({block: 'end'})")  # the step, its verdict and its picker
    page.screenshot(path=str(SHOTS / "10-trainer-recorded-390.png"))
    _tap(page, picker.get_by_role("button", name="Done"))
    picker.wait_for(state="hidden")
    assert closing_step.get_attribute("data-marked") == "false"

    # export: the agent note, a name, save into tests/, the confirmation, the YAML in its own scroll box
    assert "stay in the story as they happened" in page.locator('[data-testid="export-agent-note"]').inner_text()
    name = page.locator('[data-testid="export-name"]')
    name.scroll_into_view_if_needed()
    name.fill("Phone export of Nora's takeover")
    _tap(page, page.locator('[data-testid="export-save"]'))
    result = page.locator('[data-testid="export-result"][data-state="ok"]')
    result.wait_for(timeout=60_000)
    assert result.inner_text().startswith("Saved to ") and "phone_export_of_nora" in result.inner_text()
    assert result.is_visible()
    _fits_the_screen(page, "the export confirmation")
    with page.expect_download() as download:
        _tap(page, page.locator('[data-testid="export-download"]'))
    assert download.value.suggested_filename == "test_phone_export_of_nora_s_takeover.yml"
    page.locator('[data-testid="export-result"]').filter(has_text="Downloaded test_phone_export").wait_for()
    preview = page.locator(".export-preview")
    _tap(page, preview.locator("summary"))
    yaml = preview.locator(".export-yaml")
    yaml.wait_for(state="visible")
    assert "handed_off" in yaml.inner_text()
    box = yaml.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= inner + 1, box
    _fits_the_screen(page, "the story YAML preview")
    page.locator("#export-heading").evaluate("n => n.scrollIntoView({block: 'start'})")
    page.screenshot(path=str(SHOTS / "11-trainer-export-390.png"))
    context.close()
