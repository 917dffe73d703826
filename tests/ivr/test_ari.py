"""Tests for ivr.ari against a tiny emulation of Asterisk's REST Interface (aiohttp)."""

from __future__ import annotations

import asyncio
import json
import socket
import types
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ivr import ari as ari_module
from ivr.ari import Ari, AriError, NotFound, basic_auth

USER, PASSWORD, APP = "hotline", "s3cret", "hotline"


@dataclass
class FakeAri:
    """What the emulated Asterisk saw, and what it should answer."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    ws_connects: list[dict[str, str]] = field(default_factory=list)
    # each WebSocket connection sends these events, then closes
    events: list[Any] = field(default_factory=list)
    originate_status: int = 200

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_delete("/ari/channels/{id}", self.delete_channel)
        app.router.add_post("/ari/channels/{id}/answer", self.answer)
        app.router.add_post("/ari/channels", self.originate)
        app.router.add_get("/ari/events", self.events_ws)
        return app

    async def _record(self, request: web.Request) -> None:
        body = await request.text()
        self.requests.append({
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "auth": request.headers.get("Authorization"),
            "body": json.loads(body) if body else None,
        })

    async def delete_channel(self, request: web.Request) -> web.Response:
        await self._record(request)
        if request.match_info["id"] == "alive":
            return web.Response(status=204)
        return web.json_response({"message": "Channel not found"}, status=404)

    async def answer(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"message": "Channel not found"}, status=404)

    async def originate(self, request: web.Request) -> web.Response:
        await self._record(request)
        if self.originate_status != 200:
            return web.json_response({"message": "Allocation failed"},
                                     status=self.originate_status)
        q = request.query
        return web.json_response({
            "id": q.get("channelId", "1700000000.1"),
            "name": f"{q['endpoint']}-00000001",
            "state": "Down",
            "caller": {"name": "", "number": "13800138000"},
        })

    async def events_ws(self, request: web.Request) -> web.WebSocketResponse:
        self.ws_connects.append({**request.query,
                                 "auth": request.headers.get("Authorization", "")})
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        for event in self.events:
            await ws.send_str(event if isinstance(event, str) else json.dumps(event))
        await ws.close()
        return ws


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeAri, str]]:
    """The emulated ARI and its base URL (http://127.0.0.1:PORT)."""
    state = FakeAri()
    server = TestServer(state.app(), host="127.0.0.1")
    await server.start_server()
    try:
        yield state, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll until check() is true, or fail after timeout seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# -- REST --------------------------------------------------------------------------------


async def test_hangup_of_vanished_channel_returns_false(fake: tuple[FakeAri, str]) -> None:
    """Hanging up a caller who already hung up is normal: False, not an exception."""
    state, url = fake
    async with Ari(url, USER, PASSWORD, APP) as ari:
        assert await ari.channel("gone-1").hangup() is False
        assert await ari.channel("alive").hangup(reason="busy") is True
    assert [(r["method"], r["path"]) for r in state.requests] == [
        ("DELETE", "/ari/channels/gone-1"), ("DELETE", "/ari/channels/alive")]
    assert state.requests[0]["query"] == {"reason": "normal"}
    assert state.requests[1]["query"] == {"reason": "busy"}


async def test_other_calls_on_vanished_channel_raise_not_found(fake: tuple[FakeAri, str]) -> None:
    """Other operations on a vanished channel raise NotFound, which callers can catch."""
    _, url = fake
    async with Ari(url, USER, PASSWORD, APP) as ari:
        with pytest.raises(NotFound) as info:
            await ari.channel("gone-1").answer()
    assert info.value.status == 404
    assert "Channel not found" in str(info.value)


async def test_originate_sends_endpoint_app_args_formats_and_auth(
        fake: tuple[FakeAri, str]) -> None:
    """Dialling an agent's phone into the app sends what ARI needs, authenticated."""
    state, url = fake
    async with Ari(url, USER, PASSWORD, APP) as ari:
        ch = await ari.originate("Local/8001@hotline-virtual-phone/n", app_args="agent,8001",
                                 formats="ulaw", timeout=20, channel_id="agent-leg-1")
    assert ch.id == "agent-leg-1"
    assert ch.caller_number == "13800138000"
    [req] = state.requests
    assert (req["method"], req["path"]) == ("POST", "/ari/channels")
    assert req["query"] == {
        "endpoint": "Local/8001@hotline-virtual-phone/n",
        "app": APP,
        "appArgs": "agent,8001",
        "formats": "ulaw",
        "timeout": "20",
        "channelId": "agent-leg-1",
    }
    assert req["auth"] == basic_auth(USER, PASSWORD) == "Basic aG90bGluZTpzM2NyZXQ="
    assert req["body"] is None


async def test_originate_into_dialplan_sends_variables(fake: tuple[FakeAri, str]) -> None:
    """`hotline call` dials into a dialplan context, with channel variables in the body."""
    state, url = fake
    async with Ari(url, USER, PASSWORD, APP) as ari:
        await ari.originate("Local/12345@hotline-inbound/n", context="hotline-citizen",
                            caller_id='"13800138000" <13800138000>',
                            variables={"HOTLINE_DTMF": "1"})
    [req] = state.requests
    q = req["query"]
    assert (q["context"], q["extension"], q["priority"]) == ("hotline-citizen", "s", "1")
    assert "app" not in q
    assert q["callerId"] == '"13800138000" <13800138000>'
    assert req["body"] == {"variables": {"HOTLINE_DTMF": "1"}}


async def test_server_error_raises_ari_error(fake: tuple[FakeAri, str]) -> None:
    """A 500 from Asterisk is an AriError with the status and ARI's message, not NotFound."""
    state, url = fake
    state.originate_status = 500
    async with Ari(url, USER, PASSWORD, APP) as ari:
        with pytest.raises(AriError) as info:
            await ari.originate("PJSIP/8101")
    assert not isinstance(info.value, NotFound)
    assert info.value.status == 500
    assert str(info.value) == "ARI 500: Allocation failed"


async def test_request_outside_context_manager_is_refused() -> None:
    """Using the client before `async with` is a clear error, not an AttributeError."""
    ari = Ari("http://127.0.0.1:1", USER, PASSWORD, APP)
    with pytest.raises(RuntimeError, match="async with"):
        await ari.channel("x").hangup()


# -- events WebSocket ---------------------------------------------------------------------


async def test_events_dispatched_and_websocket_reconnects(fake: tuple[FakeAri, str]) -> None:
    """Events reach handlers by type and '*'; after Asterisk drops the socket the client
    reconnects by itself and runs the on_connect callbacks again (to resync missed state)."""
    state, url = fake
    state.events = [
        {"type": "StasisStart", "channel": {"id": "c1"}, "args": ["inbound", "12345"]},
        {"type": "ChannelDtmfReceived", "channel": {"id": "c1"}, "digit": "1"},
    ]
    typed: list[str] = []
    everything: list[str] = []
    connects: list[bool] = []

    async def on_start(event: dict[str, Any]) -> None:
        typed.append(event["channel"]["id"])

    async def on_any(event: dict[str, Any]) -> None:
        everything.append(event["type"])

    async def on_connect() -> None:
        connects.append(ari.connected.is_set())

    async with Ari(url, USER, PASSWORD, APP, max_backoff=0.2) as ari:
        ari.on("StasisStart", on_start)
        ari.on("*", on_any)
        ari.on_connect(on_connect)
        task = asyncio.create_task(ari.run())
        try:
            await wait_until(lambda: len(connects) >= 2 and len(everything) >= 4)
        finally:
            await stop(task)

    # "connected" is set only once the callbacks (the reconcile) have run
    assert connects[:2] == [False, False]
    assert typed[:2] == ["c1", "c1"]
    assert everything[:4] == ["StasisStart", "ChannelDtmfReceived"] * 2
    assert len(state.ws_connects) >= 2
    # Credentials go in the Authorization header, never in the URL (which gets logged).
    assert state.ws_connects[0] == {"app": APP, "subscribeAll": "false",
                                    "auth": basic_auth(USER, PASSWORD)}


async def test_failing_handler_does_not_stop_later_events(fake: tuple[FakeAri, str]) -> None:
    """One call's handler crashing (or meeting a vanished channel) must not stop the
    events of every other call; garbage from the socket is skipped too."""
    state, url = fake
    state.events = [
        {"type": "StasisStart", "channel": {"id": "c1"}},
        "this is not JSON",
        ["not", "an", "object"],
        {"type": "StasisStart", "channel": {"id": "c2"}},
        {"type": "StasisEnd", "channel": {"id": "c3"}},
    ]
    seen: list[str] = []

    async def crash(event: dict[str, Any]) -> None:
        seen.append("crash:" + event["channel"]["id"])
        if event["channel"]["id"] == "c1":
            raise RuntimeError("bug in one call's flow")
        raise NotFound(404, "Channel not found")

    async def record(event: dict[str, Any]) -> None:
        seen.append(event["type"] + ":" + event["channel"]["id"])

    async def bad_on_connect() -> None:
        raise RuntimeError("resync failed")

    async with Ari(url, USER, PASSWORD, APP, max_backoff=0.2) as ari:
        ari.on("StasisStart", crash)
        ari.on("StasisStart", record)
        ari.on("StasisEnd", record)
        ari.on_connect(bad_on_connect)
        task = asyncio.create_task(ari.run())
        try:
            await wait_until(lambda: "StasisEnd:c3" in seen)
        finally:
            await stop(task)

    assert seen[:5] == ["crash:c1", "StasisStart:c1", "crash:c2", "StasisStart:c2",
                        "StasisEnd:c3"]


async def test_run_keeps_retrying_while_asterisk_is_down() -> None:
    """With nothing listening, run() retries quietly instead of crashing the service."""
    port = _free_port()
    async with Ari(f"http://127.0.0.1:{port}", USER, PASSWORD, APP, max_backoff=0.2) as ari:
        task = asyncio.create_task(ari.run())
        await asyncio.sleep(0.3)
        assert not task.done()
        assert not ari.connected.is_set()
        await stop(task)


async def test_retry_delays_never_exceed_max_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reconnect delay is capped by max_backoff, the first retry included."""
    delays: list[float] = []
    real_sleep = asyncio.sleep

    async def recording_sleep(delay: float, *args: Any) -> Any:
        delays.append(delay)
        return await real_sleep(0)

    # only ivr.ari sees the recording sleep; aiohttp and the event loop keep the real one
    fake_asyncio = types.SimpleNamespace(**vars(asyncio))
    fake_asyncio.sleep = recording_sleep
    monkeypatch.setattr(ari_module, "asyncio", fake_asyncio)

    port = _free_port()
    async with Ari(f"http://127.0.0.1:{port}", USER, PASSWORD, APP, max_backoff=0.2) as ari:
        task = asyncio.create_task(ari.run())
        try:
            await wait_until(lambda: len(delays) >= 3)
        finally:
            await stop(task)
    assert max(delays) <= 0.2, delays


def _free_port() -> int:
    """A local port nobody listens on (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
