"""The auditor's view of personal-data access (审计): who saw which personal field in full,
who heard which voice message, which lookups by phone heard a case's progress, and what
retention erased, with the time, the actor's login and role, the case number, the field
and the reason given.

Only the auditor reads it, and it carries no personal data: the name of a field, never
its value; no case content. The log is the case audit trail (case_events), which no route
changes and a database trigger keeps append-only.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from casework.calendar import TZ

STATIC = Path(__file__).parent / "static"
AUDITORS = ("auditor",)
ACTIONS = {
    "personal_revealed": "查看个人信息",
    "recording_played": "收听录音",
    "personal_erased": "到期删除个人信息",
    "progress_heard": "电话查询办理进度",
    "reveal_burst": "短时间内大量查看个人信息（需核查）",
}
FIELD_WORDS = {"caller_number": "来电号码", "callback_number": "回电号码", "name": "姓名",
               "address": "地址", "work_unit": "工作单位"}
ROLE_WORDS = {"agent": "坐席", "supervisor": "值班长", "supervision": "督查室",
              "handler": "承办人", "admin": "系统管理员", "auditor": "审计员"}
MAX_PAGE = 1000
MAX_CSV = 50000  # rows in one download: a year of a busy hotline's reveals

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AuditQueryError(ValueError):
    """A filter of the listing that cannot be understood (plain-words Chinese message)."""


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def parse_moment(text: str, *, end: bool) -> datetime | None:
    """A filter bound: a day (YYYY-MM-DD, Beijing time; an end day counts in full) or an
    ISO 8601 time with its offset. Empty: no bound."""
    text = text.strip()
    if not text:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day + timedelta(days=1 if end else 0), time(0),
                                      tzinfo=TZ)
        else:
            moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise AuditQueryError(f"时间“{text[:40]}”看不懂，请写成 2025-03-01 这样的日期") from None
    # Far years overflow on the way to UTC and are no audit period anyway.
    if not 1900 <= moment.year <= 2200:
        raise AuditQueryError("时间须在 1900 年到 2200 年之间")
    return moment if moment.tzinfo else moment.replace(tzinfo=TZ)


async def access_log(conn: asyncpg.Connection, *, start: datetime | None = None,
                     end: datetime | None = None, actor: str = "", case_no: str = "",
                     limit: int = 200, offset: int = 0) -> list[dict[str, Any]]:
    """The personal-data access entries in [start, end), newest first, optionally of one
    actor (login) or one case (number): no value of any personal field, no case content."""
    rows = await conn.fetch(
        """SELECT e.id, e.at, e.action, e.detail, a.login, a.display_name, a.role,
                  c.case_no
           FROM case_events e
           JOIN cases c ON c.id = e.case_id
           LEFT JOIN agents a ON a.id = e.actor_id
           WHERE e.action = ANY($1::text[])
             AND ($2::timestamptz IS NULL OR e.at >= $2)
             AND ($3::timestamptz IS NULL OR e.at < $3)
             AND ($4 = '' OR a.login = $4)
             AND ($5 = '' OR c.case_no = $5)
           ORDER BY e.at DESC, e.id DESC
           LIMIT $6 OFFSET $7""",
        list(ACTIONS), start, end, actor, case_no, limit, offset)
    out = []
    for r in rows:
        detail = json.loads(r["detail"]) if isinstance(r["detail"], str) else r["detail"]
        field = str(detail.get("field") or "")
        counts = ""
        if r["action"] == "personal_erased":
            counts = f"个人信息 {detail.get('fields', 0)} 项，录音 {detail.get('recordings', 0)} 段"
        elif r["action"] == "recording_played":
            counts = f"录音 #{detail.get('recording_id', '')}"
        out.append({
            "id": r["id"], "at": r["at"].isoformat(), "action": r["action"],
            "action_words": ACTIONS[r["action"]],
            "actor": r["login"], "actor_name": r["display_name"], "actor_role": r["role"],
            "actor_role_words": ROLE_WORDS.get(r["role"] or "", r["role"] or ""),
            "case_no": r["case_no"],
            # The field's name only (its value is never in the audit trail).
            "field": field or None, "field_words": FIELD_WORDS.get(field, field) or None,
            "reason": detail.get("reason") if isinstance(detail.get("reason"), str) else None,
            "note": counts or None,
        })
    return out


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # A spreadsheet would run a cell starting like a formula (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def as_csv(entries: list[dict[str, Any]]) -> str:
    """The listing as CSV (UTF-8 with BOM, for spreadsheet programs), in Chinese headings."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["时间", "操作", "操作人账号", "操作人", "角色", "工单编号", "字段", "原因",
                "说明"])
    for e in entries:
        local = datetime.fromisoformat(e["at"]).astimezone(TZ)
        who = e["actor"] or ("来电人（电话查询）" if e["action"] == "progress_heard"
                             else "系统")
        w.writerow([_cell(v) for v in (
            f"{local:%Y-%m-%d %H:%M:%S}", e["action_words"], who, e["actor_name"],
            e["actor_role_words"], e["case_no"], e["field_words"], e["reason"], e["note"])])
    return "\ufeff" + buf.getvalue()


def _query_int(request: web.Request, name: str, default: int, hi: int) -> int:
    text = request.query.get(name, "")
    if not text:
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= 9) or int(text) > hi:
        raise AuditQueryError(f"参数 {name} 必须是 0 到 {hi} 的整数")
    return int(text)


def routes(key: web.AppKey[Any]) -> list[web.RouteDef]:
    """The auditor's page and listing, reading the desk's state (its pool) from app[key]."""

    async def reveals(request: web.Request) -> web.StreamResponse:
        pool: asyncpg.Pool = request.app[key].pool
        async with pool.acquire() as conn:
            # The role from the database, not the session: a role changed takes effect now.
            role = await conn.fetchval("SELECT role FROM agents WHERE id = $1",
                                       request["session"].agent_id)
            if role not in AUDITORS:
                return _error(403, "仅审计员可以查看个人信息访问记录")
            q = request.query
            try:
                start = parse_moment(q.get("from", ""), end=False)
                end = parse_moment(q.get("to", ""), end=True)
                actor, case_no = q.get("actor", "").strip(), q.get("case_no", "").strip()
                if len(actor) > 64 or len(case_no) > 32:
                    raise AuditQueryError("账号或工单编号过长")
                csv_wanted = q.get("format", "") == "csv"
                if q.get("format", "") not in ("", "json", "csv"):
                    raise AuditQueryError("format 只能是 json 或 csv")
                limit = MAX_CSV if csv_wanted else _query_int(request, "limit", 200, MAX_PAGE)
                offset = 0 if csv_wanted else _query_int(request, "offset", 0, 10**8)
                if limit == 0:
                    raise AuditQueryError(f"参数 limit 必须是 1 到 {MAX_PAGE} 的整数")
            except AuditQueryError as e:
                return _error(400, str(e))
            entries = await access_log(conn, start=start, end=end, actor=actor,
                                       case_no=case_no, limit=limit, offset=offset)
        if csv_wanted:
            return web.Response(
                text=as_csv(entries), content_type="text/csv", charset="utf-8",
                headers={"Content-Disposition": 'attachment; filename="audit-reveals.csv"',
                         "Cache-Control": "no-store"})
        return web.json_response({"ok": True, "entries": entries,
                                  "more": len(entries) == limit},
                                 headers={"Cache-Control": "no-store"})

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "audit.html")

    return [web.get("/audit", page), web.get("/api/audit/reveals", reveals)]
