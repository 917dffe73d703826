"""The desk's softphone: the agent's browser is their phone (YAML `type: webrtc`).

Agents reach only the desk (behind the TLS proxy in production), so SIP goes through it:
`/sip` is a WebSocket that, for a logged-in agent or supervisor whose phone is webrtc, is
relayed frame by frame to Asterisk's own SIP WebSocket (`ws://<bind>:<ari_port>/ws`,
subprotocol `sip`, res_pjsip_transport_websocket) and closed together with it.
`/api/agent/softphone` tells that agent's page its SIP account. The media (DTLS-SRTP) go
between the browser and Asterisk's RTP ports, not through the desk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import WSMsgType, web

from db import agents as agent_store
from db import sessions as session_store
from dialplan.config import Phone

log = logging.getLogger(__name__)
SIP_PATH = "/sip"
SIP_SUBPROTOCOL = "sip"
SIP_DOMAIN = "hotline"  # the softphone's address is sip:<phone id>@hotline
# Roles that have a phone (the others work on cases only).
PHONE_ROLES = ("agent", "supervisor")
# A SIP message with an SDP offer full of ICE candidates is a few KiB; leave room.
MAX_FRAME = 64 * 1024
UPSTREAM_TIMEOUT = 5.0


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def asterisk_ws_url(cfg: Any) -> str:
    """Asterisk's SIP WebSocket, on its HTTP server (the ARI port, system.bind)."""
    return f"ws://{cfg.system.bind}:{cfg.system.ari_port}/ws"


def routes(key: web.AppKey[Any], cookie: str) -> list[web.RouteDef]:
    """The softphone's account and its SIP WebSocket, with the desk's state from app[key]
    (`cookie`: the session cookie's name, to notice the session's end)."""

    async def own_webrtc_phone(request: web.Request) -> tuple[Phone, str] | web.Response:
        """The session's agent's webrtc phone and its secret (the YAML's, else the
        generated one), else the refusal."""
        desk = request.app[key]
        session: session_store.Session = request["session"]
        async with desk.pool.acquire() as conn:
            agent = await agent_store.get(conn, session.agent_id)
        if agent is None or agent["role"] not in PHONE_ROLES:
            return _error(403, "只有坐席和值班长有电话")
        phone = desk.cfg.phones.get(agent["phone"] or "")
        if phone is None or phone.type != "webrtc":
            return _error(404, "您的电话不是网页电话")
        secret = phone.secret or desk.phone_secrets().get(phone.id)
        if not secret:
            # Rendered only with a secret, so Asterisk has no account for it either.
            return _error(503, "网页电话尚未开通，请联系管理员")
        return phone, secret

    async def account(request: web.Request) -> web.Response:
        found = await own_webrtc_phone(request)
        if isinstance(found, web.Response):
            return found
        phone, secret = found
        return web.json_response(
            {"phone": phone.id, "sip_uri": f"sip:{phone.id}@{SIP_DOMAIN}",
             "ws_path": SIP_PATH, "password": secret},
            headers={"Cache-Control": "no-store"})

    async def sip(request: web.Request) -> web.StreamResponse:
        desk = request.app[key]
        origin = request.headers.get("Origin")
        if origin and urlsplit(origin).netloc != request.host:
            return _error(403, "不允许从其他网站连接")
        found = await own_webrtc_phone(request)
        if isinstance(found, web.Response):
            return found
        phone = found[0]
        browser = web.WebSocketResponse(protocols=(SIP_SUBPROTOCOL,), heartbeat=20,
                                        max_msg_size=MAX_FRAME)
        if not browser.can_prepare(request).ok:
            return _error(400, "这里只接受 SIP WebSocket 连接")
        # Asterisk first: if it cannot be reached the browser gets no socket and retries.
        client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None,
                                                                     sock_connect=5))
        try:
            try:
                upstream = await asyncio.wait_for(client.ws_connect(
                    asterisk_ws_url(desk.cfg), protocols=(SIP_SUBPROTOCOL,),
                    max_msg_size=MAX_FRAME, autoping=True), UPSTREAM_TIMEOUT)
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                log.warning("softphone %s: Asterisk's SIP WebSocket is not reachable (%s)",
                            phone.id, e)
                return _error(502, "电话服务暂时无法连接，请稍后重试")
            await browser.prepare(request)
            log.info("softphone %s connected", phone.id)
            await _relay(desk, request.cookies.get(cookie, ""), browser, upstream)
            log.info("softphone %s disconnected", phone.id)
        finally:
            await client.close()
        return browser

    return [web.get("/api/agent/softphone", account), web.get(SIP_PATH, sip)]


async def _relay(desk: Any, token: str, browser: web.WebSocketResponse,
                 upstream: aiohttp.ClientWebSocketResponse) -> None:
    """Frames both ways until either side (or the session) ends; then both are closed."""

    async def pump(source: Any, send_text: Any, send_bytes: Any) -> None:
        async for msg in source:
            if msg.type == WSMsgType.TEXT:
                await send_text(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await send_bytes(msg.data)
            elif msg.type == WSMsgType.ERROR:
                break

    async def session_ends() -> None:
        while True:
            await asyncio.sleep(desk.session_check_seconds)
            async with desk.pool.acquire() as conn:
                if await session_store.lookup(conn, token, desk.clock(), touch=False) is None:
                    return

    tasks = [asyncio.create_task(pump(browser, upstream.send_str, upstream.send_bytes)),
             asyncio.create_task(pump(upstream, browser.send_str, browser.send_bytes)),
             asyncio.create_task(session_ends())]
    session_ended = False
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        session_ended = tasks[2].done()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # The browser learns that the line is gone (and re-registers); Asterisk drops the
        # registration's flow at once instead of waiting for it to expire.
        code = upstream.close_code if upstream.closed and upstream.close_code else 1000
        if session_ended:
            code = 4401  # as the desk's own /ws: the session ended, log in again
        with contextlib.suppress(Exception):
            await upstream.close()
        with contextlib.suppress(Exception):
            sendable = 1000 <= code < 5000 and code not in (1004, 1005, 1006, 1015)
            await browser.close(code=code if sendable else 1011,
                                message=b"session ended" if session_ended else b"")
