"""The trainer page's API through the gateway: roles, listing, replay through the running Rasa, export."""
from __future__ import annotations

import asyncio

from bot.gateway.identity import sign_customer_token
from tests.test_gateway import PASSWORD, TOKEN_SECRET, gateway  # noqa: F401  (the gateway fixture)


async def test_only_trainers_and_admins_reach_the_trainer_api(gateway):  # noqa: F811
    async with gateway.http.get(gateway.url + "/api/trainer/items") as response:
        assert response.status == 401
    agent = gateway.agent()
    await agent.login("maria", PASSWORD)
    status, answer = await agent.get("/api/trainer/items")
    assert status == 403 and "trainer" in answer["error"]
    async with agent.http.get(gateway.url + "/trainer", allow_redirects=False) as response:
        assert response.status == 403


async def test_trainer_lists_replays_and_exports_stories(gateway):  # noqa: F811
    trainer = gateway.agent()
    assert await trainer.login("tess", PASSWORD) == 302
    status, listing = await trainer.get("/api/trainer/items?kind=story")
    assert status == 200
    stories = {i["name"]: i for i in listing["items"]}
    assert "delivery, verified customer, calm, full playbook" in stories
    story = stories["delivery, verified customer, calm, full playbook"]
    assert story["outcome"] == "unknown" and story["issue_type"] == "delivery"
    status, result = await trainer.post("/api/trainer/replay", {"id": story["id"]})
    assert status == 200 and result["passed"] and result["divergences"] == 0
    first = result["turns"][0]
    assert first["user"]["frustration"]["level"] in ("calm", "annoyed", "angry")
    assert first["actions"][0]["expected"] == first["actions"][0]["predicted"] == "action_handle_complaint"
    assert result["conformance"]["steps_done"][0] == "acknowledge"
    status, listing = await trainer.get("/api/trainer/items?kind=story&outcome=passed")
    assert [i["id"] for i in listing["items"]] == [story["id"]]
    status, filtered = await trainer.get("/api/trainer/items?kind=story&issue_type=billing")
    assert filtered["items"] and all(i["issue_type"] == "billing" for i in filtered["items"])
    assert (await trainer.get("/api/trainer/items?date_from=yesterday"))[0] == 400

    body = {"id": story["id"], "name": "calm delivery, corrected", "corrections": {"2": "action_handoff"}, "save": True}
    status, exported = await trainer.post("/api/trainer/export", body)
    assert status == 200 and exported["saved_to"].endswith("test_calm_delivery_corrected.yml")
    saved = gateway.export_dir / "test_calm_delivery_corrected.yml"
    assert saved.read_text(encoding="utf-8") == exported["yaml"] and "action: action_handoff" in exported["yaml"]
    status, again = await trainer.post("/api/trainer/export", body)
    assert status == 409 and "already exists" in again["error"]
    assert saved.read_text(encoding="utf-8") == exported["yaml"]
    for bad, code in (({"id": story["id"], "corrections": {"2": "utter_sing"}}, 400),
                      ({"id": story["id"], "corrections": {"x": "action_handoff"}}, 400),
                      ({"id": "story:tests/none.yml#0"}, 404), ({"id": 5}, 400), ({"id": "what"}, 400)):
        status, answer = await trainer.post("/api/trainer/export", bad)
        assert status == code and answer["error"], (bad, answer)
    assert (await trainer.post("/api/trainer/replay", {"id": "conversation:w-nope"}))[0] == 404
    status, actions = await trainer.get("/api/trainer/actions")
    assert "action_handle_complaint" in actions["actions"] and "action_listen" not in actions["actions"]


async def test_a_recorded_widget_conversation_replays_on_the_trainer_page(gateway):  # noqa: F811
    widget = gateway.widget()
    await widget.connect(token=sign_customer_token("cust-1004", TOKEN_SECRET))
    await widget.send("I'm locked out of my account and it's really annoying")
    await widget.until(lambda e: e.get("type") == "message" and e["message"]["sender"] == "bot")
    await widget.settle(2.0)
    trainer = gateway.agent()
    await trainer.login("tess", PASSWORD)
    status, listing = await trainer.get("/api/trainer/items?kind=conversation")
    item = next(i for i in listing["items"] if i["id"] == f"conversation:{widget.conversation_id}")
    assert item["issue_type"] == "account" and item["outcome"] in ("open", "resolved")
    status, result = await trainer.post("/api/trainer/replay", {"id": item["id"]})
    assert status == 200 and result["passed"], result
    assert result["turns"][0]["user"]["issue_type"]["name"] == "account"
    assert any("Lee" in text for a in result["turns"][0]["actions"] for text in a["bot_text"])
    await widget.close()
