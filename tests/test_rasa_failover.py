"""The gateway's choice of Rasa server with several (the scaled layout): rendezvous hashing and failover.

Two tiny aiohttp servers stand in for two Rasa servers (ports MEND_TEST_PORT_BASE+180..+182); they
count what reaches them, answer like Rasa's REST channel, and can be told to answer 503/500.
"""
from __future__ import annotations

import asyncio
import collections
import os
import socket
from typing import Dict, Iterator, List

import pytest
from aiohttp import web

from bot.gateway.config import load_config
from bot.gateway.rasa_client import RasaClient, RasaUnavailable, rendezvous_order, split_urls

BASE = int(os.environ.get("MEND_TEST_PORT_BASE", "5305")) + 180
TOKEN = "test-rasa-token-1234567890"
URLS = [f"http://127.0.0.1:{BASE + i}" for i in range(3)]


# -- the hashing ---------------------------------------------------------------------------------------------

def test_each_conversation_has_one_stable_server_whatever_the_configured_order() -> None:
    ids = [f"w-{n:04d}" for n in range(200)]
    first = {c: rendezvous_order(c, URLS)[0] for c in ids}
    again = {c: rendezvous_order(c, list(reversed(URLS)))[0] for c in ids}
    assert first == again  # another gateway listing the servers in another order agrees
    assert rendezvous_order("w-0001", URLS) == rendezvous_order("w-0001", URLS)


def test_conversations_spread_evenly_over_the_servers() -> None:
    counts = collections.Counter(rendezvous_order(f"conv-{n}", URLS)[0] for n in range(1000))
    assert set(counts) == set(URLS)
    # 1000 ids over 3 servers: 333 expected each; a fair hash stays well within +-20 %.
    assert all(267 <= count <= 400 for count in counts.values()), counts
    two = collections.Counter(rendezvous_order(f"conv-{n}", URLS[:2])[0] for n in range(1000))
    assert all(400 <= count <= 600 for count in two.values()), two


def test_removing_a_server_moves_only_its_own_conversations() -> None:
    ids = [f"conv-{n}" for n in range(1000)]
    before = {c: rendezvous_order(c, URLS)[0] for c in ids}
    after = {c: rendezvous_order(c, URLS[:2])[0] for c in ids}
    moved = [c for c in ids if before[c] != after[c]]
    assert moved and all(before[c] == URLS[2] for c in moved)
    # ... and they go where their ranking said: their second choice.
    assert all(after[c] == rendezvous_order(c, URLS)[1] for c in moved)


def test_failover_order_is_deterministic_and_down_servers_go_last() -> None:
    client = RasaClient(",".join(URLS), token=TOKEN, down_seconds=60)
    ranking = client.servers_for("conv-7")
    assert sorted(ranking) == sorted(URLS) and ranking == rendezvous_order("conv-7", URLS)
    client.mark_down(ranking[0])
    assert client.servers_for("conv-7") == ranking[1:] + ranking[:1]
    assert client.servers_for(None)[-1] == ranking[0]  # requests about no conversation avoid it too


def test_one_url_many_urls_and_bad_lists() -> None:
    assert split_urls("http://a:1/, http://b:2,,http://a:1") == ["http://a:1", "http://b:2"]
    assert split_urls(["http://a:1"]) == ["http://a:1"]
    with pytest.raises(ValueError):
        split_urls(" , ")
    single = RasaClient("http://127.0.0.1:5005/", token=TOKEN)
    assert single.base_url == "http://127.0.0.1:5005" and single.base_urls == ["http://127.0.0.1:5005"]
    single.mark_down(single.base_url)  # one server is never passed over: there is nothing else to try
    assert not single.is_down(single.base_url)


def test_gateway_config_reads_several_rasa_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEND_RASA_URL", raising=False)
    monkeypatch.setenv("MEND_RASA_URLS", "http://127.0.0.1:5005/,http://127.0.0.1:5006")
    monkeypatch.setenv("MEND_RASA_DOWN_SECONDS", "3")
    config = load_config()
    assert config.rasa_servers() == ["http://127.0.0.1:5005", "http://127.0.0.1:5006"]
    assert config.rasa_down_seconds == 3.0
    assert RasaClient(config.rasa_url, token=TOKEN).base_urls == config.rasa_servers()
    monkeypatch.delenv("MEND_RASA_URLS")
    monkeypatch.setenv("MEND_RASA_URL", "http://127.0.0.1:5009")
    assert load_config().rasa_servers() == ["http://127.0.0.1:5009"]
    assert load_config(rasa_url="http://127.0.0.1:7").rasa_servers() == ["http://127.0.0.1:7"]


# -- failover against real HTTP servers ---------------------------------------------------------------------

class FakeRasa:
    """A Rasa stand-in: counts webhook posts and tracker reads; ``status`` forces an error answer."""

    def __init__(self, port: int) -> None:
        self.port, self.url = port, f"http://127.0.0.1:{port}"
        self.messages: List[str] = []
        self.reads = 0
        self.status = 200
        self.runner: web.AppRunner | None = None

    async def _webhook(self, request: web.Request) -> web.Response:
        if self.status != 200:
            return web.Response(status=self.status, text="unavailable")
        body = await request.json()
        self.messages.append(body["sender"])
        return web.json_response([{"recipient_id": body["sender"], "text": f"from {self.port}"}])

    async def _tracker(self, request: web.Request) -> web.Response:
        self.reads += 1
        if self.status != 200:
            return web.Response(status=self.status, text="broken")
        return web.json_response({"sender_id": request.match_info["cid"], "served_by": self.port})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/webhooks/rest/webhook", self._webhook)
        app.router.add_get("/conversations/{cid}/tracker", self._tracker)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture
async def two() -> Iterator[Dict[int, FakeRasa]]:
    servers = {port: FakeRasa(port) for port in (BASE, BASE + 1)}
    for server in servers.values():
        await server.start()
    yield servers
    for server in servers.values():
        await server.stop()


def _conversation_preferring(url: str, urls: List[str]) -> str:
    return next(f"conv-{n}" for n in range(1000) if rendezvous_order(f"conv-{n}", urls)[0] == url)


async def test_a_conversation_stays_on_its_server(two: Dict[int, FakeRasa]) -> None:
    urls = [s.url for s in two.values()]
    client = RasaClient(urls, token=TOKEN, down_seconds=60)
    await client.start()
    try:
        for n in range(40):
            cid = f"c-{n}"
            for _ in range(3):
                await client.send(cid, "hello", {})
        for server in two.values():
            assert server.messages, "both servers get some conversations"
            for cid in set(server.messages):
                assert server.messages.count(cid) == 3  # every turn of a conversation went to one server
                assert rendezvous_order(cid, urls)[0] == server.url
    finally:
        await client.close()


async def test_a_dead_server_sends_its_conversations_to_the_next_and_is_marked_down(two: Dict[int, FakeRasa]) -> None:
    a, b = two[BASE], two[BASE + 1]
    urls = [a.url, b.url]
    cid = _conversation_preferring(a.url, urls)
    client = RasaClient(urls, token=TOKEN, down_seconds=0.5)
    await client.start()
    try:
        assert (await client.send(cid, "one", {}))[0]["text"] == f"from {a.port}"
        await a.stop()  # connection refused: the message was never delivered, so it may go elsewhere
        assert (await client.send(cid, "two", {}))[0]["text"] == f"from {b.port}"
        assert client.is_down(a.url) and client.servers_for(cid) == [b.url, a.url]
        assert (await client.tracker(cid))["served_by"] == b.port
        assert b.messages == [cid]
        await a.start()
        await asyncio.sleep(0.6)  # the down mark expires: back to its own server
        assert (await client.send(cid, "three", {}))[0]["text"] == f"from {a.port}"
        assert a.messages == [cid, cid] and b.messages == [cid]
    finally:
        await client.close()


async def test_503_fails_over_but_500_on_a_message_does_not(two: Dict[int, FakeRasa]) -> None:
    a, b = two[BASE], two[BASE + 1]
    urls = [a.url, b.url]
    cid = _conversation_preferring(a.url, urls)
    client = RasaClient(urls, token=TOKEN, down_seconds=60)
    await client.start()
    try:
        a.status = 503  # "not taken": safe to send to the next server
        assert (await client.send(cid, "hi", {}))[0]["text"] == f"from {b.port}"
        assert client.is_down(a.url)
        await client.send(cid, "again", {})
        assert b.messages == [cid, cid] and a.messages == []  # passed over while down, not asked again

        other = _conversation_preferring(b.url, urls)
        b.status = 500  # the server may have taken the message: never sent twice
        with pytest.raises(RasaUnavailable, match="500"):
            await client.send(other, "hi", {})
        assert a.messages == []
        # A read is safe to repeat: a 500 on it goes on to the next server (a, although marked down).
        reads_before = a.reads
        with pytest.raises(RasaUnavailable):
            await client.tracker(other)  # a answers 503, b 500: every server failed
        assert a.reads == reads_before + 1
        a.status = 200
        assert (await client.tracker(other))["served_by"] == a.port
    finally:
        await client.close()


async def test_every_server_down_is_one_clear_error() -> None:
    ports = []
    for _ in range(2):
        with socket.socket() as probe:  # closed ports: nothing listens
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    client = RasaClient([f"http://127.0.0.1:{p}" for p in ports], token="secret-token", down_seconds=60)
    await client.start()
    try:
        with pytest.raises(RasaUnavailable) as raised:
            await client.send("c-1", "hello", {})
        assert "secret-token" not in str(raised.value)
        assert all(client.is_down(f"http://127.0.0.1:{p}") for p in ports)
    finally:
        await client.close()
