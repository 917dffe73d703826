"""The desk's HTTP API, fuzzed from agent_desk/openapi.yaml with schemathesis: whatever a
client sends (wrong types, oversized fields, injection attempts, ids out of range, bodies
that are not JSON), the desk answers with a 4xx and a plain sentence, never a server error.

The desk runs as an aiohttp TestServer on the workflow test database (tests/workflow_db.py),
in a thread of its own so schemathesis' synchronous requests can reach it, with some units,
users of every role, cases at several steps, an extension, a report and a knowledge entry.
Every generated request is sent as each role in turn (cookie and CSRF header) and without
a session.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
import requests
import schemathesis
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from agent_desk.app import CSRF_HEADER, DESK, MAX_BODY, make_app, openapi_document
from casework import calendar, reports
from casework import knowledge as kb
from casework import workflow as wf
from db import agents as agent_store
from db import cases as case_store
from db import pool as db_pool
from db.crypto import Keyring
from dialplan import config
from tests.workflow_db import TABLES

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")
ROLES = {"agent1": "agent", "lead": "supervisor", "sv": "supervision", "hp": "handler",
         "admin": "admin", "aud": "auditor"}
VALID = {k: True for k in wf.VALIDITY_CRITERIA}
CHECKS = [not_a_server_error, schemathesis.checks.response_schema_conformance,
          schemathesis.checks.status_code_conformance]
# Each generated request goes to the desk once per role and once without a session.
# HOTLINE_FUZZ_EXAMPLES=200 HOTLINE_FUZZ_RANDOM=1 for a longer hunt with fresh inputs.
EXAMPLES = int(os.environ.get("HOTLINE_FUZZ_EXAMPLES", "6"))
RANDOM = bool(os.environ.get("HOTLINE_FUZZ_RANDOM"))


class FuzzDesk:
    """The desk app on the workflow test database, served from a thread of its own."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sessions: dict[str, requests.Session] = {}
        self.ids: dict[str, int] = {}

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    async def _start(self) -> None:
        cfg = config.load(ROOT / "config" / "hotline.yaml")
        self.keys = Keyring({"k1": os.urandom(32)}, "k1", os.urandom(32))
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
            await self._seed(conn)
        finally:
            await conn.close()
        self.pool = await db_pool.connect(self.dsn)
        self.app = make_app(cfg, self.pool, self.keys, self.dsn)
        self.server = TestServer(self.app, host="127.0.0.1")
        await self.server.start_server()
        self.url = str(self.server.make_url("")).rstrip("/")

    async def _seed(self, conn: asyncpg.Connection) -> None:
        now = datetime.now(UTC)
        await calendar.seed_from_package(conn)
        power = await conn.fetchval("INSERT INTO units (code, name, level) VALUES "
                                    "('P', '国网南阳供电公司', 1) RETURNING id")
        other = await conn.fetchval("INSERT INTO units (code, name, level) VALUES "
                                    "('O', '宛城区人民政府', 1) RETURNING id")
        for login, role in ROLES.items():
            self.ids[login] = await conn.fetchval(
                "INSERT INTO agents (login, display_name, role, unit_id, phone, password_hash) "
                "VALUES ($1, $1, $2, $3, $4, $5) RETURNING id", login, role,
                power if role == "handler" else None,
                "8001" if role in wf.HOTLINE_ROLES else None, agent_store.hash_password("pw"))
        agent = wf.Actor(self.ids["agent1"], "agent")
        handler = wf.Actor(self.ids["hp"], "handler", power)
        rules = wf.Rules()
        cal = await calendar.load(conn)
        cases = []
        for n in range(5):
            case = await case_store.create(conn, self.keys, call_id=None,
                                           dialled_number="12345", service="hotline",
                                           caller_number=f"1393776000{n}")
            cases.append(case["id"])
        # 1: at intake, this agent's; 2: pending; 3: assigned (extension asked);
        # 4: answered at intake (closed); 5: reported by the unit.
        await conn.execute("UPDATE cases SET agent_id = $1 WHERE id = $2", agent.id, cases[0])
        for c in cases[1:]:
            if c == cases[3]:
                await wf.close_at_intake(conn, c, agent, now, title="咨询社保", category="04",
                                         answer="已答复")
                continue
            await wf.register(conn, c, agent, now, title="路灯不亮", category="04",
                              validity=VALID)
        for c in (cases[2], cases[4]):
            await wf.assign(conn, c, agent, now, cal, rules, lead_unit=power, co_units=[other],
                            mode="written", note="请核实")
        lead = await conn.fetchval("SELECT id FROM assignments WHERE case_id = $1 AND "
                                   "role = 'lead'", cases[2])
        await wf.request_extension(conn, lead, handler, now, rules, reason="需协调", days=3)
        lead5 = await conn.fetchval("SELECT id FROM assignments WHERE case_id = $1 AND "
                                    "role = 'lead'", cases[4])
        await wf.report_result(conn, lead5, handler, now + timedelta(minutes=1),
                               result="已修复", reply="已电话答复", replied=True)
        await reports.draft(conn, [cases[2]], agent, now, recipient="supervision")
        await kb.add(conn, "社保卡怎么补办", "到社保大厅补办", keywords="社保 补办", by=None,
                     now=now)
        self.ids["case"] = cases[0]

    def fresh_case(self) -> int:
        """A new case at intake, on agent1's call (the fuzzing moves the seeded ones on)."""
        async def create() -> int:
            async with self.pool.acquire() as conn:
                case = await case_store.create(conn, self.keys, call_id=None,
                                               dialled_number="12345", service="hotline",
                                               caller_number="13937760099")
                await conn.execute("UPDATE cases SET agent_id = $1 WHERE id = $2",
                                   self.ids["agent1"], case["id"])
                return int(case["id"])

        return self.run(create())

    def start(self) -> None:
        self.run(self._start())
        for login in ROLES:
            self.login(login)

    def login(self, login: str) -> requests.Session:
        # Fuzzed logins with wrong passwords count against the per-minute limit and lock
        # the account and the address out: start this login afresh.
        self.app[DESK].login_limits.clear()
        self.run(self.pool.execute(
            "DO $$ BEGIN IF to_regclass('login_throttle') IS NOT NULL THEN "
            "DELETE FROM login_throttle; DELETE FROM login_events; END IF; END $$"))
        s = requests.Session()
        r = s.post(self.url + "/api/login", json={"login": login, "password": "pw"})
        assert r.status_code == 200, r.text
        s.headers[CSRF_HEADER] = r.json()["csrf"]
        self.sessions[login] = s
        return s

    def stop(self) -> None:
        for s in self.sessions.values():
            s.close()

        async def close() -> None:
            await self.server.close()
            await self.pool.close()

        self.run(close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def fuzz_desk(pg_dsn: str) -> Iterator[FuzzDesk]:
    desk = FuzzDesk(pg_dsn)
    desk.start()
    yield desk
    desk.stop()


def _schema() -> Any:
    doc = json.loads(json.dumps(openapi_document()))  # a copy schemathesis may annotate
    schema = schemathesis.openapi.from_dict(doc)
    # The session cookie and CSRF header are ours (per role), not generated.
    schema.config.generation.update(with_security_parameters=False)
    # Logging out would end the role's session for the requests after it.
    return schema.exclude(path="/api/logout").exclude(path="/ws")


schema = _schema()


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=not RANDOM, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_server_error(case: schemathesis.Case, fuzz_desk: FuzzDesk) -> None:
    for login in [*ROLES, None]:
        session = fuzz_desk.sessions[login] if login else requests.Session()
        response = case.call(base_url=fuzz_desk.url, session=session, timeout=30)
        if login and response.status_code == 401 and case.path != "/api/login":
            # A supervisor's fuzzed request logged this user out: log in again, resend.
            session = fuzz_desk.login(login)
            response = case.call(base_url=fuzz_desk.url, session=session, timeout=30)
        case.validate_response(response, checks=CHECKS)


# -- explicit bad input -------------------------------------------------------------------

ID_ROUTES = [
    ("GET", "/api/cases/{}"), ("PUT", "/api/cases/{}"),
    ("POST", "/api/supervisor/agents/{}/state"),
    ("GET", "/api/casework/cases/{}"), ("GET", "/api/casework/cases/{}/earlier"),
    ("GET", "/api/casework/cases/{}/form"), ("GET", "/api/casework/cases/{}/recordings/{}"),
    ("POST", "/api/casework/cases/{}/reveal"), ("POST", "/api/casework/cases/{}/register"),
    ("POST", "/api/casework/cases/{}/merge"), ("POST", "/api/casework/cases/{}/assign"),
    ("POST", "/api/casework/assignments/{}/accept"),
    ("POST", "/api/casework/assignments/{}/result"),
    ("POST", "/api/casework/extensions/{}/decide"), ("POST", "/api/casework/cases/{}/urge"),
    ("PUT", "/api/casework/reports/{}"), ("POST", "/api/casework/reports/{}/send"),
]
BAD_IDS = ["0", "-1", str(2**70), "abc", "1e3", "٣"]


def _send(desk: FuzzDesk, login: str, method: str, path: str,
          **kwargs: Any) -> requests.Response:
    return desk.sessions[login].request(method, desk.url + path, timeout=30, **kwargs)


def _plain_error(r: requests.Response, *statuses: int) -> str:
    """The answer is one of these 4xx, JSON {"error": "<a Chinese sentence>"}."""
    assert r.status_code in statuses, (r.status_code, r.text[:300])
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    message = r.json()["error"]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in message), message
    return str(message)


@pytest.mark.parametrize("bad", BAD_IDS)
def test_path_ids_out_of_range_are_not_found(fuzz_desk: FuzzDesk, bad: str) -> None:
    for login in ("agent1", "lead", "hp"):
        for method, template in ID_ROUTES:
            path = template.format(bad, bad)
            r = _send(fuzz_desk, login, method, path, json={"approve": True})
            if login != "lead" and "supervisor" in path:
                _plain_error(r, 403)
            elif method == "GET":
                _plain_error(r, 404)
            else:  # the body may be refused first
                _plain_error(r, 400, 404)


def test_fields_beyond_their_maximum_are_refused_in_words(fuzz_desk: FuzzDesk) -> None:
    case = fuzz_desk.ids["case"]
    cw = f"/api/casework/cases/{case}"
    too_long = [
        ("agent1", "PUT", f"/api/cases/{case}", {"content": "长" * 10001}, "content"),
        ("agent1", "PUT", f"/api/cases/{case}", {"name": "名" * 101}, "name"),
        ("agent1", "POST", cw + "/register",
         {"title": "题" * 201, "category": "04", "validity": VALID}, "200"),
        ("agent1", "POST", cw + "/invalid", {"reason": "因" * 501}, "500"),
        ("agent1", "POST", cw + "/reveal", {"field": "name", "reason": "因" * 201}, "200"),
        ("lead", "POST", "/api/supervisor/announcement",
         {"mode": "emergency", "text": "停" * 501}, "500"),
        ("agent1", "POST", "/api/casework/reports",
         {"case_ids": list(range(1, 102)), "recipient": "mayor"}, "100"),
    ]
    for login, method, path, body, words in too_long:
        message = _plain_error(_send(fuzz_desk, login, method, path, json=body), 400)
        assert words in message, message
    for path in ("/api/casework/knowledge?q=", "/api/casework/lists/all?q="):
        _plain_error(_send(fuzz_desk, "agent1", "GET", path + "查" * 101), 400)
    r = fuzz_desk.sessions["agent1"].post(fuzz_desk.url + "/api/login",
                                          json={"login": "a" * 65, "password": "pw"})
    _plain_error(r, 400)


@pytest.mark.parametrize("path", ["/api/login", "/api/agent/state", "/api/cases/1",
                                  "/api/casework/cases/1/note", "/api/casework/reports"])
def test_a_body_beyond_64_kib_is_413_in_words(fuzz_desk: FuzzDesk, path: str) -> None:
    body = json.dumps({"note": "x" * MAX_BODY}).encode()
    method = "PUT" if path == "/api/cases/1" else "POST"
    r = _send(fuzz_desk, "agent1", method, path, data=body,
              headers={"Content-Type": "application/json"})
    assert "64 KiB" in _plain_error(r, 413)


WRONG_TYPES = [
    ("POST", "/api/casework/cases/{case}/register",
     [{"title": 1, "category": "04", "validity": VALID},
      {"title": "t", "category": "04", "validity": "all"},
      {"title": ["t"], "category": {"a": 1}, "validity": {"clear_target": "yes"}}]),
    ("POST", "/api/casework/cases/{case}/assign",
     [{"lead_unit": "1"}, {"lead_unit": 1.5}, {"lead_unit": True}, {"lead_unit": 2**70},
      {"lead_unit": 1, "co_units": "2"}, {"lead_unit": 1, "co_units": [2**40]},
      {"lead_unit": 1, "note": {"x": 1}}]),
    ("POST", "/api/casework/cases/{case}/merge", [{"into": "2"}, {"into": -2**63}, {}]),
    ("POST", "/api/casework/cases/{case}/answer",
     [{"title": "t", "category": "04", "answer": "a", "knowledge_id": 2**70},
      {"title": "t", "category": "04", "answer": "a", "knowledge_id": "1"}]),
    ("POST", "/api/casework/reports",
     [{"case_ids": [2**70], "recipient": "mayor"}, {"case_ids": "1", "recipient": "mayor"},
      {"case_ids": [1], "recipient": ["mayor"]}]),
    ("POST", "/api/casework/extensions/1/decide", [{"approve": "true"}, {"approve": 1}]),
    ("POST", "/api/agent/state",
     [{"state": "paused", "reason": ["break"]}, {"state": "paused", "reason": {"a": 1}},
      {"state": ["ready"]}, {"state": None}]),
    ("POST", "/api/agent/wrap_up", [{"seconds": "30"}, {"seconds": 1e308}, {"seconds": True}]),
    ("POST", "/api/supervisor/announcement",
     [{"mode": ["off"]}, {"mode": "emergency", "text": 5}, {"mode": {"a": 1}}]),
    ("POST", "/api/supervisor/agents/1/state",
     [{"state": "paused", "reason": ["x"]}, {"state": {"s": 1}}]),
    ("PUT", "/api/cases/{case}", [{"content": 5}, {"category": ["04"]}, {"nope": "x"}]),
    ("POST", "/api/casework/cases/{case}/reveal",
     [{"field": ["name"], "reason": "r"}, {"field": "name", "reason": 7}]),
]


def test_wrong_json_types_are_refused_in_words(fuzz_desk: FuzzDesk) -> None:
    case = fuzz_desk.ids["case"]
    for method, template, bodies in WRONG_TYPES:
        path = template.format(case=case)
        login = "lead" if "supervisor" in path else "agent1"
        for body in bodies:
            r = _send(fuzz_desk, login, method, path, json=body)
            _plain_error(r, 400, 404, 409)
        # Not an object, not JSON, not UTF-8.
        for raw in (b"[1, 2]", b'"text"', b"null", b"42", b"{not json", b"\xff\xfe{}", b""):
            r = _send(fuzz_desk, login, method, path, data=raw,
                      headers={"Content-Type": "application/json"})
            _plain_error(r, 400, 404, 409)


BAD_TEXT = ["nul\x00byte", "lone \ud800 surrogate"]


def test_text_the_database_cannot_hold_is_refused_in_words(fuzz_desk: FuzzDesk) -> None:
    case = fuzz_desk.ids["case"]
    for bad in BAD_TEXT:
        # json.dumps escapes both (\u0000, \ud800): valid JSON that a naive handler would
        # pass on to PostgreSQL, which refuses NUL and lone surrogates.
        bodies = [
            ("agent1", "PUT", f"/api/cases/{case}", {"content": bad}),
            ("agent1", "PUT", f"/api/cases/{case}", {"name": bad}),
            ("agent1", "POST", f"/api/casework/cases/{case}/note", {"note": bad}),
            ("agent1", "POST", f"/api/casework/cases/{case}/register",
             {"title": "t", "category": bad, "validity": VALID}),
            ("lead", "POST", "/api/supervisor/announcement", {"mode": "emergency", "text": bad}),
            ("lead", "POST", "/api/agent/state", {"state": "paused", "reason": bad}),
        ]
        for login, method, path, body in bodies:
            _plain_error(_send(fuzz_desk, login, method, path, json=body), 400)
        r = fuzz_desk.sessions["agent1"].post(fuzz_desk.url + "/api/login",
                                              json={"login": bad, "password": "pw"})
        _plain_error(r, 400, 401)
    for path in ("/api/casework/knowledge", "/api/casework/lists/all"):
        r = _send(fuzz_desk, "agent1", "GET", path, params={"q": "a\x00b"})
        _plain_error(r, 400)
    r = requests.get(fuzz_desk.url + "/open311/v2/requests.json",
                     params={"service_code": "04\x00"}, timeout=30)
    assert r.status_code in (200, 400), r.text


INJECTIONS = ["'; DROP TABLE cases; --", "1' OR '1'='1", "%' OR 1=1 --",
              "\\'; SELECT pg_sleep(5)--"]
SCRIPT = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_injection_looking_text_is_stored_as_text(fuzz_desk: FuzzDesk) -> None:
    case = fuzz_desk.fresh_case()
    for text in [*INJECTIONS, SCRIPT]:
        r = _send(fuzz_desk, "agent1", "PUT", f"/api/cases/{case}",
                  json={"content": text, "name": text[:100]})
        assert r.status_code == 200, r.text
        assert r.json()["case"]["content"] == text
        assert r.json()["case"]["name"] == text[:100]
        # Searching with it finds nothing (and breaks nothing).
        for path in ("/api/casework/lists/all", "/api/casework/knowledge"):
            r = _send(fuzz_desk, "agent1", "GET", path, params={"q": text[:100]})
            assert r.status_code == 200, r.text
            assert r.json().get("cases", r.json().get("entries")) == []
        r = requests.get(fuzz_desk.url + "/open311/v2/requests.json",
                         params={"service_request_id": text}, timeout=30)
        assert r.status_code == 400 and r.json()[0]["description"]
        r = requests.get(fuzz_desk.url + "/open311/v2/requests.json",
                         params={"service_code": text}, timeout=30)
        assert r.status_code == 200 and r.json() == []
    # The tables are all still there, the other cases too.
    r = _send(fuzz_desk, "agent1", "GET", "/api/casework/lists/all")
    assert r.status_code == 200 and len(r.json()["cases"]) >= 3


def test_html_in_text_fields_is_never_rendered(fuzz_desk: FuzzDesk) -> None:
    # A registered case's title goes into the printable form: escaped there, verbatim in
    # JSON (the desk's pages put text in with textContent).
    case = fuzz_desk.fresh_case()
    # The fuzzed admin requests may have deactivated the category.
    fuzz_desk.run(fuzz_desk.pool.execute("UPDATE categories SET active = true WHERE code = '04'"))
    r = _send(fuzz_desk, "agent1", "PUT", f"/api/cases/{case}", json={"content": SCRIPT})
    assert r.status_code == 200
    r = _send(fuzz_desk, "agent1", "POST", f"/api/casework/cases/{case}/register",
              json={"title": SCRIPT[:200], "category": "04", "validity": VALID})
    assert r.status_code == 200, r.text
    detail = _send(fuzz_desk, "agent1", "GET", f"/api/casework/cases/{case}").json()["case"]
    assert detail["title"] == SCRIPT[:200] and detail["content"] == SCRIPT
    page = _send(fuzz_desk, "agent1", "GET", f"/api/casework/cases/{case}/form")
    assert page.headers["Content-Type"].startswith("text/html")
    assert "<script>alert" not in page.text and "onerror=alert(1)>" not in page.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page.text
