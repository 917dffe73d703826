"""Logins of the desk (aiohttp test server, real PostgreSQL): the lock-out counted in the
database (the same for names that are no account, kept across a new desk process, lifted
by a supervisor, per IPv6 /64), the first line in memory (per address and per account,
never global, bounded), idle and absolute session limits, the Secure cookie behind a trusted
proxy, the supervisors' second factor (TOTP, RFC 6238) and CSRF on every state change."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agent_desk.app import COOKIE, CSRF_HEADER, DESK, make_app
from db import agents as agent_store
from db import logins as login_store
from db import pool as db_pool
from db import sessions as session_store
from db import totp
from db.crypto import CryptoError, Keyring
from dialplan import config

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse 12345"
WRONG = "wrong-Passw0rd!"


class Clock:
    """The desk's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Ticker:
    """The clock of the desk's first line in memory (monotonic seconds), moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


Desk = tuple[web.Application, TestServer]
MakeDesk = Callable[..., Awaitable[Desk]]


@pytest.fixture
async def make_desk(pg_dsn: str, conn: asyncpg.Connection) -> AsyncIterator[MakeDesk]:
    """Start desk processes (apps) on the one test database; `conn` empties it first."""
    cfg = config.load(ROOT / "config" / "hotline.yaml")
    keys = Keyring({"k1": os.urandom(32)}, "k1", os.urandom(32))
    started: list[tuple[TestServer, asyncpg.Pool]] = []

    async def start(clock: Clock, trusted: tuple[str, ...] = ()) -> Desk:
        pool = await db_pool.connect(pg_dsn)
        system = dataclasses.replace(cfg.system, trusted_proxies=trusted)
        app = make_app(dataclasses.replace(cfg, system=system), pool, keys, pg_dsn)
        app[DESK].clock = clock
        server = TestServer(app)
        await server.start_server()
        started.append((server, pool))
        return app, server

    yield start
    for server, pool in started:
        await server.close()
        await pool.close()


async def _user(conn: asyncpg.Connection, login: str, role: str = "agent") -> int:
    agent_id: int = await conn.fetchval(
        "INSERT INTO agents (login, display_name, phone, role, password_hash) "
        "VALUES ($1, $1, '', $2, $3) RETURNING id",
        login, role, agent_store.hash_password(PASSWORD))
    return agent_id


async def _client(server: TestServer) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = TestClient(server)
    await client.start_server()
    return client


async def _login(client: TestClient[Any, Any], login: str, password: str = PASSWORD,
                 headers: dict[str, str] | None = None,
                 **extra: Any) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    r = await client.post("/api/login", json={"login": login, "password": password, **extra},
                          headers=headers or {})
    return r.status, await r.json(), r


async def _logged_in(server: TestServer, login: str) -> tuple[TestClient[Any, Any], str]:
    client = await _client(server)
    status, body, _ = await _login(client, login)
    assert status == 200, body
    return client, body["csrf"]


# -- lock-out --------------------------------------------------------------------------


async def test_five_wrong_passwords_lock_the_account_and_unknown_names_alike(
        make_desk: MakeDesk, conn: asyncpg.Connection) -> None:
    await _user(conn, "agent1")
    clock = Clock()
    app, server = await make_desk(clock)
    client = await _client(server)

    # The first line in memory stops an eleventh failure from one address within a minute;
    # this test is about the database's lock-out, so each name gets a minute of its own.
    ticker = Ticker()
    app[DESK].login_limits.clock = ticker

    answers: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for name in ("agent1", "nobody"):  # an account, and a name that is none
        ticker.advance(60)
        answers[name] = []
        for _ in range(login_store.FAILURES_BEFORE_LOCK):
            status, body, _r = await _login(client, name, WRONG)
            answers[name].append((status, body))
        # Now even the right password is refused, with when to come back.
        status, body, r = await _login(client, name, PASSWORD)
        answers[name].append((status, body))
        assert r.headers["Retry-After"] == str(15 * 60)
    # Four failures are just wrong passwords; the fifth locks: no login tells it exists.
    assert answers["agent1"] == answers["nobody"]
    statuses = [s for s, _ in answers["agent1"]]
    assert statuses == [401, 401, 401, 401, 429, 429]
    assert answers["agent1"][0][1] == {"error": "用户名或密码错误"}
    locked = answers["agent1"][-1][1]["error"]
    assert "锁定" in locked and "15 分钟后再试" in locked

    # Every attempt is on record; no password, and no name that is not an account.
    rows = await conn.fetch("SELECT * FROM login_events ORDER BY id")
    mine = [r["outcome"] for r in rows if r["login"] == "agent1"]
    assert mine == ["failure"] * 5 + ["lockout", "locked"]
    assert {r["login"] for r in rows} == {"agent1", None}
    assert all(str(r["address"]) == "127.0.0.1" for r in rows)
    dump = " ".join(str(v) for r in rows for v in r.values())
    assert PASSWORD not in dump and WRONG not in dump and "nobody" not in dump
    await client.close()


async def test_four_failures_do_not_lock_and_a_success_clears_them(
        make_desk: MakeDesk, conn: asyncpg.Connection) -> None:
    await _user(conn, "agent1")
    clock = Clock()
    app, server = await make_desk(clock)
    # A success does not clear its address's count in the first line in memory (ten
    # failures per address and minute): the rounds here are a minute apart.
    ticker = Ticker()
    app[DESK].login_limits.clock = ticker
    client = await _client(server)
    for _ in range(login_store.FAILURES_BEFORE_LOCK - 1):
        assert (await _login(client, "agent1", WRONG))[0] == 401
    assert (await _login(client, "agent1"))[0] == 200
    # The count started again: four more failures still do not lock.
    ticker.advance(60)
    for _ in range(login_store.FAILURES_BEFORE_LOCK - 1):
        assert (await _login(client, "agent1", WRONG))[0] == 401
    assert (await _login(client, "agent1"))[0] == 200
    # Failures further apart than the window do not add up either.
    ticker.advance(60)
    for _ in range(login_store.FAILURES_BEFORE_LOCK - 1):
        assert (await _login(client, "agent1", WRONG))[0] == 401
    clock.advance(minutes=16)
    ticker.advance(16 * 60)
    assert (await _login(client, "agent1", WRONG))[0] == 401
    assert (await _login(client, "agent1"))[0] == 200
    await client.close()


async def test_the_lock_holds_in_another_desk_process_and_ends_by_itself(
        make_desk: MakeDesk, conn: asyncpg.Connection) -> None:
    await _user(conn, "agent1")
    clock = Clock()
    _, first = await make_desk(clock)
    client = await _client(first)
    for _ in range(login_store.FAILURES_BEFORE_LOCK):
        await _login(client, "agent1", WRONG)
    await client.close()
    # A restarted desk (a new app, nothing in memory) on the same database.
    _, second = await make_desk(clock)
    client = await _client(second)
    status, body, _ = await _login(client, "agent1")
    assert status == 429 and "锁定" in body["error"]
    clock.advance(minutes=14)
    status, body, _ = await _login(client, "agent1")
    assert status == 429 and "1 分钟后再试" in body["error"]
    clock.advance(minutes=1, seconds=1)
    assert (await _login(client, "agent1"))[0] == 200
    await client.close()


async def test_a_supervisor_unlocks_an_account(make_desk: MakeDesk,
                                               conn: asyncpg.Connection) -> None:
    agent = await _user(conn, "agent1")
    await _user(conn, "other")
    await _user(conn, "lead", "supervisor")
    clock = Clock()
    _, server = await make_desk(clock)
    client = await _client(server)
    for _ in range(login_store.FAILURES_BEFORE_LOCK):
        await _login(client, "agent1", WRONG)
    assert (await _login(client, "agent1"))[0] == 429

    other, o_csrf = await _logged_in(server, "other")
    r = await other.post(f"/api/admin/agents/{agent}/unlock", headers={CSRF_HEADER: o_csrf})
    assert r.status == 403
    lead, csrf = await _logged_in(server, "lead")
    r = await lead.get("/api/admin/locked_agents")
    assert [a["login"] for a in (await r.json())["agents"]] == ["agent1"]
    r = await lead.post(f"/api/admin/agents/{agent}/unlock", headers={CSRF_HEADER: csrf})
    assert r.status == 200 and (await r.json())["was_locked"] is True
    r = await lead.get("/api/admin/locked_agents")
    assert (await r.json())["agents"] == []
    assert (await _login(client, "agent1"))[0] == 200
    assert await conn.fetchval(
        "SELECT a.login FROM login_events e JOIN agents a ON a.id = e.actor_id "
        "WHERE e.outcome = 'unlocked' AND e.agent_id = $1", agent) == "lead"
    for c in (client, other, lead):
        await c.close()


async def test_one_address_trying_many_names_is_stopped(
        make_desk: MakeDesk, conn: asyncpg.Connection,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(login_store, "ADDRESS_FAILURES", 6)
    await _user(conn, "agent1")
    clock = Clock()
    # The test client comes from 127.0.0.1: a trusted proxy, so X-Forwarded-For counts.
    _, server = await make_desk(clock, trusted=("127.0.0.1",))
    client = await _client(server)
    attacker = {"X-Forwarded-For": "203.0.113.7"}
    for i in range(6):  # six names, none tried often enough to lock it
        assert (await _login(client, f"guess{i}", WRONG, headers=attacker))[0] == 401
    status, body, _ = await _login(client, "agent1", headers=attacker)
    assert status == 429 and "此地址" in body["error"]
    # Another PC behind the same proxy is not affected.
    status, _, _ = await _login(client, "agent1", headers={"X-Forwarded-For": "203.0.113.8"})
    assert status == 200
    addresses = {r["a"] for r in await conn.fetch(
        "SELECT DISTINCT host(address) AS a FROM login_events")}
    assert addresses == {"203.0.113.7", "203.0.113.8"}
    await client.close()


# -- the first line in memory: per address (IPv6 per /64) and per account, never global --


def _from(address: str) -> dict[str, str]:
    """The headers of a request that the trusted proxy (127.0.0.1) forwards from `address`."""
    return {"X-Forwarded-For": address}


async def _fail_all(client: TestClient[Any, Any],
                    tries: list[tuple[str, str]]) -> list[int]:
    """Wrong passwords for (login, address) pairs, ten at a time (argon2 takes a while)."""
    statuses: list[int] = []
    for i in range(0, len(tries), 10):
        answers = await asyncio.gather(*(_login(client, name, WRONG, headers=_from(address))
                                         for name, address in tries[i:i + 10]))
        statuses += [status for status, _, _ in answers]
    return statuses


async def test_a_flood_of_failures_from_many_addresses_locks_no_other_agent_out(
        make_desk: MakeDesk, conn: asyncpg.Connection) -> None:
    await _user(conn, "agent2")
    _, server = await make_desk(Clock(), trusted=("127.0.0.1",))
    client = await _client(server)
    # 150 failures within a minute: 50 addresses, 3 each; 40 names, at most 4 each (so
    # neither the address nor the name reaches a limit of its own).
    tries = [(f"guess{i % 40}", f"198.51.100.{i // 3 + 1}") for i in range(150)]
    assert await _fail_all(client, tries) == [401] * 150
    # An agent with the right password, at their own PC in the duty room, logs in.
    status, body, _ = await _login(client, "agent2", headers=_from("192.0.2.10"))
    assert status == 200, body
    await client.close()


async def test_eleven_failures_from_one_address_stop_that_address_only(
        make_desk: MakeDesk, conn: asyncpg.Connection) -> None:
    await _user(conn, "agent1")
    app, server = await make_desk(Clock(), trusted=("127.0.0.1",))
    ticker = Ticker()
    app[DESK].login_limits.clock = ticker
    client = await _client(server)
    # Eleven names, one failure each (no name is locked; the database's address limit is
    # 30): the eleventh try within the minute is refused before any database work.
    statuses = await _fail_all(client, [(f"guess{i}", "203.0.113.7") for i in range(11)])
    assert statuses == [401] * 10 + [429]
    status, body, r = await _login(client, "agent1", headers=_from("203.0.113.7"))
    assert status == 429 and body == {"error": "此地址登录失败次数过多，请一分钟后再试"}
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    # Another PC (behind the same proxy) logs in.
    status, body, _ = await _login(client, "agent1", headers=_from("203.0.113.8"))
    assert status == 200, body
    # The refusals did no database work: only the ten failures and the login are on record.
    outcomes = [r["outcome"] for r in await conn.fetch(
        "SELECT outcome FROM login_events ORDER BY id")]
    assert outcomes == ["failure"] * 10 + ["success"]
    # A minute later the address may try again.
    ticker.advance(60)
    status, body, _ = await _login(client, "agent1", headers=_from("203.0.113.7"))
    assert status == 200, body
    await client.close()


async def test_one_account_is_stopped_from_every_address_after_ten_failures(
        make_desk: MakeDesk, conn: asyncpg.Connection,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The database would lock the name after five: lift that to see the first line's own.
    monkeypatch.setattr(login_store, "FAILURES_BEFORE_LOCK", 100)
    await _user(conn, "agent1")
    await _user(conn, "agent2")
    _, server = await make_desk(Clock(), trusted=("127.0.0.1",))
    client = await _client(server)
    tries = [("agent1", f"198.51.100.{i + 1}") for i in range(11)]
    assert await _fail_all(client, tries) == [401] * 10 + [429]
    status, body, r = await _login(client, "agent1", headers=_from("192.0.2.10"))
    assert status == 429 and body == {"error": "登录失败次数过多，请一分钟后再试"}
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    # Another account from the same address is not stopped.
    status, body, _ = await _login(client, "agent2", headers=_from("192.0.2.10"))
    assert status == 200, body
    await client.close()


async def test_ipv6_addresses_share_a_budget_per_64(
        make_desk: MakeDesk, conn: asyncpg.Connection) -> None:
    await _user(conn, "agent1")
    _, server = await make_desk(Clock(), trusted=("127.0.0.1",))
    client = await _client(server)
    # Ten failures from two addresses of one /64 (a machine may take a fresh address of
    # its /64 for every try) ...
    tries = [(f"guess{i}", "2001:db8:1:2::1" if i % 2 else "2001:db8:1:2:ffff:0:0:9")
             for i in range(10)]
    assert await _fail_all(client, tries) == [401] * 10
    # ... stop that /64, from any of its addresses ...
    status, body, _ = await _login(client, "agent1", headers=_from("2001:db8:1:2:abcd::7"))
    assert status == 429 and "此地址" in body["error"]
    # ... and no other.
    status, body, _ = await _login(client, "agent1", headers=_from("2001:db8:1:3::1"))
    assert status == 200, body
    await client.close()


async def test_the_database_counts_an_ipv6_address_per_64_too(
        make_desk: MakeDesk, conn: asyncpg.Connection,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(login_store, "ADDRESS_FAILURES", 6)
    await _user(conn, "agent1")
    _, server = await make_desk(Clock(), trusted=("127.0.0.1",))
    client = await _client(server)
    # Six failures from six addresses of one /64 (under the first line's limit of ten) ...
    tries = [(f"guess{i}", f"2001:db8:1:2::{i + 1:x}") for i in range(6)]
    assert await _fail_all(client, tries) == [401] * 6
    # ... stop the /64 in the database (its lock, not the first line's minute) ...
    status, body, r = await _login(client, "agent1", headers=_from("2001:db8:1:2::abcd"))
    assert status == 429 and "此地址" in body["error"] and "15 分钟后再试" in body["error"]
    assert r.headers["Retry-After"] == str(15 * 60)
    # ... and no other /64.
    status, body, _ = await _login(client, "agent1", headers=_from("2001:db8:1:3::1"))
    assert status == 200, body
    # The record keeps each exact address; only the count groups them.
    addresses = {r["a"] for r in await conn.fetch(
        "SELECT host(address) AS a FROM login_events WHERE outcome = 'failure'")}
    assert addresses == {address for _, address in tries}
    await client.close()


async def test_the_desks_memory_stays_bounded_under_a_flood_of_addresses_and_names(
        make_desk: MakeDesk, conn: asyncpg.Connection) -> None:
    app, server = await make_desk(Clock(), trusted=("127.0.0.1",))
    limits = app[DESK].login_limits
    limits.accounts.max_keys = limits.addresses.max_keys = 20
    client = await _client(server)
    tries = [(f"guess{i}", f"2001:db8:{i:x}::1") for i in range(60)]
    assert await _fail_all(client, tries) == [401] * 60
    assert len(limits.accounts) == 20 and len(limits.addresses) == 20
    # Nothing that was typed is kept in memory (it may be a password in the wrong box).
    assert not any(isinstance(key, str) for key in limits.accounts.keys())
    await client.close()


async def test_forwarded_headers_from_an_untrusted_peer_are_ignored(
        make_desk: MakeDesk, conn: asyncpg.Connection) -> None:
    await _user(conn, "agent1")
    _, server = await make_desk(Clock())  # no trusted proxies
    client = await _client(server)
    status, _, r = await _login(client, "agent1", headers={
        "X-Forwarded-For": "198.51.100.1", "X-Forwarded-Proto": "https"})
    assert status == 200
    cookie = r.headers["Set-Cookie"]
    assert "Secure" not in cookie  # the peer may not claim TLS for itself
    assert await conn.fetchval("SELECT host(address) FROM login_events") == "127.0.0.1"
    await client.close()


async def test_cookie_is_httponly_strict_and_secure_behind_a_trusted_tls_proxy(
        make_desk: MakeDesk, conn: asyncpg.Connection) -> None:
    await _user(conn, "agent1")
    _, server = await make_desk(Clock(), trusted=("127.0.0.0/8",))
    client = await _client(server)
    _, _, r = await _login(client, "agent1", headers={"X-Forwarded-Proto": "https"})
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" in cookie
    # The same proxy forwarding plain HTTP: no Secure flag (the browser would drop it).
    _, _, r = await _login(client, "agent1", headers={"X-Forwarded-Proto": "http"})
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    await client.close()


# -- idle and absolute limits ----------------------------------------------------------


async def test_an_idle_session_ends_while_an_active_one_goes_on(
        make_desk: MakeDesk, conn: asyncpg.Connection) -> None:
    await _user(conn, "agent1")
    clock = Clock()
    _, server = await make_desk(clock)
    idle, _ = await _logged_in(server, "agent1")
    looking, _ = await _logged_in(server, "agent1")
    working, csrf = await _logged_in(server, "agent1")
    pinging, _ = await _logged_in(server, "agent1")
    ws = await pinging.ws_connect("/ws")

    clock.advance(minutes=20)
    # A GET is no sign of life (an open desk refreshes itself on pushes) ...
    assert (await looking.get("/api/me")).status == 200
    # ... a change is, and so is the desk's ping on the user's input.
    r = await working.post("/api/agent/state", json={"state": "paused", "reason": "break"},
                           headers={CSRF_HEADER: csrf})
    assert r.status == 200, await r.text()
    await ws.send_json({"type": "activity"})
    for _ in range(50):
        seen = await conn.fetch("SELECT last_seen_at FROM desk_sessions")
        if sum(r["last_seen_at"] == clock.now for r in seen) == 2:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the activity ping did not reach the session")

    clock.advance(minutes=session_store.IDLE_MINUTES - 20 + 1)  # 31 minutes after login
    for client in (idle, looking):
        r = await client.get("/api/me")
        assert r.status == 401 and (await r.json())["error"] == "请先登录"
    assert (await working.get("/api/me")).status == 200
    assert (await pinging.get("/api/me")).status == 200
    await ws.close()
    for c in (idle, looking, working, pinging):
        await c.close()


async def test_an_open_desk_on_duty_stays_and_closes_when_its_session_ends(
        make_desk: MakeDesk, conn: asyncpg.Connection) -> None:
    agent = await _user(conn, "agent1")
    clock = Clock()
    app, server = await make_desk(clock)
    app[DESK].session_check_seconds = 0.05
    client, _ = await _logged_in(server, "agent1")
    await conn.execute("UPDATE agents SET state = 'ready' WHERE id = $1", agent)
    ws = await client.ws_connect("/ws")
    # Ready and waiting for calls, with the desk open: not idle, whatever the hour.
    for _ in range(4):
        clock.advance(minutes=20)
        await asyncio.sleep(0.3)
        assert (await client.get("/api/me")).status == 200
    # Paused and untouched for longer than the limit: the session ends, the socket closes.
    await conn.execute("UPDATE agents SET state = 'paused' WHERE id = $1", agent)
    await asyncio.sleep(0.3)
    clock.advance(minutes=session_store.IDLE_MINUTES + 1)
    msg = await _closed(ws)
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4401
    assert (await client.get("/api/me")).status == 401
    await client.close()


async def _closed(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    async with asyncio.timeout(5):
        while True:
            msg = await ws.receive()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return msg


async def test_a_call_is_never_cut_by_the_sessions_lifetime(conn: asyncpg.Connection) -> None:
    agent = await _user(conn, "agent1")
    token, _ = await session_store.create(conn, agent, T0)
    await conn.execute("UPDATE agents SET state = 'on_call' WHERE id = $1", agent)
    # The open desk checks in (every 30 s in the desk; every 4 minutes here).
    t = T0
    while t < T0 + timedelta(hours=session_store.MAX_HOURS, minutes=40):
        assert await session_store.keep_alive(conn, token, t) is not None, t
        t += timedelta(minutes=4)
    # The call and its wrap-up are over: the session ends at the next check.
    await conn.execute("UPDATE agents SET state = 'paused' WHERE id = $1", agent)
    t += timedelta(minutes=10)
    assert await session_store.keep_alive(conn, token, t) is None
    assert await session_store.lookup(conn, token, t) is None
    # Without a call, the lifetime is the lifetime, however busy the user.
    token, _ = await session_store.create(conn, agent, T0)
    late = T0 + timedelta(hours=session_store.MAX_HOURS, seconds=1)
    t = T0
    while t < late - timedelta(minutes=20):
        assert await session_store.lookup(conn, token, t) is not None, t
        t += timedelta(minutes=20)
    assert await session_store.lookup(conn, token, late - timedelta(seconds=2)) is not None
    assert await session_store.lookup(conn, token, late) is None


async def test_logout_ends_the_session_and_closes_the_socket(
        make_desk: MakeDesk, conn: asyncpg.Connection) -> None:
    await _user(conn, "agent1")
    _, server = await make_desk(Clock())
    client, csrf = await _logged_in(server, "agent1")
    ws = await client.ws_connect("/ws")
    r = await client.post("/api/logout", headers={CSRF_HEADER: csrf})
    assert r.status == 200
    msg = await _closed(ws)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert await conn.fetchval("SELECT count(*) FROM desk_sessions") == 0
    assert (await client.get("/api/me")).status == 401
    await client.close()


# -- second factor ---------------------------------------------------------------------


RFC6238_SHA1 = b"12345678901234567890"
RFC6238_VECTORS = [  # RFC 6238 appendix B: time, SHA-1, SHA-256, SHA-512 (8 digits)
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]


@pytest.mark.parametrize(("at", "sha1", "sha256", "sha512"), RFC6238_VECTORS)
def test_totp_matches_the_rfc_6238_test_vectors(at: int, sha1: str, sha256: str,
                                                sha512: str) -> None:
    assert totp.code_at(RFC6238_SHA1, at, 8) == sha1
    assert totp.code_at(b"12345678901234567890123456789012", at, 8, "sha256") == sha256
    assert totp.code_at(RFC6238_SHA1 * 3 + b"1234", at, 8, "sha512") == sha512


def test_totp_accepts_one_step_of_drift_and_each_step_once() -> None:
    assert [totp.hotp(RFC6238_SHA1, c) for c in range(3)] == ["755224", "287082", "359152"]
    now = datetime.fromtimestamp(1111111111, UTC)
    step = totp.step_of(now)
    for offset, accepted in ((-2, False), (-1, True), (0, True), (1, True), (2, False)):
        code = totp.hotp(RFC6238_SHA1, step + offset)
        assert (totp.matching_step(RFC6238_SHA1, code, now, 0) is not None) is accepted
    code = totp.code_at(RFC6238_SHA1, now)
    assert totp.matching_step(RFC6238_SHA1, code, now, step) is None  # used already
    assert totp.matching_step(RFC6238_SHA1, "12345", now, 0) is None
    assert totp.matching_step(RFC6238_SHA1, "abcdef", now, 0) is None


def _code(secret_b32: str, when: datetime) -> str:
    secret = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    return totp.code_at(secret, when)


async def test_second_factor_enrol_login_replay_and_disable(
        make_desk: MakeDesk, conn: asyncpg.Connection) -> None:
    lead = await _user(conn, "lead", "supervisor")
    await _user(conn, "agent1")
    clock = Clock()
    app, server = await make_desk(clock)
    agent, a_csrf = await _logged_in(server, "agent1")
    r = await agent.post("/api/me/totp/enrol", headers={CSRF_HEADER: a_csrf})
    assert r.status == 403  # duty agents manage nothing: no second factor for them
    client, csrf = await _logged_in(server, "lead")
    h = {CSRF_HEADER: csrf}
    assert (await (await client.get("/api/me")).json())["totp"] == "off"

    r = await client.post("/api/me/totp/enrol", headers=h)
    new = await r.json()
    assert r.status == 200 and new["totp"] == "pending"
    assert re.fullmatch(r"[A-Z2-7]{32}", new["secret"])
    assert new["uri"].startswith("otpauth://totp/hotline%3Alead?")
    assert f"secret={new['secret']}" in new["uri"] and "period=30" in new["uri"]
    # Stored encrypted and bound to this agent: a copy on another agent does not decrypt.
    row = await conn.fetchrow("SELECT key_id, secret FROM agent_totp WHERE agent_id = $1",
                              lead)
    raw = base64.b32decode(new["secret"])
    assert raw not in bytes(row["secret"])
    keyring = app[DESK].keyring
    assert keyring.decrypt_bytes(row["key_id"], row["secret"],
                                 f"agent_totp:{lead}".encode()) == raw
    with pytest.raises(CryptoError):
        keyring.decrypt_bytes(row["key_id"], row["secret"], b"agent_totp:999")
    # Not on until confirmed: a wrong code does not confirm, the right one does.
    r = await client.post("/api/me/totp/confirm", json={"code": "000000"}, headers=h)
    assert r.status == 400 and "不正确" in (await r.json())["error"]
    code = _code(new["secret"], clock.now)
    r = await client.post("/api/me/totp/confirm", json={"code": code}, headers=h)
    assert r.status == 200 and (await r.json())["totp"] == "on"
    r = await client.post("/api/me/totp/enrol", headers=h)
    assert r.status == 409  # on already: switching it off first needs a code
    await client.post("/api/logout", headers=h)
    sessions = await conn.fetchval("SELECT count(*) FROM desk_sessions WHERE agent_id = $1", lead)

    # The password alone: asked for the code, and no session yet.
    fresh = await _client(server)
    status, body, r = await _login(fresh, "lead")
    assert (status, body["totp_required"]) == (401, True)
    assert "Set-Cookie" not in r.headers
    assert await conn.fetchval("SELECT count(*) FROM desk_sessions WHERE agent_id = $1",
                               lead) == sessions
    # The code just used to confirm is not accepted again (replay), nor a wrong one.
    status, body, _ = await _login(fresh, "lead", code=code)
    assert (status, body["totp_required"]) == (401, True)
    status, body, _ = await _login(fresh, "lead", code="123456")
    assert status == 401
    # Wrong codes count toward the lock-out like wrong passwords.
    assert await conn.fetchval("SELECT failures FROM login_throttle WHERE agent_id = $1",
                               lead) == 3  # with the wrong code at confirming
    clock.advance(seconds=30)
    code = _code(new["secret"], clock.now)
    status, body, _ = await _login(fresh, "lead", code=code)
    assert status == 200, body
    assert await conn.fetchval("SELECT count(*) FROM login_throttle") == 0
    other = await _client(server)
    status, _, _ = await _login(other, "lead", code=code)  # the same code, another PC
    assert status == 401

    # Off again: only with a current code.
    h = {CSRF_HEADER: body["csrf"]}
    r = await fresh.post("/api/me/totp/disable", json={"code": "000000"}, headers=h)
    assert r.status == 400
    r = await fresh.post("/api/me/totp/disable", json={"code": code}, headers=h)
    assert r.status == 400  # used already
    clock.advance(seconds=30)
    r = await fresh.post("/api/me/totp/disable", json={"code": _code(new["secret"], clock.now)},
                         headers=h)
    assert r.status == 200 and (await r.json())["totp"] == "off"
    assert (await _login(other, "lead"))[0] == 200
    outcomes = [r["outcome"] for r in await conn.fetch(
        "SELECT outcome FROM login_events WHERE agent_id = $1 ORDER BY id", lead)]
    assert outcomes == ["success", "totp_failure", "totp_enabled", "totp_failure",
                        "totp_failure", "success", "totp_failure", "totp_failure",
                        "totp_failure", "totp_disabled", "success"]
    for c in (agent, client, fresh, other):
        await c.close()


# -- CSRF ------------------------------------------------------------------------------


async def test_every_state_change_needs_the_csrf_header(
        make_desk: MakeDesk, conn: asyncpg.Connection) -> None:
    await _user(conn, "admin", "admin")
    app, server = await make_desk(Clock())
    client, csrf = await _logged_in(server, "admin")
    checked = []
    for route in app.router.routes():
        if route.method in ("GET", "HEAD", "OPTIONS", "*"):
            continue
        path = route.resource.canonical if route.resource else ""
        if path == "/api/login":
            continue
        url = re.sub(r"\{[^}]+\}", "1", path)
        for headers in ({}, {CSRF_HEADER: "not-" + csrf}):
            r = await client.request(route.method, url, json={}, headers=headers)
            assert r.status == 403, (route.method, path, r.status)
        checked.append(path)
    assert "/api/logout" in checked and "/api/admin/agents/{agent_id}/unlock" in checked
    assert len(checked) > 20
    # And the session is still there: the refused requests changed nothing.
    assert (await client.get("/api/me")).status == 200
    await client.close()
