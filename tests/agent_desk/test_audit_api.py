"""The auditor's listing of personal-data access (GET /api/audit/reveals, the /audit page):
what a reveal, a played voice message, a progress lookup by phone and a retention erasure
leave in it, its filters and CSV, that only the auditor reads it and without any personal
value, that the auditor reaches no case, and that no route changes the log."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent_desk.app import CSRF_HEADER, make_app
from casework import audit, calendar, retention
from casework import workflow as wf
from db import agents as agent_store
from db import cases as case_store
from db import pool as db_pool
from db.crypto import Keyring
from dialplan import config
from tests.conftest import ROOT

CALLER, NAME = "13937760777", "周晓燕"
USERS = {"agent1": "agent", "lead": "supervisor", "admin": "admin", "sv": "supervision",
         "shenji": "auditor"}


@pytest.fixture
async def desk(pg_dsn: str, conn: asyncpg.Connection) -> AsyncIterator[dict[str, Any]]:
    cfg = config.load(ROOT / "config" / "hotline.yaml")
    keys = Keyring({"k1": os.urandom(32)}, "k1", os.urandom(32))
    pool = await db_pool.connect(pg_dsn)
    server = TestServer(make_app(cfg, pool, keys, pg_dsn))
    await server.start_server()
    ids = {}
    for login, role in USERS.items():
        ids[login] = await conn.fetchval(
            "INSERT INTO agents (login, display_name, role, phone, password_hash) "
            "VALUES ($1, $2, $3, $4, $5) RETURNING id", login, f"{login}的名字", role,
            "8001" if role == "agent" else None, agent_store.hash_password("pw"))
    now = datetime.now(UTC)
    cases = []
    for _ in range(2):
        row = await case_store.create(conn, keys, call_id=None, dialled_number="12345",
                                      service="hotline", caller_number=CALLER)
        await case_store.update(conn, keys, row["id"], {"name": NAME})
        await wf.register(conn, row["id"], wf.Actor(ids["agent1"], "agent"), now,
                          title="噪音扰民", category="04",
                          validity=dict.fromkeys(wf.VALIDITY_CRITERIA, True))
        cases.append(row)
    clients: dict[str, tuple[TestClient, str]] = {}
    for login in USERS:
        client = TestClient(server)
        await client.start_server()
        r = await client.post("/api/login", json={"login": login, "password": "pw"})
        assert r.status == 200, await r.text()
        clients[login] = (client, (await r.json())["csrf"])
    yield {"clients": clients, "cases": cases, "ids": ids, "now": now}
    for client, _ in clients.values():
        await client.close()
    await server.close()
    await pool.close()


async def _get(desk: dict[str, Any], login: str, path: str, **query: str) -> Any:
    client, csrf = desk["clients"][login]
    return await client.get(path, params=query, headers={CSRF_HEADER: csrf})


async def test_the_auditor_reads_who_saw_what_and_why(desk: dict[str, Any],
                                                      conn: asyncpg.Connection) -> None:
    one, two = desk["cases"]
    agent, csrf = desk["clients"]["agent1"]
    r = await agent.post(f"/api/casework/cases/{one['id']}/reveal",
                         json={"field": "caller_number", "reason": "回访核实号码"},
                         headers={CSRF_HEADER: csrf})
    assert (await r.json())["value"] == CALLER
    lead, csrf = desk["clients"]["lead"]
    r = await lead.post(f"/api/casework/cases/{two['id']}/reveal",
                        json={"field": "name", "reason": "领导专报"},
                        headers={CSRF_HEADER: csrf})
    assert r.status == 200
    now = desk["now"]
    await audit.record(conn, two["id"], "recording_played", desk["ids"]["lead"], now,
                       recording_id=7)
    await audit.record(conn, one["id"], "progress_heard", None, now, status="pending")
    await audit.record(conn, one["id"], "registered", desk["ids"]["agent1"], now)

    r = await _get(desk, "shenji", "/api/audit/reveals")
    assert r.status == 200
    text = await r.text()
    assert CALLER not in text and NAME not in text and "噪音扰民" not in text
    entries = (await r.json())["entries"]
    by_action = {e["action"]: e for e in entries}
    assert set(by_action) == {"personal_revealed", "recording_played", "progress_heard"}
    seen = [(e["actor"], e["actor_role"], e["case_no"], e["field"], e["reason"])
            for e in entries if e["action"] == "personal_revealed"]
    assert sorted(seen) == sorted([
        ("agent1", "agent", one["case_no"], "caller_number", "回访核实号码"),
        ("lead", "supervisor", two["case_no"], "name", "领导专报")])
    assert by_action["progress_heard"]["actor"] is None
    assert by_action["recording_played"]["case_no"] == two["case_no"]

    # Filters: one actor, one case, a period.
    r = await _get(desk, "shenji", "/api/audit/reveals", actor="lead")
    assert {e["actor"] for e in (await r.json())["entries"]} == {"lead"}
    r = await _get(desk, "shenji", "/api/audit/reveals", case_no=one["case_no"])
    assert {e["case_no"] for e in (await r.json())["entries"]} == {one["case_no"]}
    local_day = now.astimezone(calendar.TZ).date()
    r = await _get(desk, "shenji", "/api/audit/reveals", to=str(local_day - timedelta(days=1)))
    assert (await r.json())["entries"] == []
    r = await _get(desk, "shenji", "/api/audit/reveals", **{"from": str(local_day),
                                                            "to": str(local_day)})
    assert len((await r.json())["entries"]) == 4
    r = await _get(desk, "shenji", "/api/audit/reveals", **{"from": "上周"})
    assert r.status == 400 and "看不懂" in (await r.json())["error"]

    # The CSV of the listing: the same entries, no personal value, no formula.
    await audit.record(conn, one["id"], "personal_revealed", desk["ids"]["agent1"], now,
                       field="address", reason="=HYPERLINK(\"http://x\")")
    r = await _get(desk, "shenji", "/api/audit/reveals", format="csv")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
    csv_text = await r.text()
    assert csv_text.startswith("\ufeff时间,操作,操作人账号")
    assert "回访核实号码" in csv_text and "来电号码" in csv_text and one["case_no"] in csv_text
    assert "'=HYPERLINK" in csv_text
    assert CALLER not in csv_text and NAME not in csv_text


async def test_retention_erasures_are_in_the_listing(desk: dict[str, Any],
                                                     conn: asyncpg.Connection) -> None:
    one = desk["cases"][0]
    await conn.execute("UPDATE cases SET status = 'archived', archived_at = $2 WHERE id = $1",
                       one["id"], desk["now"] - timedelta(days=11))
    assert await retention.erase_expired(conn, desk["now"], 10) == [one["id"]]
    r = await _get(desk, "shenji", "/api/audit/reveals", case_no=one["case_no"])
    (entry,) = (await r.json())["entries"]
    assert (entry["action"], entry["actor"], entry["note"]) == \
        ("personal_erased", None, "个人信息 2 项，录音 0 段")


async def test_only_the_auditor_reads_it_and_the_auditor_no_case(
        desk: dict[str, Any]) -> None:
    for login in ("agent1", "lead", "admin", "sv"):
        r = await _get(desk, login, "/api/audit/reveals")
        assert r.status == 403, login
    case_id = desk["cases"][0]["id"]
    for path in ("/api/casework/lists/all", f"/api/casework/cases/{case_id}",
                 f"/api/casework/cases/{case_id}/form", f"/api/cases/{case_id}"):
        r = await _get(desk, "shenji", path)
        assert r.status in (403, 404), path
        assert CALLER not in await r.text()
    client, csrf = desk["clients"]["shenji"]
    r = await client.post(f"/api/casework/cases/{case_id}/reveal",
                          json={"field": "caller_number", "reason": "审计"},
                          headers={CSRF_HEADER: csrf})
    assert r.status == 403 and CALLER not in await r.text()
    r = await client.get("/audit")
    assert r.status == 200 and "个人信息访问审计" in await r.text()


async def test_no_route_changes_the_log(desk: dict[str, Any], conn: asyncpg.Connection) -> None:
    before = await conn.fetchval("SELECT count(*) FROM case_events")
    client, csrf = desk["clients"]["shenji"]
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        r = await client.request(method, "/api/audit/reveals", json={},
                                 headers={CSRF_HEADER: csrf})
        assert r.status == 405, method
    # Nowhere in the app: every route under /api/audit only reads.
    app = client.server.app
    assert app is not None
    audit_routes = {(route.method, route.resource.canonical) for route in app.router.routes()
                    if route.resource and route.resource.canonical.startswith("/api/audit")}
    assert audit_routes == {("GET", "/api/audit/reveals"), ("HEAD", "/api/audit/reveals")}
    assert await conn.fetchval("SELECT count(*) FROM case_events") == before
    # No code behind any route writes to the log but by appending (the trigger refuses the
    # rest: tests/casework/test_retention.py).
    for part in ("agent_desk", "casework", "db"):
        for source in (ROOT / part).glob("*.py"):
            text = " ".join(source.read_text(encoding="utf-8").split()).lower()
            assert "update case_events" not in text and "delete from case_events" not in text \
                and "truncate case_events" not in text, source
