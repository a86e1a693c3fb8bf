"""A real recorded conversation with an agent takeover, on the trainer page's API (live bot, gateway in-process).

The customer complains, asks for a person, Nora takes over, answers in her own words and hands
back; the bot closes. The trainer sees Nora's steps as hers (not judged, her words labelled as
hers), a status that matches the marks, and an exported story that replays green, or fails
exactly at the step the trainer corrected.
"""
from __future__ import annotations

from bot.gateway.identity import sign_customer_token
from tests.test_gateway import PASSWORD, TOKEN_SECRET, _account, another_gateway, gateway, is_message  # noqa: F401

NORA_SAYS = "Nora here: the refund for A1001 is on its way, 3 to 5 working days."


async def record_takeover(widget_factory, staff_factory, token_secret: str = TOKEN_SECRET) -> str:
    """Drive the product as a customer (Dana) and an agent (Nora); the conversation id."""
    widget = widget_factory()
    await widget.connect(token=sign_customer_token("cust-1001", token_secret))
    await widget.send("This is RIDICULOUS. Where are my headphones?? promised days ago and still nothing!!")
    await widget.until(lambda e: is_message("bot")(e) and e["message"]["buttons"])
    await widget.send("No. I want to talk to a person.")
    await widget.until(lambda e: e.get("type") == "status" and e.get("status") == "waiting")
    agent = staff_factory()
    assert await agent.login("nora", PASSWORD) == 302
    path = f"/api/conversations/{widget.conversation_id}"
    assert (await agent.post(path + "/take"))[0] == 200
    await widget.until(lambda e: e["type"] == "agent_joined")
    await widget.send("when do I get my money back?")
    await widget.settle(1.5)
    assert (await agent.post(path + "/send", {"text": NORA_SAYS, "action": None}))[0] == 200
    await widget.until(is_message("agent"))
    assert (await agent.post(path + "/handback"))[0] == 200
    await widget.until(lambda e: e["type"] == "agent_left")
    await widget.send("thanks, that's all")
    await widget.until(is_message("bot"))
    await widget.settle(1.5)
    await widget.close()
    return widget.conversation_id


def _steps(result):
    return [(a["step"], a["expected"], a["by_agent"]) for t in result["turns"] for a in t["actions"]]


async def test_recorded_takeover_replays_as_the_agents_and_exports_a_story_that_replays_green(gateway):  # noqa: F811
    _account(gateway.db_url, "nora", "Nora")
    conversation_id = await record_takeover(gateway.widget, gateway.agent)
    trainer = gateway.agent()
    assert await trainer.login("tess", PASSWORD) == 302
    item = f"conversation:{conversation_id}"
    status, result = await trainer.post("/api/trainer/replay", {"id": item})
    assert status == 200, result

    actions = [a for t in result["turns"] for a in t["actions"]]
    by_nora = [a for a in actions if a["by_agent"]]
    by_bot = [a for a in actions if not a["by_agent"]]
    # Nora's steps: hers, named, her words with them, never predicted or judged.
    assert by_nora and all(a["agent_name"] == "Nora" and a["predicted"] is None and not a["diverged"] for a in by_nora)
    assert [NORA_SAYS] in [a["agent_text"] for a in by_nora]
    assert all(NORA_SAYS not in a["bot_text"] for a in actions)
    turn = next(t for t in result["turns"] if t["user"] and t["user"]["text"] == "when do I get my money back?")
    assert turn["actions"] and all(a["by_agent"] for a in turn["actions"])
    # The bot's steps are judged; the status counts them and says what it left out.
    assert [a["expected"] for a in by_bot][:3] == ["action_handle_complaint", "action_listen", "action_handoff"]
    assert any(a["bot_text"] for a in by_bot[3:]), "the bot answers again after the hand-back"
    assert result["passed"] is True and result["divergences"] == 0
    assert (result["bot_steps"], result["agent_steps"]) == (len(by_bot), len(by_nora))
    assert result["bot_steps_as_expected"] == len(by_bot)
    assert result["conformance"]["counted"] is True and "acknowledge" in result["conformance"]["steps_done"]

    # Exported as it happened, the story replays green, step for step the same.
    status, exported = await trainer.post("/api/trainer/export", {"id": item, "name": "nora takes over", "save": True})
    assert status == 200, exported
    last_bot = by_bot[-2]  # the bot's answer after the hand-back (the last one is its listen)
    status, corrected = await trainer.post("/api/trainer/export", {
        "id": item, "name": "nora takes over, corrected", "save": True,
        "corrections": {str(last_bot["step"]): "action_handoff"}})
    assert status == 200, corrected
    status, refused = await trainer.post("/api/trainer/export", {
        "id": item, "name": "x", "corrections": {str(by_nora[0]["step"]): "utter_greet"}})
    assert status == 400 and "taken by Nora, not by the bot" in refused["error"]

    async with another_gateway(gateway, story_dirs=[str(gateway.export_dir)]) as (url, _):
        reader = type(trainer)(url)
        try:
            assert await reader.login("tess", PASSWORD) == 302
            status, listing = await reader.get("/api/trainer/items?kind=story")
            stories = {i["name"]: i["id"] for i in listing["items"]}
            status, story = await reader.post("/api/trainer/replay", {"id": stories["nora takes over"]})
            assert status == 200 and story["passed"] is True and story["divergences"] == 0, story
            assert _steps(story) == _steps(result)
            status, story = await reader.post("/api/trainer/replay", {"id": stories["nora takes over, corrected"]})
            wrong = [a for t in story["turns"] for a in t["actions"] if a["diverged"]]
            assert [(a["step"], a["expected"], a["predicted"]) for a in wrong] == \
                [(last_bot["step"], "action_handoff", last_bot["expected"])]
            assert story["divergences"] == 1 and story["passed"] is False
        finally:
            await reader.close()
