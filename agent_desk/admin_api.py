"""The admin's pages of the desk: the category tree, the directory of linkage units, the
knowledge base and the working-day calendar (issue 4, "editable by an admin").

The admin configures and sees no case and no caller's data (issue 5); the duty supervisor
may also keep the knowledge base. Handlers are thin: they check the role (read from the
database, not the request), check the body's types and sizes, call casework, and answer its
plain-words errors as ``{"error": ...}`` (400/403/404/409); a file's mistakes come as
``{"error", "problems": [{"file", "line", "message"}]}``. Every change is logged with who
made it and what it touched (ids and codes only, never text that could hold personal data).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg
import yaml
from aiohttp import web

from casework import calendar, categories, units
from casework import knowledge as kb
from casework import workflow as wf

log = logging.getLogger(__name__)

ADMIN = ("admin",)
KNOWLEDGE_EDITORS = ("admin", "supervisor")
FORBIDDEN = {ADMIN: "仅系统管理员可以进行此操作",
             KNOWLEDGE_EDITORS: "仅系统管理员和值班长可以维护知识库"}
# A directory of a few thousand units as YAML (characters); the request carrying it may be
# larger than the desk's 64 KiB, other requests are not.
MAX_IMPORT = 2_000_000
MAX_IMPORT_BODY = 4 * 1024 * 1024
MAX_NOTICE = 20_000
MAX_UNIT_TEXT = 100
MAX_QUERY = 100
MAX_LISTED = 200
UPLOAD_NAME = "上传的文件"
HANDLERS_UPLOAD_NAME = "上传的承办人文件"
NOTICE_NAME = "录入的通知"
SOURCE_NAMES = {calendar.PACKAGE: "法定", calendar.ADMIN: "管理员录入"}
WEEKDAY_NAMES = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")
UNIT_FIELD_NAMES = {"name": "单位名称", "kind": "单位类型", "duty_phone": "值班电话",
                    "leader": "责任领导", "department": "责任科室", "contact_person": "联系人",
                    "contact_phone": "联系电话"}


class DeskState(Protocol):
    pool: asyncpg.Pool


class AdminError(Exception):
    """A request refused, with its HTTP status and (for files) the mistakes by line."""

    def __init__(self, message: str, status: int = 400,
                 problems: list[tuple[str, int, str]] | None = None):
        super().__init__(message)
        self.status = status
        self.problems = problems


@dataclass
class Call:
    """One admin request: who, the clock read once, the JSON body (empty for a GET)."""

    state: DeskState
    actor: wf.Actor
    request: web.Request
    now: datetime
    body: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def _problems(problems: list[tuple[str, int, str]]) -> list[dict[str, Any]]:
    return [{"file": f, "line": line, "message": msg} for f, line, msg in problems]


async def _read_json(request: web.Request, limit: int) -> dict[str, Any]:
    """The JSON object of the body, at most ``limit`` bytes; AdminError (400) otherwise."""
    if request.content_type != "application/json":
        raise AdminError("请求内容必须是 JSON")
    try:
        raw = await request.clone(client_max_size=limit).read()
    except web.HTTPRequestEntityTooLarge:
        raise AdminError(f"请求内容过大（最多 {limit // 1024} KB）") from None
    try:
        body = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise AdminError("请求内容不是有效的 JSON") from None
    if not isinstance(body, dict):
        raise AdminError("请求内容必须是 JSON 对象")
    return body


def _only(body: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise AdminError(f"未知字段：{', '.join(unknown)}")


def _text(body: Mapping[str, Any], key: str, what: str, longest: int,
          required: bool = False) -> str | None:
    """A text field (None when absent or null), checked for type and length."""
    v = body.get(key)
    if v is None:
        if required:
            raise AdminError(f"请填写{what}")
        return None
    if not isinstance(v, str):
        raise AdminError(f"{what}必须是文字")
    if len(v) > longest:
        raise AdminError(f"{what}过长（最多 {longest} 个字）")
    if required and not v.strip():
        raise AdminError(f"请填写{what}")
    return v


def _path_int(request: web.Request, name: str, what: str) -> int:
    try:
        value = int(request.match_info[name])
    except ValueError:
        value = -1
    if not 0 < value < 2**31:
        raise AdminError(f"没有这个{what}", 404)
    return value


def _upload_name(body: Mapping[str, Any], key: str, default: str) -> str:
    """The uploaded file's own name for the mistakes' file:line, or a plain default."""
    name = _text(body, key, "文件名", 200)
    if not name:
        return default
    name = _UNSAFE_NAME.sub("", name.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    return name[:100] or default


def _yaml_aliases(text: str, filename: str) -> list[tuple[str, int, str]]:
    """The first anchor or alias of a YAML text, as a mistake: these files need none, and
    nested aliases make a few bytes expand into millions of values while being read."""
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if getattr(event, "anchor", None):  # an anchor (&a) or an alias (*a)
                line = event.start_mark.line + 1 if event.start_mark else 0
                return [(filename, line, "YAML anchors and aliases (& and *) are not "
                                         "supported here: write each value out")]
    except yaml.YAMLError:
        pass  # the parser proper reports it with its line
    return []


def routes(key: web.AppKey[Any]) -> list[web.RouteDef]:
    """The admin routes, reading the desk's state (its pool) from app[key]."""

    def step(fn: Callable[[Call], Awaitable[dict[str, Any] | None]],
             roles: tuple[str, ...] = ADMIN, max_body: int = 64 * 1024) -> Handler:
        # Who acts comes from the database; the role is checked before the body is read;
        # no connection is held while a large body arrives.
        async def handler(request: web.Request) -> web.StreamResponse:
            state: DeskState = request.app[key]
            now = datetime.now(UTC)
            try:
                async with state.pool.acquire() as conn:
                    actor = await wf.actor_for(conn, request["session"].agent_id)
                if actor.role not in roles:
                    return _error(403, FORBIDDEN[roles])
                body = await _read_json(request, max_body) \
                    if request.method not in ("GET", "HEAD") else {}
                result = await fn(Call(state, actor, request, now, body))
            except AdminError as e:
                extra = {"problems": _problems(e.problems)} if e.problems is not None else {}
                return _error(e.status, str(e), **extra)
            except (categories.CategoryError, units.UnitError, kb.KnowledgeError) as e:
                return _error(400, str(e))
            except wf.WorkflowError as e:
                return _error(403, str(e))
            return web.json_response({"ok": True, **(result or {})})
        return handler

    def changed(c: Call, what: str, *args: Any) -> None:
        log.info("%s %s " + what, c.actor.role, c.actor.id, *args)

    # -- categories -------------------------------------------------------------------------

    def _code(c: Call) -> str:
        code = c.request.match_info["code"]
        if not categories.CODE.match(code):
            raise AdminError("没有这个类别", 404)
        return code

    async def category_tree(c: Call) -> dict[str, Any]:
        async with c.state.pool.acquire() as conn:
            tree = await categories.tree(conn)
        return {"categories": [n.as_dict() for n in tree]}

    async def category_add(c: Call) -> dict[str, Any]:
        b = c.body
        _only(b, {"code", "name", "parent", "gbt_code", "sort"})
        code = _text(b, "code", "类别编码", 10, required=True)
        parent = _text(b, "parent", "上级类别编码", 10)
        async with c.state.pool.acquire() as conn:
            cat = await categories.add(conn, code or "", b.get("name", ""),
                                       parent=parent, gbt_code=b.get("gbt_code"),
                                       sort=b.get("sort"))
        changed(c, "added the category %s under %s", cat.code, cat.parent or "-")
        return {"category": cat.as_dict()}

    async def category_update(c: Call) -> dict[str, Any]:
        code = _code(c)
        async with c.state.pool.acquire() as conn:
            if await categories.get(conn, code) is None:
                raise AdminError("没有这个类别", 404)
            cat = await categories.update(conn, code, c.body)
        changed(c, "changed the category %s (%s)", code, ", ".join(sorted(c.body)))
        return {"category": cat.as_dict()}

    async def category_deactivate(c: Call) -> dict[str, Any]:
        code = _code(c)
        async with c.state.pool.acquire() as conn:
            if await categories.get(conn, code) is None:
                raise AdminError("没有这个类别", 404)
            n = await categories.deactivate(conn, code)
        changed(c, "deactivated the category %s (%d with its branch)", code, n)
        return {"deactivated": n}

    # -- units ------------------------------------------------------------------------------

    async def unit_tree(c: Call) -> dict[str, Any]:
        async with c.state.pool.acquire() as conn:
            tree = await units.tree(conn, include_inactive=True)
            rows = await conn.fetch(
                """SELECT unit_id, login, display_name, active FROM agents
                   WHERE role = 'handler' AND unit_id IS NOT NULL ORDER BY login""")
        handlers: dict[int, list[dict[str, Any]]] = {}
        for r in rows:  # never the password hash
            handlers.setdefault(r["unit_id"], []).append(
                {"login": r["login"], "name": r["display_name"], "active": r["active"]})

        def with_handlers(u: dict[str, Any]) -> dict[str, Any]:
            return {**u, "handlers": handlers.get(u["id"], []),
                    "children": [with_handlers(ch) for ch in u["children"]]}

        return {"units": [with_handlers(u.as_dict()) for u in tree],
                "kinds": [{"code": k, "name": v} for k, v in units.KINDS.items()]}

    async def unit_update(c: Call) -> dict[str, Any]:
        unit_id = _path_int(c.request, "unit_id", "单位")
        b = c.body
        for k in units.FIELDS:
            _text(b, k, UNIT_FIELD_NAMES.get(k, k), MAX_UNIT_TEXT)
        if "parent_id" in b:
            p = b["parent_id"]
            if p is not None and (isinstance(p, bool) or not isinstance(p, int)
                                  or not 0 < p < 2**31):
                raise AdminError("上级单位必须是单位编号")
        async with c.state.pool.acquire() as conn:
            if await units.get(conn, unit_id) is None:
                raise AdminError("没有这个单位", 404)
            unit = await units.update(conn, unit_id, b, c.actor.id, c.now)
        changed(c, "changed the unit %s (%s)", unit.code, ", ".join(sorted(b)))
        return {"unit": unit.as_dict()}

    async def unit_import(c: Call) -> dict[str, Any]:
        b = c.body
        _only(b, {"format", "text", "handlers_csv", "filename", "handlers_filename"})
        fmt = b.get("format")
        if fmt not in ("yaml", "csv"):
            raise AdminError("文件格式只能是 yaml 或 csv")
        text = _text(b, "text", "文件内容", MAX_IMPORT, required=True) or ""
        handlers = _text(b, "handlers_csv", "承办人文件内容", MAX_IMPORT)
        name = _upload_name(b, "filename", UPLOAD_NAME)
        hname = _upload_name(b, "handlers_filename", HANDLERS_UPLOAD_NAME)
        if fmt == "yaml" and handlers:
            raise AdminError("YAML 名录在每个单位下列出承办人（handlers:），不需要另附承办人 CSV")
        if fmt == "yaml" and (aliases := _yaml_aliases(text, name)):
            raise AdminError("文件有 1 处错误，未导入任何内容", problems=aliases)

        def parse() -> tuple[list[units.UnitSpec], bool]:
            if fmt == "yaml":
                return units.parse_units_yaml(text, name), True
            specs = units.parse_units_csv(text, name)
            if not handlers:
                return specs, False
            return units.parse_handlers_csv(handlers, specs, hname), True

        try:
            # Reading a large file takes a while: not on the event loop.
            specs, with_handlers = await asyncio.get_running_loop().run_in_executor(None, parse)
            async with c.state.pool.acquire() as conn:
                result = await units.import_units(conn, specs, c.now,
                                                  with_handlers=with_handlers)
        except units.FileProblems as e:
            raise AdminError(f"文件有 {len(e.problems)} 处错误，未导入任何内容",
                             problems=e.problems) from None
        changed(c, "imported the units directory: %s", result.summary())
        r = result
        return {"result": asdict(r), "summary": (
            f"单位：新增 {r.created}，更新 {r.updated}，未变 {r.unchanged}，停用 {r.deactivated}；"
            f"承办人账号：新增 {r.handlers_created}，更新 {r.handlers_updated}，"
            f"停用 {r.handlers_deactivated}"
            + ("" if with_handlers else "（CSV 未附承办人文件：已有承办人账号保持不变）"))}

    # -- knowledge base ---------------------------------------------------------------------

    async def knowledge_list(c: Call) -> dict[str, Any]:
        q = c.request.query.get("q", "").strip()
        if len(q) > MAX_QUERY:
            raise AdminError(f"查询内容过长（最多 {MAX_QUERY} 个字）")
        async with c.state.pool.acquire() as conn:
            if q:  # what an agent would find on the call: active entries, best first
                entries = await kb.search(conn, q, limit=50)
            else:  # everything, the deactivated ones last, to edit or take back into use
                rows = await conn.fetch(
                    """SELECT id, question, answer, keywords, category, active, updated_at
                       FROM knowledge ORDER BY active DESC, updated_at DESC, id DESC
                       LIMIT $1""", MAX_LISTED)
                entries = [kb.Entry(**dict(r)) for r in rows]
            total = await conn.fetchval("SELECT count(*) FROM knowledge")
        return {"entries": kb.as_dicts(entries), "total": total}

    async def knowledge_add(c: Call) -> dict[str, Any]:
        b = c.body
        _only(b, {"question", "answer", "keywords", "category"})
        async with c.state.pool.acquire() as conn:
            entry = await kb.add(conn, b.get("question", ""), b.get("answer", ""),
                                 keywords=b.get("keywords", ""), category=b.get("category"),
                                 by=c.actor.id, now=c.now)
        changed(c, "added the knowledge entry %d", entry.id)
        return {"entry": entry.as_dict()}

    async def knowledge_update(c: Call) -> dict[str, Any]:
        entry_id = _path_int(c.request, "entry_id", "知识条目")
        async with c.state.pool.acquire() as conn:
            if await kb.get(conn, entry_id) is None:
                raise AdminError("没有这条知识", 404)
            entry = await kb.update(conn, entry_id, c.body, by=c.actor.id, now=c.now)
        changed(c, "changed the knowledge entry %d (%s)", entry_id, ", ".join(sorted(c.body)))
        return {"entry": entry.as_dict()}

    async def knowledge_deactivate(c: Call) -> dict[str, Any]:
        entry_id = _path_int(c.request, "entry_id", "知识条目")
        async with c.state.pool.acquire() as conn:
            if await kb.get(conn, entry_id) is None:
                raise AdminError("没有这条知识", 404)
            entry = await kb.deactivate(conn, entry_id, by=c.actor.id, now=c.now)
        changed(c, "deactivated the knowledge entry %d", entry_id)
        return {"entry": entry.as_dict()}

    # -- the working-day calendar -----------------------------------------------------------

    def day_dict(d: calendar.CalendarDay) -> dict[str, Any]:
        return {"day": d.day.isoformat(), "weekday": WEEKDAY_NAMES[d.day.weekday()],
                "working": d.working, "name": d.name, "source": d.source,
                "source_name": SOURCE_NAMES.get(d.source, d.source)}

    async def calendar_year(c: Call) -> dict[str, Any]:
        try:
            year = int(c.request.match_info["year"])
        except ValueError:
            year = 0
        if not 2000 <= year <= 2100:
            raise AdminError("年份应在 2000 到 2100 之间")
        async with c.state.pool.acquire() as conn:
            cal = await calendar.load(conn)
        local = c.now.astimezone(calendar.TZ)
        nxt = local.year + 1
        warning = None
        if calendar.coverage_warning(cal, c.now):
            warning = (f"工作日历还没有 {nxt} 年的节假日：跨入 {nxt} 年的办理时限会把"
                       f"每个周一至周五都算作工作日。国务院办公厅的通知发布后，"
                       f"请在“录入国务院节假日安排通知”处录入 {nxt} 年的安排。")
        return {"year": year, "covered": cal.covers(year),
                "days": [day_dict(d) for d in cal.exceptions(year)],
                "this_year": local.year, "next_year": nxt,
                "next_year_covered": cal.covers(nxt), "warning": warning}

    async def calendar_notice(c: Call) -> dict[str, Any]:
        b = c.body
        _only(b, {"text", "dry_run"})
        text = _text(b, "text", "通知内容", MAX_NOTICE, required=True) or ""
        dry_run = b.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise AdminError("dry_run 必须是 true 或 false")
        # A one-line text ending in .yaml would be taken for a path on this server.
        if "\n" not in text:
            text += "\n"
        try:
            problems = _yaml_aliases(text, NOTICE_NAME)
            if problems:
                raise calendar.NoticeError(problems)
            notice = calendar.parse_notice(text, NOTICE_NAME)
        except calendar.NoticeError as e:
            raise AdminError(f"通知有 {len(e.problems)} 处错误，未录入",
                             problems=e.problems) from None
        days = notice.days()
        async with c.state.pool.acquire() as conn:
            replaced = await conn.fetchval(
                "SELECT count(*) FROM calendar_days WHERE extract(year FROM day) = $1",
                notice.year)
            if not dry_run:
                await calendar.apply_notice(conn, notice, c.actor.id, c.now)
        out = {"year": notice.year, "title": notice.title, "replaced": replaced,
               "days": [day_dict(d) for d in days]}
        if dry_run:
            return {**out, "dry_run": True}
        changed(c, "entered the holiday notice for %d (%d exception days, %d replaced)",
                notice.year, len(days), replaced)
        return {**out, "entered": len(days)}

    cat, unit, know = "/api/admin/categories", "/api/admin/units", "/api/admin/knowledge"
    return [
        web.get(cat, step(category_tree)),
        web.post(cat, step(category_add)),
        web.put(cat + "/{code}", step(category_update)),
        web.post(cat + "/{code}/deactivate", step(category_deactivate)),
        web.get(unit, step(unit_tree)),
        web.post(unit + "/import", step(unit_import, max_body=MAX_IMPORT_BODY)),
        web.put(unit + "/{unit_id}", step(unit_update)),
        web.get(know, step(knowledge_list, KNOWLEDGE_EDITORS)),
        web.post(know, step(knowledge_add, KNOWLEDGE_EDITORS)),
        web.put(know + "/{entry_id}", step(knowledge_update, KNOWLEDGE_EDITORS)),
        web.post(know + "/{entry_id}/deactivate", step(knowledge_deactivate, KNOWLEDGE_EDITORS)),
        web.get("/api/admin/calendar/{year}", step(calendar_year)),
        web.post("/api/admin/calendar/notice", step(calendar_notice)),
    ]
