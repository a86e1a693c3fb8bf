"""A stand-in for Rasa's HTTP API, for gateway tests that must not wait for a trained model.

It reads frustration the simple way (capitals, "!!", "third time") and hands the conversation to a
person when the customer asks for one; suggestions are unavailable (``/predict`` answers 503), so the
gateway's own paths are what is tested."""
from __future__ import annotations

import asyncio
import time
import threading
from typing import Any, Dict, List, Optional

from aiohttp import web

from bot.recovery.tracker_state import turn_input
from bot.recovery.tracking import changed_slots
from bot.recovery.turns import track


def reading(text: str) -> Dict[str, Any]:
    cues: List[str] = []
    letters = [c for c in text if c.isalpha()]
    if letters and sum(c.isupper() for c in letters) / len(letters) > 0.6:
        cues.append("capitals: \"" + text[:20] + "\"")
    if "!!" in text:
        cues.append("exclamation: \"!!\"")
    if "third time" in text.lower():
        cues.append("repeat contact: \"third time\"")
    score = min(0.95, 0.1 + 0.3 * len(cues))
    level = "angry" if score >= 0.62 else "annoyed" if score >= 0.35 else "calm"
    return {"score": score, "level": level, "cues": cues}


async def _parsed(request: web.Request, parse: Any) -> web.Response:
    return web.json_response(parse((await request.json())["text"], record=False))


def fake_rasa_app(case_id: str = "CASE-501") -> web.Application:
    state: Dict[str, Dict[str, Any]] = {}
    app = web.Application()
    seen: List[str] = []

    def tracker(conversation_id: str) -> Dict[str, Any]:
        return state.setdefault(conversation_id, {"sender_id": conversation_id, "slots": {}, "latest_message": {},
                                                  "events": []})

    def parse(text: str, record: bool = True) -> Dict[str, Any]:
        if record:
            seen.append(text)
        return {"text": text, "intent": {"name": "complain_delivery", "confidence": 0.9},
                "frustration": reading(text), "issue_type": {"name": "delivery", "confidence": 0.9}}

    async def webhook(request: web.Request) -> web.Response:
        body = await request.json()
        await asyncio.sleep(app["slow"].get(body["message"], 0.0))  # a slow turn, before Rasa has stored it
        if body["message"] in app["lost"]:  # a Rasa server killed while it held the request: nothing stored
            raise web.HTTPBadGateway()
        t = tracker(body["sender"])
        t["latest_message"] = parse(body["message"])
        t["events"].append({"event": "user", "text": body["message"], "parse_data": t["latest_message"],
                            "timestamp": time.time()})
        answer = "I'm looking into it."
        if "person" in body["message"].lower():
            t["slots"].update(handed_off=True, handoff_reason="customer_request", case_id=case_id,
                              handoff_summary="Customer asked for a person about a late delivery.")
            answer = "I'll get a colleague for you."
        t["events"].append({"event": "bot", "text": answer, "data": {}, "timestamp": time.time()})  # as in Rasa
        return web.json_response([{"recipient_id": body["sender"], "text": answer}])

    async def get_tracker(request: web.Request) -> web.Response:
        return web.json_response(tracker(request.match_info["cid"]))

    async def add_message(request: web.Request) -> web.Response:
        body = await request.json()
        t = tracker(request.match_info["cid"])
        seen.append(body["text"])
        t["latest_message"] = dict(body.get("parse_data") or parse(body["text"], record=False))  # as Rasa does
        t["events"].append({"event": "user", "text": body["text"], "parse_data": t["latest_message"],
                            "timestamp": time.time()})
        # Mend's Rasa tracks a message it only logs (bot/dialogue/tracking_policy.py); here without
        # the case database.
        turn = turn_input(request.match_info["cid"], t["slots"], t["latest_message"], t["events"])
        t["slots"].update(changed_slots(track(turn, None), t["slots"]))
        return web.json_response(t)

    async def append_events(request: web.Request) -> web.Response:
        t = tracker(request.match_info["cid"])
        for event in await request.json():
            t["events"].append(event)
            if event.get("event") == "slot":
                t["slots"][event["name"]] = event.get("value")
        return web.json_response(t)

    async def ok(request: web.Request) -> web.Response:
        return web.json_response(tracker(request.match_info.get("cid", "-")))

    async def unavailable(request: web.Request) -> web.Response:
        return web.json_response({"error": "no model in this fake"}, status=503)

    app["seen"] = seen  # every text parsed, in order: how many times Rasa processed a message
    app["slow"] = {}  # text -> seconds the webhook takes for it
    app["lost"] = set()  # texts the webhook takes and never stores (answered 502 after their slow time)
    app.router.add_post("/webhooks/rest/webhook", webhook)
    app.router.add_get("/conversations/{cid}/tracker", get_tracker)
    app.router.add_post("/conversations/{cid}/messages", add_message)
    app.router.add_post("/model/parse", lambda request: _parsed(request, parse))
    app.router.add_post("/conversations/{cid}/tracker/events", append_events)
    app.router.add_put("/conversations/{cid}/tracker/events", ok)
    app.router.add_post("/conversations/{cid}/predict", unavailable)
    app.router.add_post("/conversations/{cid}/execute", unavailable)
    app.router.add_post("/conversations/{cid}/trigger_intent", unavailable)
    app.router.add_get("/domain", lambda request: web.json_response({}))
    app.router.add_get("/status", lambda request: web.json_response({"model_id": "fake"}))
    return app


class FakeRasaThread:
    """The fake on its own event loop in a thread, for a gateway running as a separate process."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._runner: Optional[web.AppRunner] = None
        self._ready = threading.Event()

    def __enter__(self) -> "FakeRasaThread":
        threading.Thread(target=self._serve, daemon=True).start()
        assert self._ready.wait(20), "the fake Rasa did not start"
        return self

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(fake_rasa_app())
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    def __exit__(self, *exc: Any) -> None:
        assert self._loop is not None and self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(20)
        self._loop.call_soon_threadsafe(self._loop.stop)
