"""One gateway in front of the fake Rasa (tests/fake_rasa.py), on a test's database: the gateway's own paths,
without a trained model."""
from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from aiohttp.test_utils import TestServer

from bot.gateway.app import create_app
from bot.gateway.config import load_config
from tests.fake_rasa import fake_rasa_app


def base_url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


async def started_gateway(rasa: TestServer, db_url: str, tmp_path: Any, name: str = "",
                          **overrides: Any) -> TestServer:
    """A gateway in front of ``rasa`` on the test's database, started (``overrides``: GatewayConfig fields)."""
    config = load_config(rasa_url=base_url(rasa), database_url=db_url, port=0,
                         trainer_export_dir=str(tmp_path / f"trainer{'-' + name if name else ''}"), **overrides)
    gateway = TestServer(create_app(config), host="127.0.0.1")
    gateway.fake_rasa = rasa  # type: ignore[attr-defined]  # its app["slow"], app["lost"], app["seen"]
    await gateway.start_server()
    return gateway


@asynccontextmanager
async def gateway_with_fake_rasa(db_url: str, tmp_path: Any, **overrides: Any) -> AsyncIterator[TestServer]:
    """A started gateway (``overrides``: GatewayConfig fields), stopped with its fake Rasa afterwards."""
    rasa = TestServer(fake_rasa_app(), host="127.0.0.1")
    await rasa.start_server()
    gateway = None
    try:
        gateway = await started_gateway(rasa, db_url, tmp_path, **overrides)
        yield gateway
    finally:
        if gateway is not None:
            await gateway.close()
        await rasa.close()
