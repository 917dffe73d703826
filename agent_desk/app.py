"""The agent desk: an aiohttp web app with a WebSocket that pushes the live queue.

Duty agents log in, go ready or not ready, see the live queue, get the call offered to
them with its case, and fill the case in. Changes reach the desk from the call-control
service as PostgreSQL notices (db.events); nothing is polled.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import yaml
from aiohttp import WSMsgType, web

from agent_desk import (
    admin_api,
    audit_api,
    casework_api,
    dialout_api,
    headers,
    ratelimit,
    softphone,
)
from agent_desk.open311 import open311_routes
from agent_desk.publication_routes import publication_routes
from casework.stats import AssessmentFormula
from db import agents as agent_store
from db import announcement, events, keys, stats, totp, worklist
from db import calls as call_store
from db import cases as case_store
from db import logins as login_store
from db import sessions as session_store
from db.crypto import CryptoError, Keyring
from dialplan import config
from dialplan.config import HotlineConfig

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
COOKIE = "hotline_session"
CSRF_HEADER = "X-Hotline-CSRF"
MAX_BODY = 64 * 1024
# /api routes answered without a session: logging in, and the API's own description.
PUBLIC_API = ("/api/login", "/api/openapi.json")
OPENAPI = Path(__file__).parent / "openapi.yaml"
SESSION_CHECK_SECONDS = 30
# An open desk pings on the user's input; more than one ping in this time is not written.
ACTIVITY_WRITE_SECONDS = 30
# Who may lift a login lock-out.
UNLOCKERS = ("supervisor", "admin")
# Roles that work the live queue (the others work on cases only).
DUTY_ROOM = ("agent", "supervisor")


@dataclass
class Desk:
    """The desk's state: configuration and connections, plus who is connected."""

    cfg: HotlineConfig
    pool: asyncpg.Pool
    keyring: Keyring
    dsn: str
    config_path: str | None = None
    sockets: dict[int, set[web.WebSocketResponse]] = field(
        default_factory=lambda: defaultdict(set))
    # The login's first line in memory: per account and per client address, never global.
    login_limits: ratelimit.LoginLimits = field(default_factory=ratelimit.LoginLimits)
    # Role and unit of each connected desk user: case notices go only where they may.
    roles: dict[int, tuple[str, int | None]] = field(default_factory=dict)
    snapshot_pending: bool = False
    # The clock of lock-outs, sessions and TOTP codes (tests move it).
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    session_check_seconds: float = SESSION_CHECK_SECONDS
    # The generated phone secrets (phone id -> secret), read when asked: a phone that
    # `config apply` adds gets its secret after the desk started.
    phone_secrets: Callable[[], Mapping[str, str]] = field(default=lambda: {})


DESK: web.AppKey[Desk] = web.AppKey("desk", Desk)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise web.HTTPBadRequest(text=json.dumps({"error": "请求内容不是有效的 JSON"}),
                                 content_type="application/json") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text=json.dumps({"error": "请求内容必须是 JSON 对象"}),
                                 content_type="application/json")
    if casework_api.unstorable(body):
        raise web.HTTPBadRequest(text=json.dumps({"error": casework_api.UNSTORABLE}),
                                 content_type="application/json")
    return body


# -- authentication --------------------------------------------------------------------


async def _session(request: web.Request) -> session_store.Session | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    desk = request.app[DESK]
    # Only requests that change something count as the user's activity: a GET may be an
    # open desk refreshing itself on a push. (The desk pings on user input: see websocket.)
    touch = request.method not in ("GET", "HEAD")
    async with desk.pool.acquire() as conn:
        return await session_store.lookup(conn, token, desk.clock(), touch=touch)


@functools.lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network,
                                                 ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _ip(text: str | None) -> login_store.Address | None:
    try:
        address = ipaddress.ip_address((text or "").strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def client_of(request: web.Request) -> tuple[login_store.Address | None, bool]:
    """The client's address and whether it reached us over TLS. X-Forwarded-For and
    X-Forwarded-Proto are believed only from a proxy in system.trusted_proxies; from
    anyone else they are ignored (they would let a client pick its own address)."""
    trusted = _networks(request.app[DESK].cfg.system.trusted_proxies)

    def believed(a: login_store.Address | None) -> bool:
        return a is not None and any(a in n for n in trusted)

    peer = _ip(request.remote)
    if not believed(peer):
        return peer, request.secure
    proto = request.headers.get("X-Forwarded-Proto")
    secure = (proto.split(",")[0].strip().lower() == "https") if proto else request.secure
    # The client is the last hop that is not one of our proxies (earlier hops are what
    # the client itself claims).
    client = peer
    hops = ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")
    for hop in reversed([h for h in hops if h.strip()]):
        address = _ip(hop)
        if address is None:
            break
        client = address
        if not believed(address):
            break
    return client, secure


@web.middleware
async def auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every /api and /ws route (and the softphone's /sip) needs a session; state changes
    also need the CSRF header."""
    path = request.path
    if not (path.startswith("/api/") or path in ("/ws", softphone.SIP_PATH)) \
            or path in PUBLIC_API:
        return await handler(request)
    session = await _session(request)
    if session is None:
        return _error(401, "请先登录")
    if request.method not in ("GET", "HEAD") and request.headers.get(CSRF_HEADER) != session.csrf:
        return _error(403, "请求缺少有效的 CSRF 令牌，请刷新页面")
    request["session"] = session
    return await handler(request)


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """No traceback ever reaches a user: unexpected errors become a plain 500."""
    if casework_api.unstorable([request.path, *request.query.items()]):
        message = "请求地址含有无效字符（如 %00）"
        if request.path.startswith("/open311/"):  # Open311's own error format
            return web.json_response([{"code": 400, "description": message}], status=400)
        return _error(400, message)
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        # aiohttp's own answer is an English sentence in plain text.
        return _error(413, f"请求内容过大，不能超过 {MAX_BODY // 1024} KiB")
    except web.HTTPException:
        raise
    except OSError:
        if request.path.startswith("/static/"):  # e.g. a file name too long for the OS
            return _error(404, "没有这个文件")
        log.exception("desk request %s %s failed", request.method, request.path)
        return _error(500, "服务器内部错误，请稍后重试")
    except Exception:
        log.exception("desk request %s %s failed", request.method, request.path)
        return _error(500, "服务器内部错误，请稍后重试")


async def login(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    # Only JSON: a cross-site form cannot send it without a CORS preflight (login CSRF).
    if request.content_type != "application/json":
        return _error(415, "请求必须是 JSON")
    body = await _json_body(request)
    name, password = body.get("login"), body.get("password")
    if not isinstance(name, str) or not isinstance(password, str) or len(name) > 64 \
            or len(password) > 256:
        return _error(400, "请输入用户名和密码")
    address, secure = client_of(request)
    # A first line in memory, before any database work: a burst from one address (IPv6:
    # one /64) or at one account. Never a count of everyone's: that would let anyone lock
    # the whole duty room out.
    refusal = desk.login_limits.refused(name, address)
    if refusal is not None:
        message = ("此地址登录失败次数过多，请一分钟后再试" if refusal.by == "address"
                   else "登录失败次数过多，请一分钟后再试")
        resp = _error(429, message)
        resp.headers["Retry-After"] = str(refusal.seconds)
        return resp
    code = body.get("code")
    if code is not None and (not isinstance(code, str) or len(code) > 16):
        return _error(400, "动态验证码应为 6 位数字")
    clock = desk.clock()
    async with desk.pool.acquire() as conn:
        agent = await agent_store.by_login(conn, name)
        attempt = login_store.Attempt(name, agent["id"] if agent else None, address)
        # The lock-out is the database's (it holds across restarts and desk processes);
        # names that are no account are locked the same way: the answer tells nothing.
        blocked = await login_store.address_blocked_until(conn, address, clock)
        if blocked is not None:
            await login_store.record(conn, attempt, "address_limited", clock)
            minutes = login_store.retry_minutes(blocked, clock)
            return _locked(f"此地址登录失败次数过多，请 {minutes} 分钟后再试", blocked, clock)
        until = await login_store.locked_until(conn, name, clock)
        if until is not None:
            await login_store.record(conn, attempt, "locked", clock)
            return _locked_login(until, clock)
    # argon2 is slow on purpose: keep it off the event loop, and hash for unknown names
    # too, so the answer's timing does not tell which logins exist.
    stored = agent["password_hash"] if agent is not None else None
    ok = await asyncio.get_running_loop().run_in_executor(
        None, agent_store.verify_password, stored, password)
    if agent is None or not ok:
        return await _login_failed(desk, attempt, clock, "failure", "用户名或密码错误")
    async with desk.pool.acquire() as conn:
        if await totp.status(conn, agent["id"]) == "on":
            # Two steps: the password was right; no session until the code is right too.
            if not code:
                return web.json_response({"error": "请输入验证器上的 6 位动态验证码",
                                          "totp_required": True}, status=401)
            if not await totp.use_code(conn, desk.keyring, agent["id"], code, clock):
                return await _login_failed(desk, attempt, clock, "totp_failure",
                                           "动态验证码不正确或已用过，请输入验证器上新的验证码",
                                           totp_required=True)
        await login_store.succeeded(conn, attempt, clock)
        desk.login_limits.succeeded(name)
        token, session = await session_store.create(conn, agent["id"], clock)
        if agent["state"] == "logged_out":
            agent = await agent_store.set_state(conn, agent["id"], "paused", "login")
    log.info("agent %s logged in to the desk", agent["login"])
    resp = web.json_response({"agent": agent_store.as_dict(agent), "csrf": session.csrf})
    # Secure when the browser reached us over TLS (directly or through a trusted proxy):
    # then the cookie is never sent over plain HTTP.
    resp.set_cookie(COOKIE, token, httponly=True, samesite="Strict", secure=secure, path="/")
    return resp


def _locked(message: str, until: datetime, now: datetime) -> web.Response:
    seconds = max(1, int((until - now).total_seconds()))
    resp = _error(429, message)
    resp.headers["Retry-After"] = str(seconds)
    return resp


def _locked_login(until: datetime, now: datetime) -> web.Response:
    return _locked(f"登录失败次数过多，该账号已暂时锁定，请 "
                   f"{login_store.retry_minutes(until, now)} 分钟后再试，"
                   "或请值班长解锁", until, now)


async def _login_failed(desk: Desk, attempt: login_store.Attempt, now: datetime,
                        outcome: str, message: str, **extra: Any) -> web.Response:
    """Count a failed password or code toward the lock-out and answer it."""
    desk.login_limits.failed(attempt.login, attempt.address)
    async with desk.pool.acquire() as conn:
        until = await login_store.failed(conn, attempt, now, outcome)
    log.info("desk login failed%s", " and locked the login" if until else "")
    if until is not None:
        return _locked_login(until, now)
    return web.json_response({"error": message, **extra}, status=401)


async def logout(request: web.Request) -> web.Response:
    """Log out; during a call the logout is carried out when the call ends (202)."""
    desk = request.app[DESK]
    session: session_store.Session = request["session"]
    async with desk.pool.acquire() as conn:
        agent, pending = await agent_store.request_state(conn, session.agent_id, "logged_out",
                                                         "logout")
        if pending:
            return web.json_response({"agent": agent_store.as_dict(agent), "pending": "logout"},
                                     status=202)
        await session_store.end(conn, request.cookies[COOKIE])
    for ws in list(desk.sockets.get(session.agent_id, ())):
        await ws.close()
    resp = web.json_response({"ok": True})
    resp.del_cookie(COOKIE, path="/")
    return resp


async def me(request: web.Request) -> web.Response:
    session: session_store.Session = request["session"]
    async with request.app[DESK].pool.acquire() as conn:
        agent = await agent_store.get(conn, session.agent_id)
        second_factor = await totp.status(conn, session.agent_id)
    if agent is None:
        return _error(401, "请先登录")
    return web.json_response({"agent": agent_store.as_dict(agent), "csrf": session.csrf,
                              "totp": second_factor,
                              "totp_allowed": agent["role"] in totp.ROLES})


# -- the second factor (TOTP) and unlocking --------------------------------------------


async def _me_for_totp(request: web.Request) -> asyncpg.Record | web.Response:
    session: session_store.Session = request["session"]
    async with request.app[DESK].pool.acquire() as conn:
        agent = await agent_store.get(conn, session.agent_id)
    if agent is None or agent["role"] not in totp.ROLES:
        return _error(403, "只有值班长、督查和管理员账号可以启用动态验证码")
    return agent


async def totp_enrol(request: web.Request) -> web.Response:
    """A new secret for the user's authenticator app, shown this once; it takes effect
    once confirmed with a code."""
    desk = request.app[DESK]
    agent = await _me_for_totp(request)
    if isinstance(agent, web.Response):
        return agent
    async with desk.pool.acquire() as conn:
        try:
            new = await totp.enrol(conn, desk.keyring, agent["id"], agent["login"],
                                   desk.clock())
        except totp.TotpError as e:
            return _error(409, str(e))
    return web.json_response({"secret": new.secret, "uri": new.uri, "totp": "pending"})


async def _code_step(request: web.Request, step: str) -> web.Response:
    """Confirm (step 'confirm') or switch off (step 'disable') with a current code; wrong
    codes count toward the account's lock-out like wrong passwords."""
    desk = request.app[DESK]
    agent = await _me_for_totp(request)
    if isinstance(agent, web.Response):
        return agent
    code = (await _json_body(request)).get("code")
    if not isinstance(code, str) or not code.strip():
        return _error(400, "请输入验证器上的 6 位动态验证码")
    clock = desk.clock()
    address, _ = client_of(request)
    attempt = login_store.Attempt(agent["login"], agent["id"], address)
    async with desk.pool.acquire() as conn:
        until = await login_store.locked_until(conn, agent["login"], clock)
        if until is not None:
            return _locked_login(until, clock)
        state = await totp.status(conn, agent["id"])
        if state != ("pending" if step == "confirm" else "on"):
            return _error(409, "请先获取新的密钥" if step == "confirm" else "动态验证码未启用")
        fn = totp.confirm if step == "confirm" else totp.disable
        if await fn(conn, desk.keyring, agent["id"], code, clock):
            await login_store.record(conn, attempt,
                                     "totp_enabled" if step == "confirm" else "totp_disabled",
                                     clock)
            log.info("agent %d switched the second factor %s", agent["id"],
                     "on" if step == "confirm" else "off")
            return web.json_response({"totp": "on" if step == "confirm" else "off"})
        until = await login_store.failed(conn, attempt, clock, "totp_failure")
    if until is not None:
        return _locked_login(until, clock)
    return _error(400, "动态验证码不正确或已用过，请输入验证器上新的验证码")


async def totp_confirm(request: web.Request) -> web.Response:
    return await _code_step(request, "confirm")


async def totp_disable(request: web.Request) -> web.Response:
    return await _code_step(request, "disable")


async def _role_in(request: web.Request, roles: tuple[str, ...],
                   message: str) -> session_store.Session | web.Response:
    session: session_store.Session = request["session"]
    async with request.app[DESK].pool.acquire() as conn:
        role = await conn.fetchval("SELECT role FROM agents WHERE id = $1", session.agent_id)
    return session if role in roles else _error(403, message)


async def _target(request: web.Request) -> asyncpg.Record | None:
    agent_id = path_id(request, "agent_id")
    if agent_id is None:
        return None
    async with request.app[DESK].pool.acquire() as conn:
        return await agent_store.get(conn, agent_id)


async def unlock_agent(request: web.Request) -> web.Response:
    """A supervisor or admin lifts an account's login lock-out."""
    desk = request.app[DESK]
    who = await _role_in(request, UNLOCKERS, "仅值班长或管理员可以解锁账号")
    if isinstance(who, web.Response):
        return who
    target = await _target(request)
    if target is None:
        return _error(404, "没有这个账号")
    address, _ = client_of(request)
    async with desk.pool.acquire() as conn:
        was_locked = await login_store.unlock(conn, target["id"], target["login"],
                                              who.agent_id, desk.clock(), address)
    log.info("agent %d unlocked the login of agent %d", who.agent_id, target["id"])
    return web.json_response({"agent_id": target["id"], "was_locked": was_locked})


async def locked_agents(request: web.Request) -> web.Response:
    """The accounts locked out now (for the supervisor to unlock)."""
    desk = request.app[DESK]
    who = await _role_in(request, UNLOCKERS, "仅值班长或管理员可以查看")
    if isinstance(who, web.Response):
        return who
    async with desk.pool.acquire() as conn:
        rows = await login_store.locked_accounts(conn, desk.clock())
    return web.json_response({"agents": [
        {"id": r["id"], "login": r["login"], "display_name": r["display_name"],
         "locked_until": r["locked_until"].isoformat()} for r in rows]})


async def reset_totp(request: web.Request) -> web.Response:
    """An admin switches off someone's second factor (a lost phone); they enrol again."""
    desk = request.app[DESK]
    who = await _role_in(request, ("admin",), "仅管理员可以重置动态验证码")
    if isinstance(who, web.Response):
        return who
    target = await _target(request)
    if target is None:
        return _error(404, "没有这个账号")
    address, _ = client_of(request)
    async with desk.pool.acquire() as conn:
        removed = await totp.reset(conn, target["id"])
        if removed:
            await login_store.record(
                conn, login_store.Attempt(target["login"], target["id"], address),
                "totp_disabled", desk.clock(), who.agent_id)
    log.info("admin %d reset the second factor of agent %d", who.agent_id, target["id"])
    return web.json_response({"agent_id": target["id"], "was_on": removed})


def _wanted_state(desk: Desk, body: dict[str, Any],
                  allowed: tuple[str, ...]) -> tuple[str, str | None] | web.Response:
    wanted = body.get("state")
    if wanted == "not_ready":  # the name of 'paused' in the first desk
        wanted = "paused"
    if wanted not in allowed:
        return _error(400, f"状态只能是 {' / '.join(allowed)}")
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        return _error(400, "暂停原因无效")
    if wanted == "paused":
        reason = reason or next(iter(desk.cfg.pause_reasons))
        if reason not in desk.cfg.pause_reasons and reason != "supervisor":
            return _error(400, "暂停原因无效")
    else:
        reason = None
    return wanted, reason


async def set_state(request: web.Request) -> web.Response:
    """Ready or paused (with a reason); during a call a pause waits for its end (202)."""
    desk = request.app[DESK]
    session: session_store.Session = request["session"]
    parsed = _wanted_state(desk, await _json_body(request), ("ready", "paused"))
    if isinstance(parsed, web.Response):
        return parsed
    async with desk.pool.acquire() as conn:
        me = await agent_store.get(conn, session.agent_id)
        if me is not None and me["role"] != "agent" and parsed[0] == "ready":
            return _error(409, "此账号不接听排队来电")
        agent, pending = await agent_store.request_state(conn, session.agent_id, *parsed)
    body: dict[str, Any] = {"agent": agent_store.as_dict(agent)}
    if pending:
        body["pending"] = agent["after_call"]
    return web.json_response(body, status=202 if pending else 200)


async def extend_wrap_up(request: web.Request) -> web.Response:
    """More wrap-up time to finish the case (up to the queue's max_wrap_up)."""
    desk = request.app[DESK]
    session: session_store.Session = request["session"]
    seconds = (await _json_body(request)).get("seconds", 30)
    if not isinstance(seconds, int) or isinstance(seconds, bool) or not 1 <= seconds <= 600:
        return _error(400, "延长时间应为 1 到 600 秒")
    limit = max((q.max_wrap_up for q in desk.cfg.queues.values()), default=0)
    async with desk.pool.acquire() as conn:
        agent = await agent_store.extend_wrap_up(conn, session.agent_id, seconds, limit)
    if agent is None:
        return _error(409, "当前不在话后处理状态")
    return web.json_response({"agent": agent_store.as_dict(agent)})


async def pause_reasons(request: web.Request) -> web.Response:
    reasons = request.app[DESK].cfg.pause_reasons
    return web.json_response({"reasons": [{"code": k, "name": v} for k, v in reasons.items()]})


async def _supervisor(request: web.Request) -> session_store.Session | web.Response:
    session: session_store.Session = request["session"]
    async with request.app[DESK].pool.acquire() as conn:
        role = await conn.fetchval("SELECT role FROM agents WHERE id = $1", session.agent_id)
    if role != "supervisor":
        return _error(403, "仅值班长可以操作")
    return session


async def supervise_agent(request: web.Request) -> web.Response:
    """A duty supervisor pauses or logs out an agent (after their call, if on one)."""
    desk = request.app[DESK]
    who = await _supervisor(request)
    if isinstance(who, web.Response):
        return who
    agent_id = path_id(request, "agent_id")
    if agent_id is None:
        return _error(404, "没有这个坐席")
    body = await _json_body(request)
    parsed = _wanted_state(desk, {**body, "reason": body.get("reason") or "supervisor"},
                           ("paused", "logged_out", "ready"))
    if isinstance(parsed, web.Response):
        return parsed
    async with desk.pool.acquire() as conn:
        target = await agent_store.get(conn, agent_id)
        if target is None:
            return _error(404, "没有这个坐席")
        if target["state"] == "logged_out" and parsed[0] != "logged_out":
            return _error(409, "该坐席未登录，不能设置为就绪或暂停")
        agent, pending = await agent_store.request_state(conn, agent_id, *parsed)
    log.info("supervisor %d set agent %d to %s%s", who.agent_id, agent_id, parsed[0],
             " after the call" if pending else "")
    return web.json_response({"agent": agent_store.as_dict(agent),
                              "pending": agent["after_call"] if pending else None},
                             status=202 if pending else 200)


# -- supervision: wallboard, worklist, the message to callers ----------------------------

SHORT_ABANDON_SECONDS = 5
SERVICE_LEVEL_SECONDS = 15  # GB/T 33358: a person answers within 15 s


async def wallboard(request: web.Request) -> web.Response:
    """Live queue and agents, and today's figures per interval, from the queue log."""
    desk = request.app[DESK]
    who = await _supervisor(request)
    if isinstance(who, web.Response):
        return who
    try:
        minutes = int(request.query.get("interval", "15"))
    except ValueError:
        minutes = 0
    if minutes not in (15, 30, 60):
        return _error(400, "统计间隔只能是 15、30 或 60 分钟")
    async with desk.pool.acquire() as conn:
        start = await stats.day_start(conn)
        now = await conn.fetchval("SELECT now()")
        live = await stats.live(conn)
        today = await stats.figures(conn, start, now, None, SHORT_ABANDON_SECONDS,
                                    SERVICE_LEVEL_SECONDS)
        bins = await stats.intervals(conn, start, now, minutes, None, SHORT_ABANDON_SECONDS,
                                     SERVICE_LEVEL_SECONDS)
    return web.json_response({
        "now": now.isoformat(),
        "short_abandon_seconds": SHORT_ABANDON_SECONDS,
        "service_level_seconds": SERVICE_LEVEL_SECONDS,
        "queues": [{"queue": q.id, "name": q.name,
                    **live["queues"].get(q.id, {"waiting": 0, "longest_wait": 0})}
                   for q in desk.cfg.queues.values()],
        "agents": live["agents"],
        "today": asdict(today),
        "intervals": bins,
    })


async def supervise_call(request: web.Request) -> web.Response:
    """Listen, whisper or barge on a call in progress: the supervisor's phone rings."""
    desk = request.app[DESK]
    who = await _supervisor(request)
    if isinstance(who, web.Response):
        return who
    try:
        call_id = uuid.UUID(request.match_info["call_id"])
    except ValueError:
        return _error(404, "没有这个通话")
    mode = (await _json_body(request)).get("mode")
    if mode not in ("listen", "whisper", "barge"):
        return _error(400, "方式只能是 listen（监听）、whisper（耳语）或 barge（强插）")
    async with desk.pool.acquire() as conn:
        state = await conn.fetchval("SELECT state FROM calls WHERE id = $1", call_id)
        if state != "connected":
            return _error(409, "该通话不在进行中")
        phone = await conn.fetchval("SELECT phone FROM agents WHERE id = $1", who.agent_id)
        if not phone:
            return _error(409, "您的账号没有配置电话，无法监听")
        await events.notify(conn, events.SUPERVISE, call_id=str(call_id),
                            supervisor_id=who.agent_id, mode=mode)
    log.info("supervisor %d asked to %s call %s", who.agent_id, mode, call_id)
    return web.json_response({"call_id": str(call_id), "mode": mode}, status=202)


async def worklist_items(request: web.Request) -> web.Response:
    """Callers owed a call back, masked (the agent who calls back opens the case)."""
    desk = request.app[DESK]
    who = await _role_in(request, DUTY_ROOM, "回拨清单仅供值班室使用")
    if isinstance(who, web.Response):
        return who
    async with desk.pool.acquire() as conn:
        rows = await worklist.open_items(conn)
        items = []
        for r in rows:
            masked = await _masked_caller(conn, desk, r["case_id"]) if r["case_id"] else None
            items.append(worklist.item_dict(r, masked))
    return web.json_response({"items": items})


async def worklist_done(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    who = await _role_in(request, DUTY_ROOM, "回拨清单仅供值班室使用")
    if isinstance(who, web.Response):
        return who
    session: session_store.Session = request["session"]
    try:
        call_id = uuid.UUID(request.match_info["call_id"])
    except ValueError:
        return _error(404, "没有这条回拨记录")
    outcome = (await _json_body(request)).get("outcome")
    if outcome not in worklist.OUTCOMES:
        return _error(400, "回拨结果只能是 reached、no_answer 或 invalid")
    async with desk.pool.acquire() as conn:
        row = await worklist.record_attempt(conn, call_id, session.agent_id, outcome)
    if row is None:
        return _error(404, "没有这条待回拨记录，或已处理")
    return web.json_response({"call_id": str(call_id), "status": row["status"],
                              "attempts": row["attempts"]})


async def get_announcement(request: web.Request) -> web.Response:
    async with request.app[DESK].pool.acquire() as conn:
        return web.json_response(await announcement.get(conn))


async def set_announcement(request: web.Request) -> web.Response:
    """The duty supervisor switches the emergency or after-hours message on or off."""
    desk = request.app[DESK]
    who = await _supervisor(request)
    if isinstance(who, web.Response):
        return who
    body = await _json_body(request)
    mode, text = body.get("mode"), body.get("text", "")
    if mode not in announcement.MODES:
        return _error(400, "模式只能是 off、emergency 或 after_hours")
    if not isinstance(text, str) or len(text) > announcement.MAX_TEXT:
        return _error(400, f"通知内容应为不超过 {announcement.MAX_TEXT} 字的文本")
    if mode != "off" and not text.strip():
        return _error(400, "请填写要播放的通知内容")
    async with desk.pool.acquire() as conn:
        await announcement.set_mode(conn, mode, text.strip(), who.agent_id)
        current = await announcement.get(conn)
    log.info("supervisor %d set the callers' message to %s", who.agent_id, mode)
    return web.json_response(current)


# -- cases -----------------------------------------------------------------------------


async def _case_for_agent(conn: asyncpg.Connection, desk: Desk, agent_id: int,
                          case_id: int) -> dict[str, Any] | None:
    """The case, decrypted, only if this agent is handling (or being offered) its call."""
    allowed = await conn.fetchval(
        """SELECT 1 FROM cases c WHERE c.id = $1 AND (c.agent_id = $2
             OR EXISTS (SELECT 1 FROM call_offers o WHERE o.call_id = c.call_id
                        AND o.agent_id = $2))""",
        case_id, agent_id,
    )
    if not allowed:
        return None
    return await case_store.get(conn, desk.keyring, case_id)


def path_id(request: web.Request, name: str) -> int | None:
    """A positive database id from the path, or None (not a number, or beyond what the
    id columns hold: 2**70 would fail in the database driver, not be a 404)."""
    text = request.match_info[name]
    # ASCII digits only: int() would also take "٣", " 3", "+3" and "1_0".
    if not (text.isascii() and text.isdigit() and len(text) <= 10):
        return None
    value = int(text)
    return value if 0 < value < 2**31 else None


def _case_id(request: web.Request) -> int:
    case_id = path_id(request, "case_id")
    if case_id is None:
        raise web.HTTPNotFound(text=json.dumps({"error": "没有这个工单"}),
                               content_type="application/json")
    return case_id


async def get_case(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    session: session_store.Session = request["session"]
    async with desk.pool.acquire() as conn:
        case = await _case_for_agent(conn, desk, session.agent_id, _case_id(request))
    if case is None:
        return _error(404, "没有这个工单，或您无权查看")
    return web.json_response({"case": case})


async def put_case(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    session: session_store.Session = request["session"]
    case_id = _case_id(request)
    body = await _json_body(request)
    changes = {k: v for k, v in body.items()
               if k in ("name", "address", "work_unit", "callback_number", "category", "content")}
    unknown = sorted(set(body) - set(changes))
    if unknown:
        return _error(400, f"未知字段：{', '.join(unknown)}")
    async with desk.pool.acquire() as conn:
        if await _case_for_agent(conn, desk, session.agent_id, case_id) is None:
            return _error(404, "没有这个工单，或您无权修改")
        try:
            case = await case_store.update(conn, desk.keyring, case_id, changes)
        except case_store.CaseInputError as e:
            return _error(400, _zh_case_error(e))
    log.info("case %s saved by agent %d", case["case_no"], session.agent_id)
    return web.json_response({"case": case})


def _zh_case_error(e: case_store.CaseInputError) -> str:
    return f"工单内容有误：{e}"


async def categories(request: web.Request) -> web.Response:
    async with request.app[DESK].pool.acquire() as conn:
        rows = await conn.fetch("SELECT code, name, parent FROM categories WHERE active "
                                "ORDER BY sort, code")
    return web.json_response({"categories": [dict(r) for r in rows]})


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The desk API's OpenAPI description (agent_desk/openapi.yaml), read once."""
    doc: dict[str, Any] = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    return doc


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


async def health(request: web.Request) -> web.Response:
    async with request.app[DESK].pool.acquire() as conn:
        await conn.fetchval("SELECT 1")
    return web.json_response({"ok": True})


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


async def cases_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "cases.html")


async def admin_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "admin.html")


# -- live pushes -----------------------------------------------------------------------


async def snapshot(desk: Desk) -> dict[str, Any]:
    """The live queue and every agent's state, with callers' numbers masked."""
    async with desk.pool.acquire() as conn:
        waiting = await call_store.waiting(conn)
        agents = [a for a in await agent_store.list_active(conn) if a["role"] in DUTY_ROOM]
        message = await announcement.get(conn)
        masked: dict[int, str | None] = {}
        for row in waiting:
            if row["case_id"] is not None:
                masked[row["case_id"]] = await _masked_caller(conn, desk, row["case_id"])
    return {
        "type": "snapshot",
        "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "announcement": message,
        "queue": {
            "waiting": [
                {**call_store.call_dict(r), "waited_seconds": round(float(r["waited"] or 0), 1),
                 "caller_masked": masked.get(r["case_id"])}
                for r in waiting
            ],
            "agents": [
                {k: v for k, v in agent_store.as_dict(a).items() if k != "login"} for a in agents
            ],
        },
    }


async def _masked_caller(conn: asyncpg.Connection, desk: Desk, case_id: int) -> str | None:
    try:
        case = await case_store.get(conn, desk.keyring, case_id)
    except CryptoError:
        return None
    if case is None:
        return None
    return case_store.mask_phone(case["caller_number"] or case["callback_number"])


async def _send(ws: web.WebSocketResponse, message: dict[str, Any]) -> None:
    try:
        await ws.send_json(message)
    except (ConnectionResetError, RuntimeError):
        pass  # closing socket: the client reconnects and gets a fresh snapshot


async def _broadcast_snapshot(desk: Desk) -> None:
    # Coalesce bursts of notices into one snapshot.
    if desk.snapshot_pending:
        return
    desk.snapshot_pending = True
    await asyncio.sleep(0.05)
    desk.snapshot_pending = False
    message = await snapshot(desk)
    for who, sockets in list(desk.sockets.items()):
        if desk.roles.get(who, ("agent",))[0] not in DUTY_ROOM:
            continue  # the live queue is the duty room's business, not the units'
        for ws in list(sockets):
            await _send(ws, message)


async def _call_message(
    desk: Desk, kind: str, agent_id: int, call_id: str
) -> dict[str, Any] | None:
    async with desk.pool.acquire() as conn:
        call = await call_store.get(conn, uuid.UUID(call_id))
        if call is None or call["case_id"] is None:
            return None
        case = await _case_for_agent(conn, desk, agent_id, call["case_id"])
    return {"type": kind, "call": call_store.call_dict(call), "case": case}


async def _to_agent(desk: Desk, agent_id: int, message: dict[str, Any]) -> None:
    for ws in list(desk.sockets.get(agent_id, ())):
        await _send(ws, message)


async def handle_notice(desk: Desk, notice: dict[str, Any]) -> None:
    """Turn a database notice into pushes to the desks concerned."""
    kind = notice["kind"]
    agent_id = notice.get("agent_id")
    if kind in (events.OFFER, events.CONNECTED) and agent_id is not None:
        msg = await _call_message(desk, kind, agent_id, notice["call_id"])
        if msg:
            await _to_agent(desk, agent_id, msg)
    elif kind == events.CALL_ENDED:
        ended = {"type": "call_ended", "call_id": notice["call_id"],
                 "reason": notice.get("reason")}
        for who in {agent_id, *notice.get("rung", [])} - {None}:
            await _to_agent(desk, who, ended)
    elif kind == events.KEYS:  # new primary data key or index key
        keys.refresh_soon(desk.pool, desk.keyring)
    elif kind == events.CONFIG and desk.config_path:
        try:
            desk.cfg = config.load(desk.config_path)  # queues, pause reasons
        except config.ConfigError as e:
            log.error("the applied configuration does not load here: %s", e)
    elif kind == events.AGENT and agent_id is not None:
        async with desk.pool.acquire() as conn:
            agent = await agent_store.get(conn, agent_id)
        if agent:
            await _to_agent(desk, agent_id, {"type": "agent", "agent": agent_store.as_dict(agent)})
    elif kind == events.CASE:
        # Only ids and the step taken: the desk re-reads the case through the API, which
        # checks what this user may see.
        msg = {"type": "case", "case_id": notice.get("case_id"), "action": notice.get("action")}
        units = set(notice.get("unit_ids") or [])
        for who, (role, unit) in list(desk.roles.items()):
            if role in ("agent", "supervisor", "supervision") or (
                    role == "handler" and unit in units):
                await _to_agent(desk, who, msg)
    elif kind == events.OUTBOUND and agent_id is not None:
        # A call out this agent placed moved on (ringing, connected, ended and how).
        await _to_agent(desk, agent_id, {
            "type": "outbound", "outbound_id": notice.get("outbound_id"),
            "state": notice.get("state"), "outcome": notice.get("outcome"),
            "case_id": notice.get("case_id")})
    elif kind == events.ALERT:
        msg = {"type": "alert", "report_id": notice.get("report_id"),
               "title": notice.get("title")}
        for who, (role, _unit) in list(desk.roles.items()):
            if role in ("agent", "supervisor", "supervision"):
                await _to_agent(desk, who, msg)
    if kind in (events.QUEUE, events.AGENT, events.OFFER, events.CONNECTED, events.CALL_ENDED,
                events.ANNOUNCEMENT):
        await _broadcast_snapshot(desk)


async def websocket(request: web.Request) -> web.StreamResponse:
    desk = request.app[DESK]
    session: session_store.Session = request["session"]
    origin = request.headers.get("Origin")
    if origin and urlsplit(origin).netloc != request.host:
        return _error(403, "不允许从其他网站连接")
    ws = web.WebSocketResponse(heartbeat=20, max_msg_size=4096)
    await ws.prepare(request)
    desk.sockets[session.agent_id].add(ws)
    async with desk.pool.acquire() as conn:
        who = await agent_store.get(conn, session.agent_id)
    if who is not None:
        desk.roles[session.agent_id] = (who["role"], who["unit_id"])
    watcher = asyncio.create_task(_watch_session(desk, ws, request.cookies[COOKIE]))
    try:
        if desk.roles.get(session.agent_id, ("agent",))[0] in DUTY_ROOM:
            await _send(ws, await snapshot(desk))
        # A desk reloaded mid-call gets its call and case again.
        async with desk.pool.acquire() as conn:
            call = await conn.fetchrow(
                """SELECT id, state FROM calls c WHERE (c.agent_id = $1 AND c.state = 'connected')
                   OR (c.state = 'offered' AND EXISTS (SELECT 1 FROM call_offers o
                        WHERE o.call_id = c.id AND o.agent_id = $1))
                   ORDER BY arrived_at DESC LIMIT 1""",
                session.agent_id,
            )
        if call:
            kind = events.OFFER if call["state"] == "offered" else events.CONNECTED
            resend = await _call_message(desk, kind, session.agent_id, str(call["id"]))
            if resend:
                await _send(ws, resend)
        last_write = 0.0
        async for incoming in ws:
            if incoming.type == WSMsgType.ERROR:
                break
            # The only message a desk sends: {"type": "activity"}, on the user's input (the
            # socket itself is no sign of life: it stays open all shift).
            if _is_activity(incoming) and \
                    time.monotonic() - last_write >= ACTIVITY_WRITE_SECONDS:
                last_write = time.monotonic()
                async with desk.pool.acquire() as conn:
                    if await session_store.lookup(conn, request.cookies[COOKIE],
                                                  desk.clock()) is None:
                        await ws.close(code=4401, message=b"session ended")
    finally:
        watcher.cancel()
        desk.sockets[session.agent_id].discard(ws)
        if not desk.sockets[session.agent_id]:
            desk.roles.pop(session.agent_id, None)
    return ws


def _is_activity(message: Any) -> bool:
    if message.type != WSMsgType.TEXT:
        return False
    try:
        data = json.loads(message.data)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("type") == "activity"


async def _watch_session(desk: Desk, ws: web.WebSocketResponse, token: str) -> None:
    """Close the socket once its session ends (logout, idle, lifetime). While its agent
    works the queue the open desk keeps the session from going idle, and from ending
    during a call (db/sessions.keep_alive)."""
    while not ws.closed:
        await asyncio.sleep(desk.session_check_seconds)
        async with desk.pool.acquire() as conn:
            alive = await session_store.keep_alive(conn, token, desk.clock())
        if alive is None:
            await ws.close(code=4401, message=b"session ended")


async def _listen(app: web.Application) -> Any:
    desk = app[DESK]
    tasks: set[asyncio.Task[None]] = set()

    def spawn(coro: Any) -> None:
        task = asyncio.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def on_notice(notice: dict[str, Any]) -> None:
        spawn(handle_notice(desk, notice))

    def on_connect() -> None:
        # Notices may have been missed while disconnected: send everyone a fresh snapshot,
        # and re-read the keys (a rotation may have happened meanwhile).
        spawn(_broadcast_snapshot(desk))
        keys.refresh_soon(desk.pool, desk.keyring)

    listener = asyncio.create_task(events.listen_forever(desk.dsn, on_notice, on_connect))
    yield
    listener.cancel()
    for sockets in desk.sockets.values():
        for ws in list(sockets):
            await ws.close()


def make_app(cfg: HotlineConfig, pool: asyncpg.Pool, keyring: Keyring,
             dsn: str, config_path: str | None = None,
             phone_secrets: Callable[[], Mapping[str, str]] | None = None) -> web.Application:
    """The desk's aiohttp application (phone_secrets: the generated phone secrets)."""
    app = web.Application(middlewares=[error_middleware, auth_middleware],
                          client_max_size=MAX_BODY)
    app[DESK] = Desk(cfg, pool, keyring, dsn, config_path=config_path,
                     phone_secrets=phone_secrets or dict)
    # CSP, nosniff, no-referrer, no-store: on every response, errors included (headers.py).
    app.on_response_prepare.append(headers.add_security_headers)
    app.router.add_get("/", index)
    app.router.add_get("/healthz", health)
    app.router.add_get("/api/openapi.json", openapi)
    app.router.add_post("/api/login", login)
    app.router.add_post("/api/logout", logout)
    app.router.add_get("/api/me", me)
    app.router.add_post("/api/me/totp/enrol", totp_enrol)
    app.router.add_post("/api/me/totp/confirm", totp_confirm)
    app.router.add_post("/api/me/totp/disable", totp_disable)
    app.router.add_get("/api/admin/locked_agents", locked_agents)
    app.router.add_post("/api/admin/agents/{agent_id}/unlock", unlock_agent)
    app.router.add_post("/api/admin/agents/{agent_id}/totp/reset", reset_totp)
    app.router.add_post("/api/agent/state", set_state)
    app.router.add_post("/api/agent/wrap_up", extend_wrap_up)
    app.router.add_get("/api/pause_reasons", pause_reasons)
    app.router.add_post("/api/supervisor/agents/{agent_id}/state", supervise_agent)
    app.router.add_get("/api/wallboard", wallboard)
    app.router.add_post("/api/supervisor/calls/{call_id}/monitor", supervise_call)
    app.router.add_get("/api/worklist", worklist_items)
    app.router.add_post("/api/worklist/{call_id}/done", worklist_done)
    app.router.add_get("/api/announcement", get_announcement)
    app.router.add_post("/api/supervisor/announcement", set_announcement)
    app.router.add_get("/api/categories", categories)
    app.router.add_get("/api/cases/{case_id}", get_case)
    app.router.add_put("/api/cases/{case_id}", put_case)
    app.router.add_get("/ws", websocket)
    app.router.add_routes(softphone.routes(DESK, COOKIE))  # /sip and its account
    app.router.add_get("/cases", cases_page)
    app.router.add_routes(casework_api.routes(DESK))
    app.router.add_get("/admin", admin_page)
    app.router.add_routes(admin_api.routes(DESK))
    app.router.add_routes(dialout_api.routes(DESK))  # 回拨: calls out from a case
    app.router.add_routes(audit_api.routes(DESK))  # the auditor's page and listing
    # Public, without login: Open311 GeoReport v2 (read only) and the weekly publication.
    app.router.add_routes(open311_routes(pool))
    app.router.add_routes(publication_routes(
        pool, criticism_urgings=cfg.casework.criticism_urgings,
        formula=AssessmentFormula.from_mapping(cfg.casework.assessment)))
    app.router.add_static("/static", STATIC)
    app.cleanup_ctx.append(_listen)
    return app
