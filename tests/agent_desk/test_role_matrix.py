"""Every role against every endpoint of the desk, and every case it should not reach.

A case of unit A, with a caller's number, name and address, an assignment, an extension
request, a special report and a worklist entry; one desk user of each role (and no login
at all) calls every route the app has, with that case's ids in the path. Then, whatever the
route: no server error; without a session nothing under /api but the login and the API
description answers; the admin reaches no case; a handler of unit B reaches nothing of
unit A's case; the caller's number, name and address appear in a response only where the
rules allow it in full (an explicit reveal by the hotline or by the unit handling the
case, and the live call's own agent); the auditor reaches no case and no personal field,
and only the auditor reads the log of personal-data access. The softphone's account (with
its SIP password) answers only the agent whose own phone is webrtc, and its /sip WebSocket
no one else."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent_desk.app import CSRF_HEADER, make_app
from casework import calendar
from casework import workflow as wf
from db import agents as agent_store
from db import cases as case_store
from db import pool as db_pool
from db.crypto import Keyring
from dialplan import config
from tests.conftest import ROOT

CALLER, NAME, ADDRESS = "13937760099", "赵丽华", "卧龙区梅溪路88号"
SECRETS = (CALLER, NAME, ADDRESS)
# The SIP password of agent_web's softphone (a webrtc phone, 8201).
SIP_PASSWORD = "Mx4Tq9Lr2Vb7Nc5WzJ"
# The auditor comes last: by then the others' reveals are in the log it reads.
ROLES = ("anonymous", "admin", "handler_b", "supervision", "handler_a", "agent",
         "agent_web", "supervisor", "auditor")
# Routes outside /api that anyone may read (pages, the public publication and Open311).
PUBLIC = re.compile(r"^/($|cases$|admin$|audit$|healthz$|static/|open311/|public/)")


@pytest.fixture
async def world(pg_dsn: str, conn: asyncpg.Connection) -> AsyncIterator[dict[str, Any]]:
    cfg = config.load(ROOT / "config" / "hotline.yaml")
    cfg = dataclasses.replace(cfg, phones={
        **cfg.phones, "8201": config.Phone("8201", "webrtc", secret=SIP_PASSWORD)})
    keys = Keyring({"k1": os.urandom(32)}, "k1", os.urandom(32))
    pool = await db_pool.connect(pg_dsn)
    app = make_app(cfg, pool, keys, pg_dsn)
    server = TestServer(app)
    await server.start_server()
    unit_a = await conn.fetchval("INSERT INTO units (code, name, level) "
                                 "VALUES ('A', '甲单位', 1) RETURNING id")
    unit_b = await conn.fetchval("INSERT INTO units (code, name, level) "
                                 "VALUES ('B', '乙单位', 1) RETURNING id")
    ids: dict[str, int] = {}
    for login, role, unit in (("auditor", "auditor", None), ("admin", "admin", None),
                              ("handler_b", "handler", unit_b),
                              ("supervision", "supervision", None),
                              ("handler_a", "handler", unit_a), ("agent", "agent", None),
                              ("agent_web", "agent", None), ("supervisor", "supervisor", None)):
        phone = {"agent": "8001", "agent_web": "8201"}.get(login)
        ids[login] = await conn.fetchval(
            "INSERT INTO agents (login, display_name, role, unit_id, phone, password_hash) "
            "VALUES ($1, $1, $2, $3, $4, $5) RETURNING id", login, role, unit,
            phone, agent_store.hash_password("pw"))
    now = datetime.now(UTC)
    case = await case_store.create(conn, keys, call_id=None, dialled_number="12345",
                                   service="hotline", caller_number=CALLER)
    case_id = case["id"]
    await case_store.update(conn, keys, case_id, {"name": NAME, "address": ADDRESS,
                                                  "content": "反映小区路灯不亮"})
    agent = wf.Actor(ids["agent"], "agent")
    await wf.register(conn, case_id, agent, now, title="路灯不亮", category="04",
                      validity=dict.fromkeys(wf.VALIDITY_CRITERIA, True))
    await wf.assign(conn, case_id, agent, now, calendar.WorkCalendar(), wf.Rules(),
                    lead_unit=unit_a)
    assignment = await conn.fetchval("SELECT id FROM assignments WHERE case_id = $1", case_id)
    handler_a = wf.Actor(ids["handler_a"], "handler", unit_a)
    await wf.accept(conn, assignment, handler_a, now)
    extension = await wf.request_extension(conn, assignment, handler_a, now, wf.Rules(),
                                           reason="需要协调", days=2)
    from casework import reports
    report = await reports.draft(conn, [case_id], agent, now, recipient="mayor")
    call_id = await conn.fetchval(
        "INSERT INTO calls (id, channel_id, dialled_number, queue, state, case_id, ended_at)"
        " VALUES (gen_random_uuid(), 'ch-1', '12345', 'duty', 'ended', $1, now())"
        " RETURNING id", case_id)
    await conn.execute("INSERT INTO worklist (call_id, kind) VALUES ($1, 'abandoned')", call_id)
    values = {"case_id": case_id, "assignment_id": assignment, "extension_id": extension,
              "report_id": report, "recording_id": 1, "agent_id": ids["agent"],
              "call_id": str(call_id), "code": "04", "unit_id": unit_a, "entry_id": 1,
              "year": "2026", "which": "all", "id": case["case_no"]}
    clients: dict[str, tuple[TestClient, str]] = {}
    for role in ROLES:
        client = TestClient(server)
        await client.start_server()
        csrf = ""
        if role != "anonymous":
            r = await client.post("/api/login", json={"login": role, "password": "pw"})
            assert r.status == 200, await r.text()
            csrf = (await r.json())["csrf"]
        clients[role] = (client, csrf)
    yield {"app": app, "clients": clients, "values": values, "case_no": case["case_no"]}
    # The admin's calls may have deactivated a category: the tree outlives each test.
    await conn.execute("UPDATE categories SET active = true")
    for client, _ in clients.values():
        await client.close()
    await server.close()
    await pool.close()


def _routes(app: Any, values: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        template = info.get("formatter") or info.get("path")
        if not template or route.method == "HEAD" or template == "/ws" \
                or "prefix" in info:
            continue
        path = template
        for name in re.findall(r"{(\w+)}", template):
            path = path.replace("{" + name + "}", str(values.get(name, 1)))
        path = path.replace("{year}-W{week}", "2026-W08")
        out.append((route.method, path))
    return sorted(set(out))


def _allowed_to_see_in_full(role: str, method: str, path: str) -> bool:
    if path.endswith("/reveal"):
        return role in ("agent", "agent_web", "supervisor", "handler_a")
    return False


async def test_every_role_against_every_endpoint(world: dict[str, Any]) -> None:
    routes = _routes(world["app"], world["values"])
    case_id = world["values"]["case_id"]
    assert len(routes) > 50  # the matrix really covers the app
    problems: list[str] = []
    for role in ROLES:  # least privileged first: their calls change nothing
        client, csrf = world["clients"][role]
        for method, path in routes:
            if path in ("/api/logout", "/api/login"):
                continue
            body: dict[str, Any] = {}
            if path.endswith("/reveal"):
                body = {"field": "caller_number", "reason": "核实"}
            r = await client.request(method, path, json=body if method != "GET" else None,
                                     headers={CSRF_HEADER: csrf})
            text = await r.text()
            where = f"{role} {method} {path} -> {r.status}"
            if r.status >= 500:
                problems.append(f"{where}: server error {text[:200]}")
            if role == "anonymous" and path.startswith("/api/") \
                    and path != "/api/openapi.json" and r.status != 401:
                problems.append(f"{where}: answered without a login")
            if role == "admin" and "/casework/" in path and r.status < 400 \
                    and not path.endswith(("/casework/units", "/casework/knowledge")):
                problems.append(f"{where}: the admin reached a case")
            if role == "auditor" and ("/casework/" in path or "/api/cases/" in path) \
                    and r.status < 400 and not path.endswith("/casework/units"):
                problems.append(f"{where}: the auditor reached a case")
            if path.startswith("/api/audit/") and role != "auditor" and r.status < 400:
                problems.append(f"{where}: the access log answered someone not the auditor")
            if role == "auditor" and path == "/api/audit/reveals" and (
                    r.status != 200 or '"field": "caller_number"' not in text):
                problems.append(f"{where}: the auditor does not see the reveals")
            if role == "handler_b" and (f"/{case_id}" in path or "/assignments/" in path
                                        or "/extensions/" in path) and r.status < 400:
                problems.append(f"{where}: another unit's handler reached unit A's case")
            if role == "handler_b" and "/lists/" in path and world["case_no"] in text:
                problems.append(f"{where}: another unit's case listed")
            leaked = [s for s in SECRETS if s in text]
            if leaked and not _allowed_to_see_in_full(role, method, path):
                problems.append(f"{where}: shows {leaked} in full")
            if SIP_PASSWORD in text and (role, path) != ("agent_web", "/api/agent/softphone"):
                problems.append(f"{where}: shows the softphone's SIP password")
            if path in ("/api/agent/softphone", "/sip") and role != "agent_web" \
                    and r.status < 400:
                problems.append(f"{where}: the softphone answered someone without one")
            if not path.startswith("/api/") and not PUBLIC.match(path) and r.status < 400:
                problems.append(f"{where}: an unexpected page")
    assert problems == []


async def test_the_duty_rooms_own_endpoints_stay_in_the_duty_room(
        world: dict[str, Any]) -> None:
    """The live queue, the wallboard and the callback worklist are the duty room's:
    units, the supervision office and the admin do not get them."""
    for role in ("admin", "handler_a", "handler_b", "supervision"):
        client, csrf = world["clients"][role]
        for path in ("/api/wallboard", "/api/worklist"):
            r = await client.get(path, headers={CSRF_HEADER: csrf})
            assert r.status == 403, f"{role} {path} -> {r.status}"


async def test_the_softphone_is_the_webrtc_agents_own(world: dict[str, Any]) -> None:
    """Only the agent whose phone is webrtc gets its SIP account (never cached) and may
    open /sip; a desk phone, no phone, another role or no login are refused, and so is a
    WebSocket opened from another site."""
    expected = {"anonymous": 401, "admin": 403, "handler_a": 403, "supervision": 403,
                "auditor": 403, "agent": 404, "supervisor": 404}
    for role, status in expected.items():
        client, _ = world["clients"][role]
        for path in ("/api/agent/softphone", "/sip"):
            r = await client.get(path, headers={"Connection": "Upgrade", "Upgrade": "websocket",
                                                "Sec-WebSocket-Version": "13",
                                                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                                                "Sec-WebSocket-Protocol": "sip"})
            assert r.status == status, f"{role} {path} -> {r.status}"
    client, _ = world["clients"]["agent_web"]
    r = await client.get("/api/agent/softphone")
    assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
    assert await r.json() == {"phone": "8201", "sip_uri": "sip:8201@hotline",
                              "ws_path": "/sip", "password": SIP_PASSWORD}
    r = await client.get("/sip")  # no upgrade
    assert r.status == 400
    r = await client.get("/sip", headers={"Origin": "https://evil.example",
                                          "Connection": "Upgrade", "Upgrade": "websocket",
                                          "Sec-WebSocket-Version": "13",
                                          "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert r.status == 403
