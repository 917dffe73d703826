"""The desk's case-workflow API over HTTP (aiohttp test server, real PostgreSQL): a case
goes from intake to closed through the endpoints, each user acting in their role, with
sessions, CSRF and plain-words errors; a handler only ever reaches their unit's cases."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent_desk.app import CSRF_HEADER, make_app
from casework import calendar
from db import agents as agent_store
from db import cases as case_store
from db import pool as db_pool
from db.crypto import Keyring
from dialplan import config

ROOT = Path(__file__).resolve().parents[2]
CALLER = "13937760002"


@pytest.fixture
async def desk(pg_dsn: str, conn: asyncpg.Connection) -> AsyncIterator[dict[str, Any]]:
    cfg = config.load(ROOT / "config" / "hotline.yaml")
    keys = Keyring({"k1": os.urandom(32)}, "k1", os.urandom(32))
    pool = await db_pool.connect(pg_dsn)
    server = TestServer(make_app(cfg, pool, keys, pg_dsn))
    await server.start_server()
    yield {"server": server, "keys": keys, "pool": pool}
    await server.close()
    await pool.close()


async def _login(server: TestServer, login: str) -> tuple[TestClient, str]:
    client = TestClient(server)
    await client.start_server()
    r = await client.post("/api/login", json={"login": login, "password": "pw"})
    body = await r.json()
    assert r.status == 200, body
    return client, body["csrf"]


async def _user(conn: asyncpg.Connection, login: str, role: str, unit: int | None = None) -> None:
    await conn.execute("INSERT INTO agents (login, display_name, role, unit_id, password_hash) "
                       "VALUES ($1, $1, $2, $3, $4)", login, role, unit,
                       agent_store.hash_password("pw"))


async def test_a_case_through_the_desk(desk: dict[str, Any], conn: asyncpg.Connection) -> None:
    await calendar.seed_from_package(conn)
    power = await conn.fetchval("INSERT INTO units (code, name, level) VALUES "
                                "('P', '国网南阳供电公司', 1) RETURNING id")
    other = await conn.fetchval("INSERT INTO units (code, name, level) VALUES "
                                "('O', '宛城区人民政府', 1) RETURNING id")
    await _user(conn, "agent1", "agent")
    await _user(conn, "hp", "handler", power)
    await _user(conn, "ho", "handler", other)
    await _user(conn, "admin", "admin")
    case = (await case_store.create(conn, desk["keys"], call_id=None, dialled_number="12345",
                                    service="hotline", caller_number=CALLER))["id"]
    server = desk["server"]
    agent, a_csrf = await _login(server, "agent1")
    hp, h_csrf = await _login(server, "hp")
    ho, o_csrf = await _login(server, "ho")
    admin, _ = await _login(server, "admin")
    base = f"/api/casework/cases/{case}"

    async def post(client: TestClient, csrf: str, path: str, **body: Any) -> tuple[int, Any]:
        r = await client.post(path, json=body, headers={CSRF_HEADER: csrf})
        return r.status, await r.json()

    # No CSRF header, no change.
    r = await agent.post(base + "/register", json={})
    assert r.status == 403
    # Plain-words errors: a missing checklist, an unknown category.
    status, body = await post(agent, a_csrf, base + "/register", title="电压低",
                              category="04", validity={"clear_target": True})
    assert status == 400 and "不符合受理条件" in body["error"]
    valid = {k: True for k in ("clear_target", "objective", "concise", "real_identity",
                               "truthful")}
    status, body = await post(agent, a_csrf, base + "/register", title="电压低",
                              category="99", validity=valid)
    assert status == 400 and "分类" in body["error"]
    status, body = await post(agent, a_csrf, base + "/register", title="电压低",
                              category="04", validity=valid)
    assert status == 200 and len(body["verify_code"]) == 6
    status, body = await post(agent, a_csrf, base + "/assign", lead_unit=power, mode="phone",
                              note="请尽快核实")
    assert status == 200 and body["due_at"]

    # The other unit's handler cannot see it or act on it; the admin sees no cases.
    r = await ho.get(base)
    assert r.status == 404
    r = await ho.get("/api/casework/lists/all")
    assert (await r.json())["cases"] == []
    r = await admin.get("/api/casework/lists/all")
    assert r.status == 403
    # The right unit signs for it, reveals the caller's number with a reason, reports.
    r = await hp.get(base)
    detail = (await r.json())["case"]
    assert detail["personal"]["caller_number"] == "139****0002"
    (assignment,) = detail["assignments"]
    status, _ = await post(ho, o_csrf, f"/api/casework/assignments/{assignment['id']}/accept")
    assert status == 404
    status, _ = await post(hp, h_csrf, f"/api/casework/assignments/{assignment['id']}/accept")
    assert status == 200
    status, body = await post(hp, h_csrf, base + "/reveal", field="caller_number",
                              reason="答复来电人")
    assert (status, body["value"]) == (200, CALLER)
    status, _ = await post(hp, h_csrf, f"/api/casework/assignments/{assignment['id']}/result",
                           result="已处理", reply="已电话答复", replied=True)
    assert status == 200
    # Accepting twice is a conflict, in words.
    status, body = await post(hp, h_csrf,
                              f"/api/casework/assignments/{assignment['id']}/accept")
    assert status == 409 and body["error"]

    # The hotline reviews, revisits, closes; the printable form and the trail are there.
    status, _ = await post(agent, a_csrf, base + "/review", approve=True,
                           public_summary="已修复线路")
    assert status == 200
    status, _ = await post(agent, a_csrf, base + "/revisit", outcome="satisfied")
    assert status == 200
    r = await agent.get(base)
    detail = (await r.json())["case"]
    assert detail["status"] == "closed"
    assert [t["action"] for t in detail["trail"]] == [
        "registered", "assigned", "accepted", "personal_revealed", "result_reported",
        "result_approved", "revisited"]
    r = await agent.get(base + "/form")
    page = await r.text()
    assert r.status == 200 and "受理交办单" in page and "国网南阳供电公司" in page
    assert CALLER not in page

    # Wrong types are refused in words, never a server error.
    status, body = await post(agent, a_csrf, base + "/assign", lead_unit="x")
    assert status in (400, 409) and body["error"]
    r = await agent.post(base + "/merge", data=b"not json",
                         headers={CSRF_HEADER: a_csrf})
    assert r.status == 400
    for c in (agent, hp, ho, admin):
        await c.close()
