"""Every response of the desk carries its security headers (agent_desk/headers.py), and
nothing the desk serves needs what its Content-Security-Policy forbids.

Every route of the app, for no login and for each kind of desk user, then a 404, a 405,
errors answered by the desk's own middleware, a handler's HTTPException and an exception
that escaped every middleware: a strict CSP with frame-ancestors 'none', nosniff,
no-referrer and no-store on everything but static files and the public answers (Open311,
the weekly publication), which keep their own caching. The pages themselves (static HTML
and JS, and every HTML page the walk received, the printable 受理交办单 among them) have no
inline script, <style>, style="" or on...="" attribute, no eval and no blob:/data: URL."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Any

import asyncpg
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from agent_desk.app import CSRF_HEADER, MAX_BODY, make_app
from db import agents as agent_store
from db import pool as db_pool
from db.crypto import Keyring
from dialplan import config
from tests.agent_desk.test_role_matrix import _routes, world
from tests.conftest import ROOT

__all__ = ["world"]  # the fixture, shared with the role matrix

STATIC = ROOT / "agent_desk" / "static"
PUBLIC = ("/open311/", "/public/")
# Desk users whose walk is checked (each has its own pages and answers).
WALKERS = ("anonymous", "agent_web", "supervisor", "handler_a", "admin", "auditor")


def _policy(header: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            out[words[0].lower()] = words[1:]
    return out


def header_problems(r: ClientResponse, path: str) -> list[str]:
    """What is wrong with the security headers of `r`, the answer to `path`."""
    where = f"{r.method} {path} -> {r.status}"
    h = r.headers
    problems = [f"{where}: {name} is {h.get(name)!r}, not {want!r}" for name, want in (
        ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"),
        ("X-Frame-Options", "DENY")) if h.get(name) != want]
    csp = _policy(h.get("Content-Security-Policy", ""))
    if csp.get("frame-ancestors") != ["'none'"]:
        problems.append(f"{where}: no frame-ancestors 'none' in {csp}")
    if csp.get("default-src") != ["'none'"]:
        problems.append(f"{where}: default-src is not 'none': {csp}")
    if csp.get("base-uri") != ["'none'"] or csp.get("form-action") != ["'none'"]:
        problems.append(f"{where}: base-uri or form-action is not 'none': {csp}")
    cache = h.get("Cache-Control", "")
    if path.startswith(PUBLIC):
        # No script at all; only the publication's inline <style>.
        if "script-src" in csp or set(csp.get("style-src", [])) - {"'unsafe-inline'"}:
            problems.append(f"{where}: the public policy allows more than inline style: {csp}")
        return problems
    host = f"{r.url.host}:{r.url.port}"
    allowed = {"'self'", "'none'", f"ws://{host}", f"wss://{host}"}
    for directive, sources in csp.items():
        if set(sources) - allowed:
            problems.append(f"{where}: {directive} allows {sorted(set(sources) - allowed)}")
    for directive in ("script-src", "style-src"):
        if csp.get(directive) != ["'self'"]:
            problems.append(f"{where}: {directive} is not only 'self': {csp.get(directive)}")
    if not {"'self'", f"ws://{host}", f"wss://{host}"} <= set(csp.get("connect-src", [])):
        problems.append(f"{where}: connect-src misses the desk's API or WebSockets: {csp}")
    if path.startswith("/static/"):
        if "no-store" in cache or (r.status == 200 and "ETag" not in h):
            problems.append(f"{where}: a static file that is not cacheable ({cache!r})")
    elif cache != "no-store":
        problems.append(f"{where}: Cache-Control is {cache!r}, not 'no-store'")
    return problems


class _PageChecker(HTMLParser):
    """Collects what in a page the desk's CSP would block."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.static: set[str] = set()
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...>: an inline event handler")
            if name == "style":
                self.problems.append(f"<{tag} style={value!r}>: an inline style attribute")
            if (value or "").strip().lower().startswith(("javascript:", "data:", "blob:")):
                self.problems.append(f"<{tag} {name}={value!r}>: a URL the policy blocks")
        if tag == "style":
            self.problems.append("<style>: an inline style block")
        if tag in ("base", "iframe", "frame", "object", "embed") or (
                tag == "meta" and a.get("http-equiv")):
            self.problems.append(f"<{tag}>: not allowed by the policy")
        if tag == "script":
            self._in_script = True
            if not a.get("src"):
                self.problems.append("<script> without src: an inline script")
        url = a.get("src") if tag in ("script", "img", "audio", "video", "source") else \
            a.get("href") if tag == "link" else None
        if url is not None:
            if not url.startswith("/static/"):
                self.problems.append(f"<{tag}> loads {url!r}, not one of the desk's files")
            self.static.add(url.removeprefix("/static/"))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append(f"<script>{data.strip()[:40]}...: an inline script")


def page_problems(html: str) -> list[str]:
    """What in a desk page the CSP would block, or files it loads that are missing."""
    checker = _PageChecker()
    checker.feed(html)
    checker.close()
    missing = [f"loads /static/{f}, which does not exist" for f in sorted(checker.static)
               if not (STATIC / f).is_file()]
    return checker.problems + missing


# Script that the CSP (no 'unsafe-eval', no inline style attributes, no blob:/data:) blocks.
SCRIPT_BLOCKED = re.compile(
    r"\beval\s*\(|\bnew\s+Function\b|(?<![\w.])Function\s*\(|\bset(?:Timeout|Interval)\s*\(\s*"
    r"['\"`]|\.(?:inner|outer)HTML\s*=|insertAdjacentHTML|document\.write|"
    r"setAttribute\(\s*['\"](?:style|on\w+)['\"]|createObjectURL|['\"`](?:blob|data):")
# In the desk's own scripts: an address of another site (the WebSockets are built from
# location.host). JsSIP's bundle names its homepage and repository in its metadata.
OTHER_SITE = re.compile(r"['\"`](?:https?|wss?)://")


def test_the_static_pages_need_nothing_the_policy_blocks() -> None:
    pages = sorted(STATIC.glob("*.html"))
    assert {p.name for p in pages} >= {"index.html", "cases.html", "admin.html",
                                       "audit.html"}
    problems = [f"{p.name}: {x}" for p in pages
                for x in page_problems(p.read_text(encoding="utf-8"))]
    assert problems == []


def test_the_scripts_need_nothing_the_policy_blocks() -> None:
    scripts = sorted(STATIC.rglob("*.js"))
    assert "jssip.min.js" in {s.name for s in scripts}  # the softphone's library too
    problems = [f"{s.relative_to(STATIC)}: {m.group(0)!r}" for s in scripts
                for m in SCRIPT_BLOCKED.finditer(s.read_text(encoding="utf-8"))]
    problems += [f"{s.name}: {m.group(0)!r}" for s in STATIC.glob("*.js")
                 for m in OTHER_SITE.finditer(s.read_text(encoding="utf-8"))]
    assert problems == []


async def test_every_route_for_every_user_carries_the_headers(world: dict[str, Any]) -> None:
    routes = _routes(world["app"], world["values"])
    assert len(routes) > 50
    problems: list[str] = []
    html_seen: set[str] = set()
    for role in WALKERS:
        client, csrf = world["clients"][role]
        for method, path in routes:
            if path in ("/api/logout", "/api/login"):
                continue
            body = {"field": "caller_number", "reason": "核实"} \
                if path.endswith("/reveal") else {}
            for verb in (method, "HEAD") if method == "GET" else (method,):
                r = await client.request(verb, path, json=body if verb != "GET" else None,
                                         headers={CSRF_HEADER: csrf})
                raw = await r.read()
                problems += header_problems(r, path)
                if r.content_type != "text/html" or verb == "HEAD":
                    continue
                text = raw.decode(r.charset or "utf-8")
                if path.startswith(PUBLIC):
                    if "<script" in text.lower():
                        problems.append(f"{path}: a public page with a script")
                else:
                    html_seen.add(path)
                    problems += [f"{role} {path}: {x}" for x in page_problems(text)]
    assert problems == []
    case_id = world["values"]["case_id"]
    assert {"/", "/cases", "/admin", "/audit",
            f"/api/casework/cases/{case_id}/form"} <= html_seen


async def test_static_files_and_public_answers_keep_their_caching(
        world: dict[str, Any]) -> None:
    client, _ = world["clients"]["anonymous"]
    for name in ("desk.js", "desk.css", "vendor/jssip.min.js", "audit.css",
                 "assignment-form.css", "assignment-form.js"):
        r = await client.get(f"/static/{name}")
        assert r.status == 200, name
        assert header_problems(r, f"/static/{name}") == []
        again = await client.get(f"/static/{name}", headers={"If-None-Match": r.headers["ETag"]})
        assert again.status == 304 and header_problems(again, f"/static/{name}") == []
    r = await client.get("/public/weekly/2026-W08.html")  # a week long ended
    assert r.status == 200 and r.headers["Cache-Control"] == "public, max-age=300"
    assert header_problems(r, r.url.path) == []
    for path in ("/open311/v2/services.json", "/open311/v2/requests.json?status=x",
                 "/open311/v2/services.xml", "/public/weekly/2025-W53.csv"):
        r = await client.get(path)
        assert r.status in (200, 400, 404), path
        assert header_problems(r, r.url.path) == []
        assert r.headers.get("Cache-Control") != "no-store", path


async def test_logging_in_and_out_carry_the_headers(world: dict[str, Any]) -> None:
    client, _ = world["clients"]["anonymous"]
    r = await client.post("/api/login", json={"login": "agent", "password": "wrong"})
    assert r.status == 401 and header_problems(r, "/api/login") == []
    r = await client.post("/api/login", json={"login": "agent", "password": "pw"})
    assert r.status == 200 and header_problems(r, "/api/login") == []
    csrf = (await r.json())["csrf"]
    r = await client.post("/api/logout", headers={CSRF_HEADER: csrf})
    assert r.status == 200 and header_problems(r, "/api/logout") == []


async def test_the_websocket_upgrade_still_works(world: dict[str, Any]) -> None:
    client, _ = world["clients"]["agent"]
    ws = await client.ws_connect("/ws")
    try:
        message = await ws.receive_json(timeout=10)
        assert message["type"] == "snapshot"
    finally:
        await ws.close()
    anonymous, _ = world["clients"]["anonymous"]
    r = await anonymous.get("/ws")
    assert r.status == 401 and header_problems(r, "/ws") == []


@pytest.fixture
async def failing_desk(pg_dsn: str, conn: asyncpg.Connection
                       ) -> AsyncIterator[tuple[TestClient[Any, Any], str]]:
    """The desk with routes that fail, and a middleware outside the desk's own that raises:
    a client logged in as an agent, and its CSRF token."""
    cfg = config.load(ROOT / "config" / "hotline.yaml")
    keys = Keyring({"k1": os.urandom(32)}, "k1", os.urandom(32))
    pool = await db_pool.connect(pg_dsn)
    app = make_app(cfg, pool, keys, pg_dsn)

    async def crash(request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    async def refuse(request: web.Request) -> web.Response:
        raise web.HTTPForbidden(text="不行")

    @web.middleware
    async def outermost(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/outer-crash":
            raise RuntimeError("outside every middleware of the desk")
        return await handler(request)

    app.middlewares.insert(0, outermost)
    for path in ("/crash", "/api/crash"):
        app.router.add_get(path, crash)
    for path in ("/refuse", "/api/refuse"):
        app.router.add_get(path, refuse)
    await conn.execute("INSERT INTO agents (login, display_name, role, password_hash) "
                       "VALUES ('agent', 'agent', 'agent', $1)",
                       agent_store.hash_password("pw"))
    async with TestClient(TestServer(app)) as client:
        r = await client.post("/api/login", json={"login": "agent", "password": "pw"})
        assert r.status == 200, await r.text()
        yield client, (await r.json())["csrf"]
    await pool.close()


async def test_errors_carry_the_headers(
        failing_desk: tuple[TestClient[Any, Any], str]) -> None:
    client, csrf = failing_desk
    big = b"{" + b" " * (MAX_BODY + 1) + b"}"
    cases: list[tuple[str, str, dict[str, Any], int]] = [
        ("GET", "/no-such-page", {}, 404),
        ("GET", "/api/no-such-thing", {}, 404),
        ("GET", "/static/no-such-file.js", {}, 404),
        ("POST", "/", {}, 405),
        ("GET", "/api/cases/abc", {}, 404),
        ("GET", "/api/me%00", {}, 400),  # refused by the desk's error middleware
        ("GET", "/open311/v2/services.json%00", {}, 400),
        ("PUT", "/api/cases/1", {"data": big, "headers": {
            CSRF_HEADER: csrf, "Content-Type": "application/json"}}, 413),
        ("POST", "/api/agent/state", {"json": {"state": "ready"}}, 403),  # no CSRF token
        ("GET", "/crash", {}, 500),
        ("GET", "/api/crash", {}, 500),
        ("GET", "/refuse", {}, 403),
        ("GET", "/api/refuse", {}, 403),
        ("GET", "/outer-crash", {}, 500),  # aiohttp's own 500, past every middleware
        ("HEAD", "/outer-crash", {}, 500),
    ]
    problems = []
    for method, path, kwargs, status in cases:
        r = await client.request(method, path, **kwargs)
        await r.read()
        if r.status != status:
            problems.append(f"{method} {path}: {r.status}, expected {status}")
        problems += header_problems(r, r.url.raw_path)
    assert problems == []


def test_the_desk_policy_names_only_a_plain_host() -> None:
    from agent_desk.headers import desk_csp

    assert "ws://desk.example:8443 wss://desk.example:8443" in desk_csp("desk.example:8443")
    assert "wss://[::1]:8080" in desk_csp("[::1]:8080")
    for bad in ("evil; script-src *", "a b", "", None, "x'y", "host:port"):
        assert desk_csp(bad).endswith("connect-src 'self'"), bad

