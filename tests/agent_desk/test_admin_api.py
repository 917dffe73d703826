"""The admin's pages of the desk over HTTP (aiohttp test server, real PostgreSQL, no
Asterisk): the category tree, the linkage units and their import, the knowledge base and
the working-day calendar; only the admin configures (the supervisor also keeps the knowledge
base), a file's mistakes come back with their lines, and a wrong request is a 400, never a
500."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent_desk.app import CSRF_HEADER, make_app
from casework import calendar
from db import agents as agent_store
from db import pool as db_pool
from db.crypto import Keyring
from dialplan import config

ROOT = Path(__file__).resolve().parents[2]
# Codes this file adds to the category tree (which the workflow fixture does not empty).
NEW_CATEGORIES = ("040901", "0409")

UNITS_YAML = """\
units:
  - code: city-water
    name: 市自来水公司
    level: 1
    kind: utility
    duty_phone: 0377-5550001
    leader: 张经理
    handlers:
      - {login: h_water, name: 自来水公司客服, initial_password: pw}
  - code: city-water-east
    name: 东区供水所
    parent: city-water
    level: 2
    kind: station
    duty_phone: 0377-5550002
  - code: city-water-east-team
    name: 东区抢修队
    parent: city-water-east
    level: 3
    kind: station
    duty_phone: 0377-5550003
"""

BAD_UNITS_YAML = """\
units:
  - code: city
    name: 市政府
    level: 1
    duty_phone: 0377-1234567
  - code: town
    name: 某街道
    parent: nowhere
    level: 2
    duty_phone: "12"
  - code: bad code
    level: 4
    duty_phone: 0377-1234567
"""

BAD_UNITS_CSV = """\
code,name,parent_code,level,kind,duty_phone
city,市政府,,1,government,0377-1234567
town,街道,city,2,township,abc
x,,city,5,,0377-1234567
"""

# Invented dates in the format of config/calendar/2027.example.yaml (not the real notice).
NOTICE_2027 = """\
year: 2027
notice: 测试用通知（非官方）
holidays:
  - {name: 元旦, from: 2027-01-01, to: 2027-01-03}
  - {name: 春节, from: 2027-02-06, to: 2027-02-13}
working_days:
  - {date: 2027-02-14, name: 春节调休}
"""

BAD_NOTICE = """\
year: 2027
notice: 测试用通知
holidays:
  - {name: 春节, from: 2027-02-06, to: 2027-02-30}
  - {name: 劳动节, from: 2027-05-01, to: 2027-04-05}
working_days:
  - {date: 2027-02-15, name: 春节调休}
"""


class Desk:
    """The desk under test and the users' clients (closed with it)."""

    def __init__(self, server: TestServer):
        self.server = server
        self.clients: list[TestClient] = []

    async def client(self) -> TestClient:
        client = TestClient(self.server)
        await client.start_server()
        self.clients.append(client)
        return client


@pytest.fixture
async def desk(pg_dsn: str, conn: asyncpg.Connection) -> AsyncIterator[Desk]:
    cfg = config.load(ROOT / "config" / "hotline.yaml")
    keys = Keyring({"k1": os.urandom(32)}, "k1", os.urandom(32))
    pool = await db_pool.connect(pg_dsn)
    server = TestServer(make_app(cfg, pool, keys, pg_dsn))
    await server.start_server()
    d = Desk(server)
    yield d
    for client in d.clients:
        await client.session.close()  # TestClient.close() would stop the shared server
    await server.close()
    await pool.close()
    await conn.execute("DELETE FROM knowledge")
    await conn.execute("DELETE FROM categories WHERE code = ANY($1)", list(NEW_CATEGORIES))


class User:
    """A logged-in desk user: a test client with its CSRF token."""

    def __init__(self, client: TestClient, csrf: str):
        self.client, self.csrf = client, csrf

    async def call(self, method: str, path: str, body: Any = None,
                   raw: bytes | None = None) -> tuple[int, Any]:
        headers = {CSRF_HEADER: self.csrf}
        if raw is not None:
            headers["Content-Type"] = "application/json"
            r = await self.client.request(method, path, data=raw, headers=headers)
        elif method == "GET":
            r = await self.client.get(path)
        else:
            r = await self.client.request(method, path, json=body if body is not None else {},
                                          headers=headers)
        text = await r.text()
        return r.status, (json.loads(text) if text else None)

    async def get(self, path: str) -> tuple[int, Any]:
        return await self.call("GET", path)

    async def post(self, path: str, body: Any = None) -> tuple[int, Any]:
        return await self.call("POST", path, body)

    async def put(self, path: str, body: Any = None) -> tuple[int, Any]:
        return await self.call("PUT", path, body)


async def _user(desk: Desk, conn: asyncpg.Connection, login: str, role: str,
                unit: int | None = None) -> User:
    await conn.execute("INSERT INTO agents (login, display_name, role, unit_id, password_hash) "
                       "VALUES ($1, $1, $2, $3, $4)", login, role, unit,
                       agent_store.hash_password("pw"))
    client = await desk.client()
    r = await client.post("/api/login", json={"login": login, "password": "pw"})
    body = await r.json()
    assert r.status == 200, body
    return User(client, body["csrf"])


def _find(nodes: list[dict[str, Any]], key: str, value: Any) -> dict[str, Any] | None:
    for n in nodes:
        if n[key] == value:
            return n
        found = _find(n["children"], key, value)
        if found:
            return found
    return None


# -- categories -----------------------------------------------------------------------------


async def test_the_admin_keeps_the_category_tree(desk: Desk, conn: asyncpg.Connection,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    admin = await _user(desk, conn, "admin1", "admin")
    status, body = await admin.get("/api/admin/categories")
    assert status == 200
    assert [c["name"] for c in _find(body["categories"], "code", "04")["children"]][:2] == \
        ["供水", "供电"]

    caplog.set_level(logging.INFO, logger="agent_desk.admin_api")
    status, body = await admin.post("/api/admin/categories",
                                    {"code": "0409", "name": "城市照明", "parent": "04"})
    assert status == 200, body
    status, body = await admin.post("/api/admin/categories",
                                    {"code": "040901", "name": "路灯不亮", "parent": "0409"})
    assert status == 200, body
    assert await conn.fetchval("SELECT parent FROM categories WHERE code = '040901'") == "0409"
    assert "admin" in caplog.text and "added the category 040901 under 0409" in caplog.text
    # The tree's rules come back in plain words.
    status, body = await admin.post("/api/admin/categories",
                                    {"code": "0409", "name": "重复", "parent": "04"})
    assert status == 400 and "已被使用" in body["error"]
    status, body = await admin.post("/api/admin/categories",
                                    {"code": "0510", "name": "错位", "parent": "04"})
    assert status == 400 and "上级编码 04" in body["error"]

    status, body = await admin.put("/api/admin/categories/0409", {"name": "城市照明设施"})
    assert (status, body["category"]["name"]) == (200, "城市照明设施")
    assert await conn.fetchval("SELECT name FROM categories WHERE code = '0409'") == "城市照明设施"
    status, body = await admin.post("/api/admin/categories/0409/deactivate")
    assert (status, body["deactivated"]) == (200, 2)
    assert not await conn.fetchval("SELECT bool_or(active) FROM categories "
                                   "WHERE code IN ('0409', '040901')")
    status, body = await admin.get("/api/admin/categories")
    shown = _find(body["categories"], "code", "0409")
    assert shown is not None and shown["active"] is False  # inactive ones are listed too
    status, body = await admin.post("/api/admin/categories",
                                    {"code": "040902", "name": "新的", "parent": "0409"})
    assert status == 400 and "停用" in body["error"]

    assert (await admin.put("/api/admin/categories/0499", {"name": "x"}))[0] == 404
    assert (await admin.post("/api/admin/categories/abc/deactivate"))[0] == 404
    # Wrong types and unknown fields: 400 with a sentence, nothing changed.
    for bad in ({"code": 409, "name": "x", "parent": "04"},
                {"code": "0409", "name": ["x"], "parent": "04"},
                {"code": "0409", "name": "x", "parent": 4},
                {"code": "0409", "name": "x", "parent": "04", "sort": "1"},
                {"code": "0409", "name": "x", "parent": "04", "colour": "red"}):
        status, body = await admin.post("/api/admin/categories", bad)
        assert status == 400 and body["error"], bad
    for bad in ({"name": 5}, {"sort": True}, {"active": "yes"}, {"code": "0410"}):
        status, body = await admin.put("/api/admin/categories/0401", bad)
        assert status == 400 and body["error"], bad
    assert await conn.fetchval("SELECT name FROM categories WHERE code = '0401'") == "供水"


# -- units ----------------------------------------------------------------------------------


async def test_the_admin_imports_and_edits_the_units(desk: Desk,
                                                     conn: asyncpg.Connection) -> None:
    admin = await _user(desk, conn, "admin1", "admin")
    status, body = await admin.post("/api/admin/units/import",
                                    {"format": "yaml", "text": UNITS_YAML})
    assert status == 200, body
    assert body["result"]["created"] == 3 and body["result"]["handlers_created"] == 1
    assert "新增 3" in body["summary"]

    status, body = await admin.get("/api/admin/units")
    assert status == 200
    (water,) = body["units"]
    assert water["name"] == "市自来水公司" and water["leader"] == "张经理"
    assert water["handlers"] == [{"login": "h_water", "name": "自来水公司客服", "active": True}]
    assert water["children"][0]["children"][0]["code"] == "city-water-east-team"
    assert "password" not in json.dumps(body)
    assert {k["code"] for k in body["kinds"]} >= {"utility", "station"}

    team = water["children"][0]["children"][0]["id"]
    status, body = await admin.put(f"/api/admin/units/{team}",
                                   {"duty_phone": "0377-5550999", "leader": "王队长",
                                    "contact_person": "李师傅", "department": "抢修科"})
    assert status == 200, body
    row = await conn.fetchrow("SELECT duty_phone, leader, contact_person, department "
                              "FROM units WHERE id = $1", team)
    assert tuple(row) == ("0377-5550999", "王队长", "李师傅", "抢修科")
    status, body = await admin.put(f"/api/admin/units/{team}", {"duty_phone": "打电话"})
    assert status == 400 and "值班电话" in body["error"]
    status, body = await admin.put(f"/api/admin/units/{water['id']}", {"active": False})
    assert status == 400 and "下级单位" in body["error"]
    for bad in ({"duty_phone": 377}, {"leader": "长" * 101}, {"parent_id": "1"},
                {"parent_id": True}, {"active": "no"}, {"code": "x"}):
        status, body = await admin.put(f"/api/admin/units/{team}", bad)
        assert status == 400 and body["error"], bad
    assert (await admin.put("/api/admin/units/99999", {"leader": "x"}))[0] == 404
    assert (await admin.put("/api/admin/units/abc", {"leader": "x"}))[0] == 404
    assert await conn.fetchval("SELECT duty_phone FROM units WHERE id = $1", team) == \
        "0377-5550999"

    # A CSV with its handlers' CSV: the directory becomes the file (the rest deactivated).
    csv_text = ("code,name,parent_code,level,kind,duty_phone\n"
                "city-water,市自来水公司,,1,utility,0377-5550001\n"
                "city-gas,市燃气公司,,1,utility,0377-5550010\n")
    status, body = await admin.post("/api/admin/units/import", {
        "format": "csv", "text": csv_text,
        "handlers_csv": "unit_code,login,name,initial_password\ncity-gas,h_gas,燃气客服,pw\n"})
    assert status == 200, body
    assert (body["result"]["created"], body["result"]["deactivated"]) == (1, 2)
    assert await conn.fetchval("SELECT unit_id FROM agents WHERE login = 'h_gas'") == \
        await conn.fetchval("SELECT id FROM units WHERE code = 'city-gas'")
    assert not await conn.fetchval("SELECT active FROM agents WHERE login = 'h_water'")


async def test_a_bad_units_file_answers_each_mistake_with_its_line(
        desk: Desk, conn: asyncpg.Connection) -> None:
    admin = await _user(desk, conn, "admin1", "admin")
    status, body = await admin.post("/api/admin/units/import",
                                    {"format": "yaml", "text": BAD_UNITS_YAML})
    assert status == 400 and "未导入" in body["error"]
    lines = {(p["line"], p["message"]) for p in body["problems"]}
    assert all(p["file"] == "上传的文件" for p in body["problems"])
    assert any(line == 8 and "nowhere" in m for line, m in lines), lines
    assert any(line == 10 and "duty phone" in m for line, m in lines), lines
    assert any(line == 11 and "bad code" in m for line, m in lines), lines
    assert any(line == 12 and "level" in m for line, m in lines), lines
    assert body["error"].startswith(f"文件有 {len(body['problems'])} 处错误")

    status, body = await admin.post("/api/admin/units/import", {
        "format": "csv", "text": BAD_UNITS_CSV, "filename": "C:\\名录\\units.csv"})
    assert status == 400
    assert {p["file"] for p in body["problems"]} == {"units.csv"}
    lines = {(p["line"], p["message"]) for p in body["problems"]}
    assert any(line == 3 and "abc" in m for line, m in lines), lines
    assert any(line == 4 and "no name" in m for line, m in lines), lines
    assert any(line == 4 and "'5'" in m for line, m in lines), lines
    assert await conn.fetchval("SELECT count(*) FROM units") == 0

    bomb = 'a: &a ["x", "x"]\nb: &b [*a, *a]\nc: &c [*b, *b]\nunits: [*c]\n'
    status, body = await admin.post("/api/admin/units/import", {"format": "yaml", "text": bomb})
    assert status == 400 and body["problems"][0]["line"] == 1
    for bad in ({"format": "xml", "text": "x"}, {"format": "yaml"}, {"format": "yaml", "text": 5},
                {"format": "yaml", "text": UNITS_YAML, "handlers_csv": "unit_code,login\n"},
                {"format": "csv", "text": "code\n", "handlers_csv": ["x"]}):
        status, body = await admin.post("/api/admin/units/import", bad)
        assert status == 400 and body["error"], bad
    # Oversized: a plain 400, also on the import's larger allowance.
    status, body = await admin.post("/api/admin/units/import",
                                    {"format": "csv", "text": "x" * (5 * 1024 * 1024)})
    assert status == 400 and "过大" in body["error"]
    status, body = await admin.put("/api/admin/units/1", {"leader": "x" * 70_000})
    assert status == 400 and "过大" in body["error"]


# -- knowledge base -------------------------------------------------------------------------


async def test_admin_and_supervisor_keep_the_knowledge_base(desk: Desk,
                                                            conn: asyncpg.Connection) -> None:
    admin = await _user(desk, conn, "admin1", "admin")
    lead = await _user(desk, conn, "lead1", "supervisor")
    status, body = await admin.post("/api/admin/knowledge", {
        "question": "如何提取住房公积金？", "answer": "携带身份证到公积金中心窗口办理。",
        "keywords": ["公积金", "提取"], "category": "0302"})
    assert status == 200, body
    first = body["entry"]["id"]
    status, body = await lead.post("/api/admin/knowledge", {
        "question": "停电了找谁？", "answer": "拨打 95598 供电服务热线。", "keywords": "停电 断电"})
    assert status == 200, body
    second = body["entry"]["id"]
    assert await conn.fetchval("SELECT updated_by FROM knowledge WHERE id = $1", second) == \
        await conn.fetchval("SELECT id FROM agents WHERE login = 'lead1'")

    status, body = await admin.get("/api/admin/knowledge?q=公积金")
    assert [e["id"] for e in body["entries"]] == [first]
    status, body = await lead.put(f"/api/admin/knowledge/{first}",
                                  {"answer": "可在网上办理，也可到窗口办理。"})
    assert status == 200 and body["entry"]["answer"] == "可在网上办理，也可到窗口办理。"
    status, body = await admin.post(f"/api/admin/knowledge/{second}/deactivate")
    assert status == 200 and body["entry"]["active"] is False
    status, body = await admin.get("/api/admin/knowledge?q=停电")
    assert body["entries"] == []  # out of the agents' search
    status, body = await admin.get("/api/admin/knowledge")
    assert [(e["id"], e["active"]) for e in body["entries"]] == [(first, True), (second, False)]

    status, body = await admin.post("/api/admin/knowledge", {
        "question": "x", "answer": "y", "category": "0499"})
    assert status == 400 and "0499" in body["error"]
    for bad in ({"question": 1, "answer": "y"}, {"question": "x"}, {"question": "x", "answer": "y",
                 "keywords": {"a": 1}}, {"question": "x", "answer": "y", "category": 302},
                {"question": "x", "answer": "y", "id": 5}, {"question": "问" * 501, "answer": "y"}):
        status, body = await admin.post("/api/admin/knowledge", bad)
        assert status == 400 and body["error"], bad
    for bad in ({"active": 1}, {"answer": ""}, {"updated_by": 1}):
        status, body = await admin.put(f"/api/admin/knowledge/{first}", bad)
        assert status == 400 and body["error"], bad
    assert (await admin.put("/api/admin/knowledge/999", {"answer": "x"}))[0] == 404
    assert (await admin.post("/api/admin/knowledge/0/deactivate"))[0] == 404
    assert (await admin.get("/api/admin/knowledge?q=" + "长" * 101))[0] == 400


# -- the working-day calendar ---------------------------------------------------------------


async def test_a_notice_makes_its_year_covered_and_moves_deadlines(
        desk: Desk, conn: asyncpg.Connection) -> None:
    await calendar.seed_from_package(conn)
    admin = await _user(desk, conn, "admin1", "admin")
    received = datetime(2027, 2, 5, 10, 0, tzinfo=calendar.TZ)  # a Friday before 春节
    before = (await calendar.load(conn)).add_working_days(received, 3)
    assert before == calendar.start_of(received.date() + timedelta(days=6))  # Thu 2027-02-11

    status, body = await admin.get("/api/admin/calendar/2027")
    assert status == 200 and body["covered"] is False and body["days"] == []
    now = datetime.now(calendar.TZ)
    nxt = now.year + 1
    assert body["next_year"] == nxt
    if now.month >= 11 and not body["next_year_covered"]:
        assert f"还没有 {nxt} 年的节假日" in body["warning"]
    else:
        assert body["warning"] is None
    status, body = await admin.get("/api/admin/calendar/2025")
    assert body["covered"] is True
    spring = [d for d in body["days"] if d["name"] == "春节"]
    assert spring and all(d["source_name"] == "法定" and not d["working"] for d in spring)

    # A notice with mistakes: each with its line, nothing entered.
    status, body = await admin.post("/api/admin/calendar/notice", {"text": BAD_NOTICE})
    assert status == 400 and "未录入" in body["error"]
    lines = {p["line"]: p["message"] for p in body["problems"]}
    assert "not a real date" in lines[4] and "after" in lines[5] and "Monday" in lines[7], lines
    assert {p["file"] for p in body["problems"]} == {"录入的通知"}
    assert not await conn.fetchval("SELECT count(*) FROM calendar_days "
                                   "WHERE day >= '2027-01-01'")

    # Checked first (nothing written), then entered.
    status, body = await admin.post("/api/admin/calendar/notice",
                                    {"text": NOTICE_2027, "dry_run": True})
    assert status == 200 and body["dry_run"] and body["year"] == 2027
    assert not await conn.fetchval("SELECT count(*) FROM calendar_days "
                                   "WHERE day >= '2027-01-01'")
    status, body = await admin.post("/api/admin/calendar/notice", {"text": NOTICE_2027})
    assert status == 200, body
    # 元旦 (Fri) and 春节 Mon-Fri rest; Sun 02-14 works: 1 + 5 + 1 exception days.
    assert body["entered"] == 7
    set_by = await conn.fetchval("SELECT DISTINCT set_by FROM calendar_days "
                                 "WHERE day >= '2027-01-01'")
    assert set_by == await conn.fetchval("SELECT id FROM agents WHERE login = 'admin1'")

    status, body = await admin.get("/api/admin/calendar/2027")
    assert body["covered"] is True
    days = {d["day"]: d for d in body["days"]}
    assert days["2027-02-08"]["name"] == "春节" and days["2027-02-08"]["working"] is False
    assert days["2027-02-14"]["working"] is True
    assert days["2027-02-14"]["weekday"] == "周日"
    assert {d["source_name"] for d in body["days"]} == {"管理员录入"}
    after = (await calendar.load(conn)).add_working_days(received, 3)
    assert after == calendar.start_of(received.date() + timedelta(days=12))  # Wed 2027-02-17

    for bad in ({"text": 5}, {}, {"text": ""}, {"text": NOTICE_2027, "dry_run": "yes"},
                {"text": "x" * 20_001}, {"text": NOTICE_2027, "year": 2027}):
        status, body = await admin.post("/api/admin/calendar/notice", bad)
        assert status == 400 and body["error"], bad
    # A one-line text is never taken for a path on the server.
    status, body = await admin.post("/api/admin/calendar/notice",
                                    {"text": str(ROOT / "config/calendar/2027.example.yaml")})
    assert status == 400 and "cannot read" not in json.dumps(body)
    assert (await admin.get("/api/admin/calendar/1999"))[0] == 400
    assert (await admin.get("/api/admin/calendar/abc"))[0] == 400


# -- who may ----------------------------------------------------------------------------------

ADMIN_ONLY = [("GET", "/api/admin/categories"), ("POST", "/api/admin/categories"),
              ("PUT", "/api/admin/categories/0401"),
              ("POST", "/api/admin/categories/0401/deactivate"),
              ("GET", "/api/admin/units"), ("PUT", "/api/admin/units/1"),
              ("POST", "/api/admin/units/import"),
              ("GET", "/api/admin/calendar/2027"), ("POST", "/api/admin/calendar/notice")]
KNOWLEDGE = [("GET", "/api/admin/knowledge"), ("POST", "/api/admin/knowledge"),
             ("PUT", "/api/admin/knowledge/1"), ("POST", "/api/admin/knowledge/1/deactivate")]


async def test_only_the_admin_configures(desk: Desk, conn: asyncpg.Connection) -> None:
    unit = await conn.fetchval("INSERT INTO units (code, name, level, duty_phone) VALUES "
                               "('p', '供电公司', 1, '95598') RETURNING id")
    agent = await _user(desk, conn, "agent1", "agent")
    handler = await _user(desk, conn, "hp", "handler", unit)
    supervision = await _user(desk, conn, "dc", "supervision")
    lead = await _user(desk, conn, "lead1", "supervisor")
    body = {"question": "问", "answer": "答", "code": "0409", "name": "x", "parent": "04",
            "format": "yaml", "text": UNITS_YAML, "duty_phone": "0377-5550000"}
    for who in (agent, handler, supervision):
        for method, path in ADMIN_ONLY + KNOWLEDGE:
            status, answer = await who.call(method, path, body)
            assert status == 403 and "仅系统管理员" in answer["error"], (method, path)
    for method, path in ADMIN_ONLY:
        status, answer = await lead.call(method, path, body)
        assert (status, answer["error"]) == (403, "仅系统管理员可以进行此操作"), path
    status, _ = await lead.get("/api/admin/knowledge")
    assert status == 200
    # Nothing was changed by the refused requests.
    assert await conn.fetchval("SELECT count(*) FROM units") == 1
    assert await conn.fetchval("SELECT count(*) FROM knowledge") == 0
    assert not await conn.fetchval("SELECT 1 FROM categories WHERE code = '0409'")
    # Without a session: 401; without the CSRF header: 403, as everywhere on the desk.
    anonymous = await desk.client()
    r = await anonymous.get("/api/admin/categories")
    assert r.status == 401
    admin = await _user(desk, conn, "admin1", "admin")
    r = await admin.client.post("/api/admin/categories", json={"code": "0409", "name": "x",
                                                               "parent": "04"})
    assert r.status == 403


async def test_malformed_requests_are_400_never_500(desk: Desk,
                                                    conn: asyncpg.Connection) -> None:
    await conn.execute("INSERT INTO knowledge (question, answer) VALUES ('问', '答')")
    unit = await conn.fetchval("INSERT INTO units (code, name, level, duty_phone) VALUES "
                               "('p', '供电公司', 1, '95598') RETURNING id")
    admin = await _user(desk, conn, "admin1", "admin")
    writes = [("POST", "/api/admin/categories"), ("PUT", "/api/admin/categories/0401"),
              ("POST", "/api/admin/categories/0401/deactivate"),
              ("PUT", f"/api/admin/units/{unit}"), ("POST", "/api/admin/units/import"),
              ("POST", "/api/admin/knowledge"), ("PUT", "/api/admin/knowledge/1"),
              ("POST", "/api/admin/knowledge/1/deactivate"),
              ("POST", "/api/admin/calendar/notice")]
    for raw in (b"not json", b"[1, 2]", b'"text"', b"\xff\xfe", b"[" * 30_000 + b"]" * 30_000):
        for method, path in writes:
            status, body = await admin.call(method, path, raw=raw)
            assert status == 400 and body["error"], (method, path, raw[:10])
    r = await admin.client.post("/api/admin/knowledge", data="question=x",
                                headers={CSRF_HEADER: admin.csrf,
                                         "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 400
    assert await conn.fetchval("SELECT active FROM categories WHERE code = '0401'")
    assert await conn.fetchval("SELECT active FROM knowledge")
