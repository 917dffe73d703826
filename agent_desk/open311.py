"""A public, read-only Open311 GeoReport v2 API (JSON only) over the hotline's cases.

- GET /open311/v2/services.json: the category tree as services.
- GET /open311/v2/requests.json: cases, newest first, at most 1000; filters
  service_request_id (comma list; the others are then ignored, as the spec says),
  service_code (comma list), status (open, closed; comma list), start_date / end_date
  (W3C datetimes on the requested time, at most 90 days apart; the last 90 days when
  neither is given).
- GET /open311/v2/requests/{id}.json: one case (a list of one, as the spec says).

Only cases past intake that are neither invalid nor merged are shown, and only
publishable fields: no personal data (case_personal is never read), never the agent's
free text (cases.content); address, lat and long are always null. Errors are Open311's
format, [{"code": 400, "description": "..."}], in plain words.
"""

from __future__ import annotations

import functools
import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from aiohttp import web

from casework.stats import CATEGORY_TREE_SQL

TZ = ZoneInfo("Asia/Shanghai")
MAX_ROWS = 1000
MAX_DAYS = 90
MAX_IDS = 200
_ID = re.compile(r"[0-9A-Za-z_-]{1,40}")
_CLOSED = ("closed", "archived")
STATUS_NOTES = {
    "pending": "已受理，待交办",
    "assigned": "已交办承办单位",
    "accepted": "承办单位已签收，正在办理",
    "returned": "承办单位申请退回，热线正在重新交办",
    "reported": "承办单位已反馈办理结果，热线审核中",
    "reviewed": "办理结果已审核，正在回访",
    "closed": "已办结",
    "archived": "已办结归档",
}
SERVICE_NOTICE = {
    "written": "书面交办，承办单位须在7个工作日内书面反馈办理结果",
    "phone": "电话交办，承办单位须在3个工作日内反馈办理结果",
    "urgent": "紧急事项，承办单位随时报告办理进展",
}

_dumps = functools.partial(json.dumps, ensure_ascii=False)

_REQUEST_SQL = """
SELECT c.case_no, c.status, c.category, c.title, c.public_summary, c.mode,
       coalesce(c.received_at, c.created_at) AS requested,
       greatest(c.updated_at, c.received_at, c.reported_at, c.closed_at,
                c.archived_at) AS updated,
       coalesce(c.due_at, (SELECT a.due_at FROM assignments a
                           WHERE a.case_id = c.id AND a.role = 'lead'
                             AND a.status NOT IN ('withdrawn', 'returned')
                           ORDER BY a.round DESC, a.assigned_at DESC, a.id DESC LIMIT 1))
           AS expected,
       k.name AS service_name, u.name AS agency
FROM cases c
LEFT JOIN categories k ON k.code = c.category
LEFT JOIN units u ON u.id = c.lead_unit_id
WHERE c.status NOT IN ('intake', 'invalid', 'merged')
"""


class Open311Error(Exception):
    """A request the API cannot answer; becomes Open311's error list."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def _json(data: Any, status: int = 200) -> web.Response:
    resp = web.json_response(data, status=status, dumps=_dumps)
    # A public, cookie-less read API: any web page may read it.
    resp.headers["Access-Control-Allow-Origin"] = "*"
    return resp


def _error(code: int, description: str) -> web.Response:
    return _json([{"code": code, "description": description}], status=code)


def _iso(at: datetime | None) -> str | None:
    return at.astimezone(TZ).isoformat(timespec="seconds") if at else None


def _request(r: asyncpg.Record) -> dict[str, Any]:
    closed = r["status"] in _CLOSED
    return {
        "service_request_id": r["case_no"],
        "status": "closed" if closed else "open",
        "status_notes": STATUS_NOTES.get(r["status"], ""),
        "service_name": r["service_name"],
        "service_code": r["category"],
        "description": r["public_summary"] or r["title"],
        "agency_responsible": r["agency"],
        "service_notice": SERVICE_NOTICE.get(r["mode"] or "", ""),
        "requested_datetime": _iso(r["requested"]),
        "updated_datetime": _iso(r["updated"]),
        "expected_datetime": _iso(r["expected"]),
        # Where the citizen lives or stood is personal data: never published.
        "address": None,
        "address_id": None,
        "zipcode": None,
        "lat": None,
        "long": None,
        "media_url": None,
    }


def parse_datetime(value: str, name: str) -> datetime:
    """A W3C datetime (2026-02-16T08:00:00+08:00, ...Z) or a date; without a time zone it
    is read as Beijing time. Open311Error 400 in plain words otherwise."""
    text = value.strip()
    try:
        if len(text) == 10:
            at = datetime.combine(date.fromisoformat(text), datetime.min.time())
        else:
            at = datetime.fromisoformat(text)
    except ValueError:
        raise Open311Error(400, f"{name} 不是有效的日期时间：'{value[:40]}'，"
                                "请使用 W3C 格式，例如 2026-02-16T08:00:00+08:00") from None
    return at if at.tzinfo else at.replace(tzinfo=TZ)


def _list(value: str, name: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise Open311Error(400, f"{name} 不能为空")
    return items


def _filters(query: Any, now: datetime) -> tuple[str, list[Any]]:
    """The SQL conditions and arguments for a requests.json query."""
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if "service_request_id" in query:
        ids = _list(query["service_request_id"], "service_request_id")
        if len(ids) > MAX_IDS:
            raise Open311Error(400, f"service_request_id 最多可列 {MAX_IDS} 个编号")
        bad = [i for i in ids if not _ID.fullmatch(i)]
        if bad:
            raise Open311Error(400, f"service_request_id 含无效的编号：'{bad[0][:40]}'")
        # The spec: with ids given, every other parameter is ignored.
        return f" AND c.case_no = any({arg(ids)}::text[])", args
    sql = ""
    if "service_code" in query:
        codes = _list(query["service_code"], "service_code")
        sql += f" AND c.category = any({arg(codes)}::text[])"
    if "status" in query:
        statuses = {s.lower() for s in _list(query["status"], "status")}
        if statuses - {"open", "closed"}:
            raise Open311Error(400, "status 只能是 open 或 closed（可用逗号分隔）")
        if statuses == {"open"}:
            sql += " AND c.status NOT IN ('closed', 'archived')"
        elif statuses == {"closed"}:
            sql += " AND c.status IN ('closed', 'archived')"
    start = parse_datetime(query["start_date"], "start_date") if "start_date" in query \
        else None
    end = parse_datetime(query["end_date"], "end_date") if "end_date" in query else None
    span = timedelta(days=MAX_DAYS)
    if start is None and end is None:
        start, end = now - span, now
    elif start is None:
        assert end is not None
        start = end - span
    elif end is None:
        end = start + span
    if start > end:
        raise Open311Error(400, "start_date 不能晚于 end_date")
    if end - start > span:
        raise Open311Error(400, f"start_date 与 end_date 相隔不能超过 {MAX_DAYS} 天")
    sql += (f" AND coalesce(c.received_at, c.created_at) >= {arg(start)}"
            f" AND coalesce(c.received_at, c.created_at) <= {arg(end)}")
    return sql, args


def open311_routes(pool: asyncpg.Pool) -> list[web.RouteDef]:
    """The Open311 GeoReport v2 routes (no login: the data is public) over `pool`."""

    async def services(request: web.Request) -> web.Response:
        async with pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT * FROM ({CATEGORY_TREE_SQL}) x WHERE active ORDER BY ord")
        return _json([{
            "service_code": r["code"],
            "service_name": r["name"],
            "description": r["name"],
            "metadata": False,
            "type": "realtime",
            "keywords": f"GB/T 39666:{r['gbt_code']}" if r["gbt_code"] else "",
            # The tree's top level groups itself; deeper categories group under the parent.
            "group": r["parent_name"] or r["name"],
        } for r in rows])

    async def requests(request: web.Request) -> web.Response:
        try:
            where, args = _filters(request.query, datetime.now(UTC))
        except Open311Error as e:
            return _error(e.code, e.description)
        async with pool.acquire() as conn:
            rows = await conn.fetch(
                f"{_REQUEST_SQL}{where} ORDER BY requested DESC, c.case_no DESC"
                f" LIMIT {MAX_ROWS}", *args)
        return _json([_request(r) for r in rows])

    async def one_request(request: web.Request) -> web.Response:
        case_no = request.match_info["id"]
        if not _ID.fullmatch(case_no):
            return _error(400, "办件编号格式无效")
        async with pool.acquire() as conn:
            row = await conn.fetchrow(f"{_REQUEST_SQL} AND c.case_no = $1", case_no)
        if row is None:
            return _error(404, f"没有编号为 {case_no} 的公开办件")
        return _json([_request(row)])

    async def xml(request: web.Request) -> web.Response:
        return _error(404, "本接口只提供 JSON 格式，请把地址中的 .xml 换成 .json")

    return [
        web.get("/open311/v2/services.json", services),
        web.get("/open311/v2/requests.json", requests),
        web.get(r"/open311/v2/requests/{id:[^{}/.]+}.json", one_request),
        web.get(r"/open311/v2/{path:.+\.xml}", xml),
    ]
