"""A customer message that arrives while an agent has the conversation is rated live in the console:
the console first gets it unrated (at once), then the same message with its frustration reading
(level, score, cues) once Rasa's NLU parsed it, without a reload.

Rasa is replaced by tests/fake_rasa.py (no trained model needed): the gateway's path is what is tested."""
from __future__ import annotations

import aiohttp
from aiohttp.test_utils import TestServer

from bot.casedb.engine import session_scope
from bot.gateway.accounts import create_account
from bot.gateway.app import create_app
from bot.gateway.client import Staff, Widget
from bot.gateway.config import load_config
from bot.gateway.identity import sign_customer_token
from bot.gateway.rasa_client import RasaClient
from tests.fake_rasa import fake_rasa_app

TOKEN_SECRET = "live-rating-customer-secret-long-enough-123"
PASSWORD = "live rating password"


async def test_a_message_to_the_agent_gets_its_rating_live(db_url, tmp_path):
    with session_scope(db_url) as session:
        create_account(session, "bo", PASSWORD, "agent", "Bo")
    rasa = TestServer(fake_rasa_app(), host="127.0.0.1")
    await rasa.start_server()
    config = load_config(rasa_url=str(rasa.make_url("")).rstrip("/"), database_url=db_url, port=0,
                         customer_token_secret=TOKEN_SECRET,
                         session_secret="live-rating-session-secret-long-enough-123456",
                         trainer_export_dir=str(tmp_path / "trainer"))
    gateway = TestServer(create_app(config), host="127.0.0.1")
    await gateway.start_server()
    base = str(gateway.make_url("")).rstrip("/")
    http = aiohttp.ClientSession()
    agent = Staff(base)
    try:
        assert await agent.login("bo", PASSWORD) == 302
        await agent.open_console()
        widget = Widget(base, http)
        await widget.connect(token=sign_customer_token("cust-1001", TOKEN_SECRET))
        await widget.send("I want to talk to a person please")
        await widget.until(lambda e: e.get("type") == "status" and e.get("status") == "waiting")
        conversation_id = widget.conversation_id
        assert (await agent.post(f"/api/conversations/{conversation_id}/take"))[0] == 200
        await agent.watch(conversation_id)

        angry = "WHERE IS IT?? this is the THIRD TIME I ask!!"
        await widget.send(angry)
        ack = await widget.until(lambda e: e.get("type") == "ack")

        def about_it(event):
            return event.get("type") == "message" and event.get("message", {}).get("id") == ack["id"]

        first = await agent.until(about_it, timeout=30)
        assert first["message"]["text"] == angry
        assert first["message"]["frustration"] is None  # shown at once, as "not rated yet" ...
        rated = await agent.until(about_it, timeout=30)  # ... then replaced with its reading
        reading = rated["message"]["frustration"]
        assert reading["level"] == "angry" and reading["score"] > 0.6
        assert any("third time" in cue for cue in reading["cues"])
        assert rated["message"]["issue_type"]["name"] == "delivery"

        # What a reload shows agrees, and the widget never sees the reading.
        status, detail = await agent.get(f"/api/conversations/{conversation_id}")
        stored = next(m for m in detail["messages"] if m["id"] == ack["id"])
        assert status == 200 and stored["frustration"]["level"] == "angry"
        assert all("frustration" not in e.get("message", {}) for e in widget.received if e.get("type") == "message")

        # One record: the conversation's level in the console is the one in Rasa's tracker, where the
        # gateway recorded the tracking of the message Rasa only logged.
        async with http.get(str(rasa.make_url(f"/conversations/{conversation_id}/tracker"))) as response:
            slots = (await response.json())["slots"]
        assert slots.get("frustration_level") in ("annoyed", "angry")
        assert detail["summary"]["frustration"]["level"] == slots["frustration_level"]
        assert detail["summary"]["frustration"]["score"] == slots["frustration_score"]
        await widget.close()
    finally:
        await agent.close()
        await http.close()
        await gateway.close()
        await rasa.close()


async def test_with_the_real_bot_the_nlu_rates_a_message_sent_to_the_agent(live_bot, tmp_path):
    """The same through the trained model: Rasa's /conversations/{id}/messages parses with the NLU."""
    url = live_bot.case_db_url
    with session_scope(url) as session:
        from bot.casedb.models import Account, ChatConversation
        session.query(ChatConversation).update({"status": "closed", "assigned_agent": None, "last_agent": None})
        if session.query(Account).filter(Account.username == "rita").first() is None:
            create_account(session, "rita", PASSWORD, "agent", "Rita")
    config = load_config(rasa_url=live_bot.rasa_url, database_url=url, customer_token_secret=TOKEN_SECRET,
                         session_secret="live-rating-session-secret-long-enough-123456", port=0,
                         trainer_export_dir=str(tmp_path / "trainer"))
    gateway = TestServer(create_app(config), host="127.0.0.1")
    await gateway.start_server()
    base = str(gateway.make_url("")).rstrip("/")
    http = aiohttp.ClientSession()
    agent = Staff(base)
    try:
        assert await agent.login("rita", PASSWORD) == 302
        await agent.open_console()
        widget = Widget(base, http)
        await widget.connect(token=sign_customer_token("cust-1001", TOKEN_SECRET))
        await widget.send("I want to talk to a real person")
        first_ack = await widget.until(lambda e: e.get("type") == "ack")
        await agent.until(lambda e: e["type"] == "queue" and any(
            s["conversation_id"] == widget.conversation_id for s in e["queue"]["waiting"]), timeout=120)
        assert (await agent.post(f"/api/conversations/{widget.conversation_id}/take"))[0] == 200
        await agent.watch(widget.conversation_id)
        await widget.send("WHERE IS MY ORDER?! this is the third time I'm asking, you people are useless")
        ack = await widget.until(lambda e: e.get("type") == "ack" and e["id"] != first_ack["id"])
        rated = await agent.until(lambda e: e.get("type") == "message" and e["message"]["id"] == ack["id"]
                                  and e["message"]["frustration"] is not None, timeout=60)
        reading = rated["message"]["frustration"]
        assert reading["level"] in ("annoyed", "angry") and reading["cues"], reading
        # Rasa tracked the message as it logged it (no policy ran): its tracker holds the conversation's
        # level, and the console's header and queue show that one.
        rasa = RasaClient(live_bot.rasa_url)
        await rasa.start()
        try:
            slots = (await rasa.tracker(widget.conversation_id))["slots"]
        finally:
            await rasa.close()
        assert slots["frustration_level"] in ("annoyed", "angry")
        status, detail = await agent.get(f"/api/conversations/{widget.conversation_id}")
        assert status == 200 and detail["summary"]["frustration"]["level"] == slots["frustration_level"]
        await widget.close()
    finally:
        await agent.close()
        await http.close()
        await gateway.close()
