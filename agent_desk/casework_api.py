"""The desk's case-workflow API: lists and details by role, every step of a case's life,
special reports, the units directory and the knowledge base, and the printable
acceptance and assignment form (受理交办单).

Handlers are thin: they read the body, call casework (which checks who may do what and
from which status), and map its WorkflowError to an HTTP status with its plain message.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg
from aiohttp import web

from casework import audit, calendar, progress, reports, urging, views
from casework import knowledge as kb
from casework import workflow as wf
from db import recordings
from db.crypto import CryptoError, Keyring
from dialplan.config import HotlineConfig

MAX_INT = 2**31 - 1  # PostgreSQL's int, the type of most ids
STATUS_FOR = {"forbidden": 403, "not_found": 404, "invalid": 400, "bad_state": 409,
              "too_late": 409, "refused": 409, "rate_limited": 429}


class DeskState(Protocol):
    cfg: HotlineConfig
    pool: asyncpg.Pool
    keyring: Keyring


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _int(request: web.Request, name: str) -> int:
    text = request.match_info[name]
    # ASCII digits only: int() would also take "٣", " 3", "+3" and "1_0".
    value = int(text) if text.isascii() and text.isdigit() and len(text) <= 19 else -1
    if not 0 < value < 2**62:
        raise web.HTTPNotFound(text=json.dumps({"error": "没有这条记录"}),
                               content_type="application/json")
    return value


def unstorable(value: Any) -> bool:
    """True if this JSON value holds text PostgreSQL cannot store: a NUL character or a
    lone surrogate (both valid JSON, as \\u0000 and \\ud800). Iterative: JSON nests deep."""
    todo = [value]
    while todo:
        v = todo.pop()
        if isinstance(v, str):
            if "\x00" in v or (not v.isascii() and _SURROGATE.search(v)):
                return True
        elif isinstance(v, dict):
            todo.extend(v.keys())
            todo.extend(v.values())
        elif isinstance(v, list | tuple):
            todo.extend(v)
    return False


UNSTORABLE = "请求内容含有无法保存的字符（如 \\u0000）"
_SURROGATE = re.compile("[\ud800-\udfff]")


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError, RecursionError):
        body = None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text=json.dumps({"error": "请求内容必须是 JSON 对象"}),
                                 content_type="application/json")
    if unstorable(body):
        raise web.HTTPBadRequest(text=json.dumps({"error": UNSTORABLE}),
                                 content_type="application/json")
    return body


def _rules(state: DeskState) -> wf.Rules:
    c = state.cfg.casework
    return wf.Rules(written_days=c.written_days, phone_days=c.phone_days,
                    criticism_urgings=c.criticism_urgings,
                    max_extension_days=c.max_extension_days)


def _bool(body: dict[str, Any], key: str) -> bool:
    v = body.get(key)
    if not isinstance(v, bool):
        raise wf.WorkflowError(f"参数 {key} 必须是 true 或 false", "invalid")
    return v


def _opt_int(body: dict[str, Any], key: str) -> int | None:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise wf.WorkflowError(f"参数 {key} 必须是整数", "invalid")
    if not -MAX_INT <= v <= MAX_INT:  # beyond the database's integers: never a real id
        raise wf.WorkflowError(f"参数 {key} 超出范围", "invalid")
    return v


def _is_id(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_INT


def _req_int(body: dict[str, Any], key: str) -> int:
    v = _opt_int(body, key)
    if v is None:
        raise wf.WorkflowError(f"缺少参数 {key}", "invalid")
    return v


def routes(key: web.AppKey[Any]) -> list[web.RouteDef]:
    """The routes, reading the desk's state from app[key]."""

    def step(fn: Callable[[asyncpg.Connection, DeskState, wf.Actor, web.Request,
                           datetime], Awaitable[Any]]) -> Handler:
        # Every workflow step: who is acting (from the database, not the request), the
        # clock read once, the transaction inside casework, errors as plain JSON.
        async def handler(request: web.Request) -> web.StreamResponse:
            state: DeskState = request.app[key]
            now = datetime.now(UTC)
            async with state.pool.acquire() as conn:
                try:
                    actor = await wf.actor_for(conn, request["session"].agent_id)
                    result = await fn(conn, state, actor, request, now)
                except wf.WorkflowError as e:
                    return _error(STATUS_FOR.get(e.code, 409), str(e))
            if isinstance(result, web.StreamResponse):
                return result
            return web.json_response({"ok": True, **(result or {})})
        return handler

    # -- reading ------------------------------------------------------------------------

    async def list_(conn: asyncpg.Connection, s: DeskState, actor: wf.Actor,
                    r: web.Request, now: datetime) -> dict[str, Any]:
        try:
            limit = int(r.query.get("limit", "100"))
            offset = int(r.query.get("offset", "0"))
        except ValueError:
            raise wf.WorkflowError("分页参数不正确", "invalid") from None
        return {"cases": await views.list_cases(conn, actor, now, which=r.match_info["which"],
                                                query=r.query.get("q", ""), limit=limit,
                                                offset=offset)}

    async def detail(conn: asyncpg.Connection, s: DeskState, actor: wf.Actor,
                     r: web.Request, now: datetime) -> dict[str, Any]:
        return {"case": await views.case_detail(conn, s.keyring, actor, _int(r, "case_id"),
                                                now)}

    async def earlier(conn: asyncpg.Connection, s: DeskState, actor: wf.Actor,
                      r: web.Request, now: datetime) -> dict[str, Any]:
        return {"cases": await views.earlier_cases(conn, s.keyring, actor,
                                                   _int(r, "case_id"), now)}

    async def reveal(conn: asyncpg.Connection, s: DeskState, actor: wf.Actor,
                     r: web.Request, now: datetime) -> dict[str, Any]:
        b = await _body(r)
        value = await views.reveal(conn, s.keyring, actor, _int(r, "case_id"),
                                   str(b.get("field", "")), b.get("reason", ""), now)
        return {"value": value}

    async def criticism(conn: asyncpg.Connection, s: DeskState, actor: wf.Actor,
                        r: web.Request, now: datetime) -> dict[str, Any]:
        if actor.role not in (*wf.HOTLINE_ROLES, "supervision"):
            raise wf.WorkflowError("您的角色无权查看", "forbidden")
        rows = await urging.criticism_list(conn, now, s.cfg.casework.criticism_urgings)
        return {"cases": [{"case_id": c.case_id, "case_no": c.case_no, "title": c.title,
                           "unit": c.unit, "due_at": c.due_at.isoformat(),
                           "urgings": c.urgings} for c in rows]}

    async def units(conn: asyncpg.Connection, s: DeskState, actor: wf.Actor,
                    r: web.Request, now: datetime) -> dict[str, Any]:
        rows = await conn.fetch("SELECT id, code, name, parent_id, level, duty_phone, leader, "
                                "department, contact_person FROM units WHERE active "
                                "ORDER BY level, code")
        return {"units": [dict(u) for u in rows]}

    async def knowledge(conn: asyncpg.Connection, s: DeskState, actor: wf.Actor,
                        r: web.Request, now: datetime) -> dict[str, Any]:
        if actor.role not in (*wf.HOTLINE_ROLES, "supervision", "handler"):
            raise wf.WorkflowError("您的角色无权查看知识库", "forbidden")
        q = wf.text_field(r.query.get("q", ""), "查询内容", 100, required=False)
        hits = await kb.search(conn, q, limit=10) if q else []
        return {"entries": [_plain(h) for h in hits]}

    # -- intake -------------------------------------------------------------------------

    async def register(conn: asyncpg.Connection, s: DeskState, actor: wf.Actor,
                       r: web.Request, now: datetime) -> dict[str, Any]:
        b = await _body(r)
        validity = b.get("validity")
        if not isinstance(validity, dict):
            raise wf.WorkflowError("请勾选受理条件", "invalid")
        case_id = _int(r, "case_id")
        # One transaction: a registered case always has its verification code.
        async with conn.transaction():
            await wf.register(conn, case_id, actor, now, title=b.get("title", ""),
                              category=str(b.get("category", "")), validity=validity)
            # Read to the caller now: with the case number it lets them hear its progress.
            code = await progress.issue_code(conn, case_id)
        return {"verify_code": code}

    async def invalid(conn: asyncpg.Connection, s: DeskState, actor: wf.Actor,
                      r: web.Request, now: datetime) -> None:
        b = await _body(r)
        await wf.mark_invalid(conn, _int(r, "case_id"), actor, now, b.get("reason", ""))

    async def answer(conn: asyncpg.Connection, s: DeskState, actor: wf.Actor,
                     r: web.Request, now: datetime) -> None:
        b = await _body(r)
        await wf.close_at_intake(conn, _int(r, "case_id"), actor, now,
                                 title=b.get("title", ""), category=str(b.get("category", "")),
                                 answer=b.get("answer", ""),
                                 knowledge_id=_opt_int(b, "knowledge_id"))

    async def merge(conn: asyncpg.Connection, s: DeskState, actor: wf.Actor,
                    r: web.Request, now: datetime) -> None:
        b = await _body(r)
        await wf.merge(conn, _int(r, "case_id"), _req_int(b, "into"), actor, now)

    # -- assignment and the unit's side -------------------------------------------------

    async def assign(conn: asyncpg.Connection, s: DeskState, actor: wf.Actor,
                     r: web.Request, now: datetime) -> dict[str, Any]:
        b = await _body(r)
        co = b.get("co_units") or []
        if not isinstance(co, list) or not all(_is_id(u) for u in co) or len(co) > 20:
            raise wf.WorkflowError("协办单位必须是单位编号列表", "invalid")
        due = await wf.assign(conn, _int(r, "case_id"), actor, now, await calendar.load(conn),
                              _rules(s), lead_unit=_req_int(b, "lead_unit"), co_units=co,
                              mode=str(b.get("mode", "written")), note=b.get("note", ""))
        return {"due_at": due.isoformat() if due else None}

    async def accept(conn: asyncpg.Connection, s: DeskState, actor: wf.Actor,
                     r: web.Request, now: datetime) -> None:
        await wf.accept(conn, _int(r, "assignment_id"), actor, now)

    async def return_(conn: asyncpg.Connection, s: DeskState, actor: wf.Actor,
                      r: web.Request, now: datetime) -> None:
        b = await _body(r)
        await wf.return_case(conn, _int(r, "assignment_id"), actor, now, b.get("reason", ""))

    async def extension(conn: asyncpg.Connection, s: DeskState, actor: wf.Actor,
                        r: web.Request, now: datetime) -> dict[str, Any]:
        b = await _body(r)
        ext = await wf.request_extension(conn, _int(r, "assignment_id"), actor, now,
                                         _rules(s), reason=b.get("reason", ""),
                                         days=_req_int(b, "days"))
        return {"extension_id": ext}

    async def decide(conn: asyncpg.Connection, s: DeskState, actor: wf.Actor,
                     r: web.Request, now: datetime) -> dict[str, Any]:
        b = await _body(r)
        due = await wf.decide_extension(conn, _int(r, "extension_id"), actor, now,
                                        await calendar.load(conn), approve=_bool(b, "approve"),
                                        note=b.get("note", ""))
        return {"due_at": due.isoformat() if due else None}

    async def result(conn: asyncpg.Connection, s: DeskState, actor: wf.Actor,
                     r: web.Request, now: datetime) -> None:
        b = await _body(r)
        await wf.report_result(conn, _int(r, "assignment_id"), actor, now,
                               result=b.get("result", ""), reply=b.get("reply", ""),
                               replied=_bool(b, "replied"))

    # -- follow-up ----------------------------------------------------------------------

    async def review(conn: asyncpg.Connection, s: DeskState, actor: wf.Actor,
                     r: web.Request, now: datetime) -> None:
        b = await _body(r)
        await wf.review(conn, _int(r, "case_id"), actor, now, await calendar.load(conn),
                        _rules(s), approve=_bool(b, "approve"), note=b.get("note", ""),
                        public_summary=b.get("public_summary", ""))

    async def revisit(conn: asyncpg.Connection, s: DeskState, actor: wf.Actor,
                      r: web.Request, now: datetime) -> None:
        b = await _body(r)
        await wf.revisit(conn, _int(r, "case_id"), actor, now, await calendar.load(conn),
                         _rules(s), outcome=str(b.get("outcome", "")), note=b.get("note", ""))

    async def close_unreached(conn: asyncpg.Connection, s: DeskState, actor: wf.Actor,
                              r: web.Request, now: datetime) -> None:
        await wf.close_unreached(conn, _int(r, "case_id"), actor, now)

    async def urge(conn: asyncpg.Connection, s: DeskState, actor: wf.Actor,
                   r: web.Request, now: datetime) -> dict[str, Any]:
        b = await _body(r)
        return {"urge_count": await wf.urge(conn, _int(r, "case_id"), actor, now,
                                            note=b.get("note", ""))}

    async def archive(conn: asyncpg.Connection, s: DeskState, actor: wf.Actor,
                      r: web.Request, now: datetime) -> None:
        await wf.archive(conn, _int(r, "case_id"), actor, now)

    async def note(conn: asyncpg.Connection, s: DeskState, actor: wf.Actor,
                   r: web.Request, now: datetime) -> None:
        b = await _body(r)
        await wf.add_note(conn, _int(r, "case_id"), actor, now, b.get("note", ""))

    # -- special reports ----------------------------------------------------------------

    async def report_list(conn: asyncpg.Connection, s: DeskState, actor: wf.Actor,
                          r: web.Request, now: datetime) -> dict[str, Any]:
        wf.require(actor, *wf.HOTLINE_ROLES, "supervision")
        return {"reports": await reports.listing(conn)}

    async def report_draft(conn: asyncpg.Connection, s: DeskState, actor: wf.Actor,
                           r: web.Request, now: datetime) -> dict[str, Any]:
        b = await _body(r)
        ids = b.get("case_ids")
        if not isinstance(ids, list) or not all(_is_id(i) for i in ids):
            raise wf.WorkflowError("case_ids 必须是工单编号列表", "invalid")
        rid = await reports.draft(conn, ids, actor, now, recipient=str(b.get("recipient", "")),
                                  title=b.get("title", ""))
        return {"report_id": rid}

    async def report_edit(conn: asyncpg.Connection, s: DeskState, actor: wf.Actor,
                          r: web.Request, now: datetime) -> None:
        b = await _body(r)
        await reports.edit(conn, _int(r, "report_id"), actor, title=b.get("title", ""),
                           body=b.get("body", ""))

    async def report_send(conn: asyncpg.Connection, s: DeskState, actor: wf.Actor,
                          r: web.Request, now: datetime) -> None:
        await reports.send(conn, _int(r, "report_id"), actor, now)

    async def alert(conn: asyncpg.Connection, s: DeskState, actor: wf.Actor,
                    r: web.Request, now: datetime) -> dict[str, Any]:
        b = await _body(r)
        rid = await reports.alert_emergency(conn, _int(r, "case_id"), actor, now,
                                            title=b.get("title", ""))
        return {"report_id": rid}

    # -- the printable form -------------------------------------------------------------

    async def form(conn: asyncpg.Connection, s: DeskState, actor: wf.Actor,
                   r: web.Request, now: datetime) -> web.Response:
        case = await views.case_detail(conn, s.keyring, actor, _int(r, "case_id"), now)
        return web.Response(text=assignment_form(case, s.cfg.name),
                            content_type="text/html", charset="utf-8")

    # -- a voice message, decrypted for someone allowed to hear it -------------------------

    async def recording(conn: asyncpg.Connection, s: DeskState, actor: wf.Actor,
                        r: web.Request, now: datetime) -> web.Response:
        case_id, rec_id = _int(r, "case_id"), _int(r, "recording_id")
        # The caller's voice is personal data: the same rule as showing a field in full.
        await views.check_personal_access(conn, actor, case_id)
        if not await conn.fetchval("SELECT 1 FROM case_recordings WHERE id = $1 "
                                   "AND case_id = $2", rec_id, case_id):
            raise wf.WorkflowError("没有这段录音", "not_found")
        try:
            audio = await recordings.read_audio(conn, s.keyring, rec_id)
        except LookupError:
            raise wf.WorkflowError("录音文件已不存在", "not_found") from None
        except CryptoError:
            return _error(500, "录音无法解密，请联系管理员")
        await audit.record(conn, case_id, "recording_played", actor.id, now,
                           recording_id=rec_id)
        return web.Response(body=audio, content_type="audio/wav",
                            headers={"Cache-Control": "no-store"})

    c, a = "/api/casework/cases/{case_id}", "/api/casework/assignments/{assignment_id}"
    return [
        web.get("/api/casework/lists/{which}", step(list_)),
        web.get(c, step(detail)),
        web.get(c + "/earlier", step(earlier)),
        web.get(c + "/form", step(form)),
        web.get(c + "/recordings/{recording_id}", step(recording)),
        web.post(c + "/reveal", step(reveal)),
        web.post(c + "/register", step(register)),
        web.post(c + "/invalid", step(invalid)),
        web.post(c + "/answer", step(answer)),
        web.post(c + "/merge", step(merge)),
        web.post(c + "/assign", step(assign)),
        web.post(a + "/accept", step(accept)),
        web.post(a + "/return", step(return_)),
        web.post(a + "/extension", step(extension)),
        web.post(a + "/result", step(result)),
        web.post("/api/casework/extensions/{extension_id}/decide", step(decide)),
        web.post(c + "/review", step(review)),
        web.post(c + "/revisit", step(revisit)),
        web.post(c + "/close_unreached", step(close_unreached)),
        web.post(c + "/urge", step(urge)),
        web.post(c + "/archive", step(archive)),
        web.post(c + "/note", step(note)),
        web.post(c + "/alert", step(alert)),
        web.get("/api/casework/criticism", step(criticism)),
        web.get("/api/casework/units", step(units)),
        web.get("/api/casework/knowledge", step(knowledge)),
        web.get("/api/casework/reports", step(report_list)),
        web.post("/api/casework/reports", step(report_draft)),
        web.put("/api/casework/reports/{report_id}", step(report_edit)),
        web.post("/api/casework/reports/{report_id}/send", step(report_send)),
    ]


def _plain(value: Any) -> Any:
    """A dataclass or record as JSON-ready values."""
    if hasattr(value, "__dataclass_fields__"):
        value = {k: getattr(value, k) for k in value.__dataclass_fields__}
    elif not isinstance(value, dict):
        value = dict(value)
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in value.items()}


def assignment_form(case: dict[str, Any], hotline_name: str) -> str:
    """The acceptance and assignment form (受理交办单) as a printable A4 page. Personal
    fields stay masked: the unit asks for them through the desk, with a reason. Its style
    and print button are static/assignment-form.css and .js (the desk's CSP runs no inline
    style or script)."""
    e = html.escape
    lead = next((x for x in case["assignments"] if x["current"] and x["role"] == "lead"), None)
    co = [x["unit"] for x in case["assignments"] if x["current"] and x["role"] == "co"]

    def day(v: str | None) -> str:
        if not v:
            return "—"
        local = datetime.fromisoformat(v).astimezone(calendar.TZ)
        return f"{local:%Y年%m月%d日 %H:%M}"

    due = "随时报告（紧急事项）" if case["mode"] == "urgent" else day(case["due_at"])
    rows = [
        ("工单编号", case["case_no"]), ("受理时间", day(case["received_at"])),
        ("来电号码", case["personal"]["caller_number"] or "—"),
        ("事项分类", case["category_name"] or "—"), ("事项标题", case["title"]),
        ("交办方式", case["mode_words"] or "—"),
        ("主办单位", lead["unit"] if lead else "—"), ("协办单位", "、".join(co) or "—"),
        ("办理时限", due), ("交办意见", lead["note"] if lead else ""),
    ]
    body = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in rows)
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>受理交办单 {e(case['case_no'])}</title>
<link rel="stylesheet" href="/static/assignment-form.css">
<script src="/static/assignment-form.js" defer></script>
</head><body>
<h1>{e(hotline_name)}受理交办单</h1>
<table>{body}
<tr><th>反映内容</th><td class="content">{e(case['content'])}</td></tr>
<tr><th>办理要求</th><td>请于办理时限内将办理结果书面（电话交办可电话）反馈市长热线，
并直接答复来电人；不能按期办结的，须在期限届满前说明原因并申请延期；
不属于本单位职责的，请于 2 个工作日内说明理由退回。</td></tr>
</table>
<div class="sign"><span>交办人：________</span><span>签收人：________</span>
<span>签收时间：____年__月__日</span></div>
<p class="noprint"><button id="print" type="button">打印</button></p>
</body></html>"""
