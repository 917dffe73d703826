"""The desk's /sip relay, against a stand-in for Asterisk's SIP WebSocket (no Asterisk):
frames go both ways unchanged with the `sip` subprotocol, either side's close closes the
other, the end of the session closes both, and an Asterisk that cannot be reached is a 502.
The real thing, with Chromium and Asterisk, is tests/agent_desk/test_softphone_browser.py."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from agent_desk.app import DESK, make_app
from db import agents as agent_store
from db import pool as db_pool
from db.crypto import Keyring
from dialplan import config
from dialplan.render import read_phone_secrets
from tests.conftest import ROOT, closed_port

REGISTER = "REGISTER sip:hotline SIP/2.0\r\nVia: SIP/2.0/WS x.invalid\r\n\r\n"


class FakeAsterisk:
    """Asterisk's /ws as far as the relay can tell: the sip subprotocol, frames kept."""

    def __init__(self) -> None:
        self.received: list[Any] = []
        self.sockets: list[web.WebSocketResponse] = []
        self.closed = asyncio.Event()
        self.connected = asyncio.Event()

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("sip",))
        await ws.prepare(request)
        self.sockets.append(ws)
        self.connected.set()
        async for msg in ws:
            self.received.append(msg.data)
            if msg.type == WSMsgType.TEXT and msg.data.startswith("REGISTER"):
                await ws.send_str("SIP/2.0 200 OK\r\n\r\n")
        self.closed.set()
        return ws


@pytest.fixture
async def relay(pg_dsn: str, conn: asyncpg.Connection,
                tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    fake = FakeAsterisk()
    asterisk = web.Application()
    asterisk.router.add_get("/ws", fake.ws)
    asterisk_server = TestServer(asterisk, host="127.0.0.1")
    await asterisk_server.start_server()
    cfg = config.load(ROOT / "config" / "hotline.yaml")
    # 8201's secret is in the YAML; 8202's was generated (the secrets file).
    cfg = dataclasses.replace(
        cfg, phones={**cfg.phones, "8201": config.Phone("8201", "webrtc", secret="pw-8201"),
                     "8202": config.Phone("8202", "webrtc")},
        system=dataclasses.replace(cfg.system, bind="127.0.0.1",
                                   ari_port=asterisk_server.port or 0))
    for login, phone in (("agent_web", "8201"), ("agent1", "8001"), ("agent_gen", "8202")):
        await conn.execute(
            "INSERT INTO agents (login, display_name, role, phone, password_hash) "
            "VALUES ($1, $1, 'agent', $2, $3)", login, phone, agent_store.hash_password("pw"))
    keys = Keyring({"k1": os.urandom(32)}, "k1", os.urandom(32))
    pool = await db_pool.connect(pg_dsn)
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text(json.dumps({"ari_password": "x", "phone:8202": "gen-8202-secret"}))
    app = make_app(cfg, pool, keys, pg_dsn,
                   phone_secrets=lambda: read_phone_secrets(secrets_file))
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    r = await client.post("/api/login", json={"login": "agent_web", "password": "pw"})
    assert r.status == 200, await r.text()
    yield {"client": client, "fake": fake, "app": app, "conn": conn,
           "secrets_file": secrets_file}
    await client.close()
    await asterisk_server.close()
    await pool.close()


async def test_frames_go_both_ways_and_a_close_closes_the_other_side(
        relay: dict[str, Any]) -> None:
    client, fake = relay["client"], relay["fake"]
    ws = await client.ws_connect("/sip", protocols=("sip",))
    assert ws.protocol == "sip"
    await ws.send_str(REGISTER)
    answer = await ws.receive(timeout=5)
    assert (answer.type, answer.data) == (WSMsgType.TEXT, "SIP/2.0 200 OK\r\n\r\n")
    await ws.send_bytes(b"\x00binary")
    await asyncio.sleep(0.2)
    assert fake.received == [REGISTER, b"\x00binary"]
    assert fake.sockets[0].ws_protocol == "sip"

    # The browser goes (a reload, a closed tab): Asterisk's side is closed too.
    await ws.close()
    await asyncio.wait_for(fake.closed.wait(), 5)

    # Asterisk goes (a restart): the browser's socket closes, and the page re-registers.
    fake.closed.clear()
    ws = await client.ws_connect("/sip", protocols=("sip",))
    await asyncio.wait_for(fake.connected.wait(), 5)
    await fake.sockets[-1].close()
    msg = await ws.receive(timeout=5)
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
    await ws.close()


async def test_the_end_of_the_session_closes_the_line(relay: dict[str, Any]) -> None:
    client, fake, app = relay["client"], relay["fake"], relay["app"]
    app[DESK].session_check_seconds = 0.2
    ws = await client.ws_connect("/sip", protocols=("sip",))
    await asyncio.wait_for(fake.connected.wait(), 5)
    await relay["conn"].execute("DELETE FROM desk_sessions")  # logged out, idle or expired
    msg = await ws.receive(timeout=5)
    assert msg.type == WSMsgType.CLOSE and msg.data == 4401
    await asyncio.wait_for(fake.closed.wait(), 5)


async def test_asterisk_unreachable_is_a_502(relay: dict[str, Any]) -> None:
    client, app = relay["client"], relay["app"]
    desk = app[DESK]
    desk.cfg = dataclasses.replace(
        desk.cfg, system=dataclasses.replace(desk.cfg.system, ari_port=closed_port()))
    with pytest.raises(aiohttp.WSServerHandshakeError) as e:
        await client.ws_connect("/sip", protocols=("sip",))
    assert e.value.status == 502


async def test_a_desk_phone_gets_no_line(relay: dict[str, Any]) -> None:
    """agent1's phone is virtual: no account, no /sip, and Asterisk is never reached."""
    client, fake = relay["client"], relay["fake"]
    other = TestClient(client.server)
    await other.start_server()
    r = await other.post("/api/login", json={"login": "agent1", "password": "pw"})
    assert r.status == 200
    assert (await other.get("/api/agent/softphone")).status == 404
    with pytest.raises(aiohttp.WSServerHandshakeError) as e:
        await other.ws_connect("/sip", protocols=("sip",))
    assert e.value.status == 404
    assert not fake.connected.is_set()
    await other.close()


async def _logged_in(relay: dict[str, Any], login: str) -> TestClient:
    other = TestClient(relay["client"].server)
    await other.start_server()
    r = await other.post("/api/login", json={"login": login, "password": "pw"})
    assert r.status == 200
    return other


async def test_a_softphone_gets_its_yaml_secret_or_the_generated_one(
        relay: dict[str, Any]) -> None:
    """The account a page registers with: the YAML's secret, else the generated one read
    from the secrets file when asked (a phone added by `config apply` works at once)."""
    r = await relay["client"].get("/api/agent/softphone")
    assert r.status == 200 and (await r.json())["password"] == "pw-8201"
    assert r.headers["Cache-Control"] == "no-store"
    gen = await _logged_in(relay, "agent_gen")
    r = await gen.get("/api/agent/softphone")
    body = await r.json()
    assert r.status == 200 and (body["phone"], body["password"]) == ("8202", "gen-8202-secret")

    # No secret anywhere (the file lost): no account, in words, and no line to Asterisk.
    relay["secrets_file"].write_text("{}")
    r = await gen.get("/api/agent/softphone")
    assert r.status == 503 and "尚未开通" in (await r.json())["error"]
    with pytest.raises(aiohttp.WSServerHandshakeError) as e:
        await gen.ws_connect("/sip", protocols=("sip",))
    assert e.value.status == 503
    assert not relay["fake"].connected.is_set()


def test_read_phone_secrets_keeps_only_phone_entries(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    assert read_phone_secrets(path) == {}  # no file yet
    path.write_text('{"ari_password": "a", "phone:8101": "s1", "phone:8201": 5}')
    assert read_phone_secrets(path) == {"8101": "s1"}
    path.write_text("not json")
    assert read_phone_secrets(path) == {}
