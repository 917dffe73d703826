"""What each role sees of the cases.

The hotline (duty agents, supervisors) and the supervision office see every case; a
unit's handler sees only the cases assigned to their unit, and of those only their own
unit's assignments; the admin sees none. Personal fields are masked everywhere; seeing
one in full is an explicit act with a reason, written to the case's audit trail.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from casework import audit
from casework.workflow import (
    HOTLINE_ROLES,
    MODES,
    STATUS_WORDS,
    VALIDITY_CRITERIA,
    Actor,
    WorkflowError,
    text_field,
)
from db import cases as case_store
from db.crypto import Keyring

CASE_READERS = (*HOTLINE_ROLES, "supervision", "handler")
# A unit that returned a case, or whose assignment was withdrawn when it was reassigned,
# no longer sees it (least privilege: the case and its caller are not theirs).
_GONE = "('returned', 'withdrawn')"
# Who may see a personal field in full (with a reason): the hotline, and the handler of
# a unit the case is assigned to now (units reply to the caller themselves).
REVEALERS = (*HOTLINE_ROLES, "handler")
# Reveals of one person: at most REVEALS_PER_HOUR an hour (a call-taker or handler needs a
# few a day; more is harvesting), and the REVEAL_BURST-th within REVEAL_BURST_WINDOW is
# written down as a burst, which the auditor's listing shows.
REVEALS_PER_HOUR = 60
REVEAL_BURST = 20
REVEAL_BURST_WINDOW = timedelta(minutes=10)
LISTS = {
    # name -> (statuses, extra condition): the work queues of the desk's case pages.
    "pending": (("pending", "returned"), ""),
    "in_progress": (("assigned", "accepted"), ""),
    "overdue": (("assigned", "accepted"), "c.due_at < $NOW"),
    "to_review": (("reported",), ""),
    "to_revisit": (("reviewed",), ""),
    "closed": (("closed", "archived"), ""),
    "urged": (("assigned", "accepted", "returned"), "c.urge_count >= 2"),
    "multi_unit": (("assigned", "accepted", "reported"),
                   "(SELECT count(*) FROM assignments x WHERE x.case_id = c.id "
                   "AND x.round = c.round AND x.status <> 'withdrawn') > 1"),
    "all": ((), ""),
}


def _iso(v: datetime | None) -> str | None:
    return v.isoformat() if v else None


def _row(r: asyncpg.Record, now: datetime) -> dict[str, Any]:
    return {
        "id": r["id"], "case_no": r["case_no"], "title": r["title"],
        "category": r["category"], "category_name": r["category_name"],
        "status": r["status"], "status_words": STATUS_WORDS.get(r["status"], r["status"]),
        "dialled_number": r["dialled_number"], "service": r["service"],
        "lead_unit": r["lead_unit"], "mode": r["mode"],
        "received_at": _iso(r["received_at"] or r["created_at"]),
        "due_at": _iso(r["due_at"]),
        "overdue": bool(r["due_at"] and r["status"] in ("assigned", "accepted")
                        and r["due_at"] < now),
        "urge_count": r["urge_count"], "rehandle_count": r["rehandle_count"],
        "return_count": r["return_count"], "major": r["major"],
        "updated_at": _iso(r["updated_at"]),
    }


_SELECT = """SELECT c.*, k.name AS category_name, u.name AS lead_unit
             FROM cases c LEFT JOIN categories k ON k.code = c.category
             LEFT JOIN units u ON u.id = c.lead_unit_id"""


async def list_cases(conn: asyncpg.Connection, actor: Actor, now: datetime, *,
                     which: str = "all", query: str = "", limit: int = 100,
                     offset: int = 0) -> list[dict[str, Any]]:
    """One of the work lists (LISTS), newest activity first, without personal data.
    `query` matches the case number or title."""
    if actor.role not in CASE_READERS:
        raise WorkflowError("您的角色无权查看工单", "forbidden")
    if which not in LISTS:
        raise WorkflowError("没有这个工单列表", "invalid")
    if not 1 <= limit <= 500 or offset < 0:
        raise WorkflowError("分页参数不正确", "invalid")
    statuses, extra = LISTS[which]
    where = ["c.status <> 'intake'", "c.status <> 'invalid'"]
    args: list[Any] = []
    if statuses:
        args.append(list(statuses))
        where.append(f"c.status = ANY(${len(args)})")
    if "$NOW" in extra:
        args.append(now)
        extra = extra.replace("$NOW", f"${len(args)}")
    if extra:
        where.append(extra)
    if query:
        q = text_field(query, "查询条件", 100, required=False)
        args.append("%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        where.append(f"(c.case_no LIKE ${len(args)} OR c.title LIKE ${len(args)})")
    if actor.role == "handler":
        args.append(actor.unit_id)
        where.append(f"EXISTS (SELECT 1 FROM assignments s WHERE s.case_id = c.id "
                     f"AND s.unit_id = ${len(args)} AND s.status NOT IN {_GONE})")
    args += [limit, offset]
    rows = await conn.fetch(
        f"{_SELECT} WHERE {' AND '.join(where)} "
        f"ORDER BY c.updated_at DESC, c.id DESC LIMIT ${len(args) - 1} OFFSET ${len(args)}",
        *args)
    return [_row(r, now) for r in rows]


async def _readable(conn: asyncpg.Connection, actor: Actor, case_id: int) -> asyncpg.Record:
    if actor.role not in CASE_READERS:
        raise WorkflowError("您的角色无权查看工单", "forbidden")
    row = await conn.fetchrow(f"{_SELECT} WHERE c.id = $1", case_id)
    if row is None or (actor.role == "handler" and not await conn.fetchval(
            f"SELECT 1 FROM assignments WHERE case_id = $1 AND unit_id = $2 "
            f"AND status NOT IN {_GONE}",
            case_id, actor.unit_id)):
        # Another unit's case does not exist as far as this handler can tell.
        raise WorkflowError("工单不存在", "not_found")
    return row


async def case_detail(conn: asyncpg.Connection, keyring: Keyring, actor: Actor, case_id: int,
                      now: datetime) -> dict[str, Any]:
    """A case as this user may see it: its content, assignments (a handler: their unit's
    only), extensions, urgings, revisits, merged children, audit trail; personal fields
    masked."""
    row = await _readable(conn, actor, case_id)
    out = _row(row, now)
    out.update({
        "content": row["content"], "answer": row["answer"], "result": row["result"],
        "public_summary": row["public_summary"], "invalid_reason": row["invalid_reason"],
        "satisfaction": row["satisfaction"], "replied": row["replied"],
        "parent_case_id": row["parent_case_id"], "round": row["round"],
        "closed_at": _iso(row["closed_at"]), "reported_at": _iso(row["reported_at"]),
        "mode_words": MODES.get(row["mode"] or "", ""),
        "validity": {k: {"label": v, "checked": bool(_validity(row).get(k))}
                     for k, v in VALIDITY_CRITERIA.items()},
    })
    case = await case_store.get(conn, keyring, case_id)
    assert case is not None
    out["personal"] = {f: _mask(f, case[f]) for f in case_store.PERSONAL_FIELDS}
    unit_filter = "AND a.unit_id = $2" if actor.role == "handler" else "AND $2::int IS NULL"
    unit_arg = actor.unit_id if actor.role == "handler" else None
    out["assignments"] = [
        {"id": a["id"], "unit_id": a["unit_id"], "unit": a["unit"], "role": a["role"],
         "mode": a["mode"], "round": a["round"], "status": a["status"], "note": a["note"],
         "assigned_at": _iso(a["assigned_at"]), "due_at": _iso(a["due_at"]),
         "accepted_at": _iso(a["accepted_at"]), "return_reason": a["return_reason"],
         "returned_at": _iso(a["returned_at"]), "result": a["result"], "reply": a["reply"],
         "reported_at": _iso(a["reported_at"]), "current": a["round"] == row["round"]}
        for a in await conn.fetch(
            f"""SELECT a.*, u.name AS unit FROM assignments a JOIN units u ON u.id = a.unit_id
                WHERE a.case_id = $1 {unit_filter} ORDER BY a.round, a.role DESC, a.id""",
            case_id, unit_arg)
    ]
    out["extensions"] = [
        {"id": e["id"], "assignment_id": e["assignment_id"], "reason": e["reason"],
         "days": e["days"], "status": e["status"], "asked_at": _iso(e["asked_at"]),
         "new_due_at": _iso(e["new_due_at"])}
        for e in await conn.fetch(
            f"""SELECT e.* FROM extensions e JOIN assignments a ON a.id = e.assignment_id
                WHERE e.case_id = $1 {unit_filter} ORDER BY e.id""", case_id, unit_arg)
    ]
    out["urgings"] = [
        {"at": _iso(u["at"]), "kind": u["kind"], "unit": u["unit"], "note": u["note"]}
        for u in await conn.fetch(
            """SELECT g.*, u.name AS unit FROM urgings g JOIN units u ON u.id = g.unit_id
               WHERE g.case_id = $1 ORDER BY g.id""", case_id)
        if actor.role != "handler" or u["unit_id"] == actor.unit_id
    ]
    if actor.role != "handler":
        out["revisits"] = [
            {"at": _iso(v["at"]), "round": v["round"], "outcome": v["outcome"],
             "note": v["note"]}
            for v in await conn.fetch("SELECT * FROM revisits WHERE case_id = $1 ORDER BY id",
                                      case_id)]
        out["children"] = [
            {"id": c["id"], "case_no": c["case_no"], "title": c["title"]}
            for c in await conn.fetch("SELECT id, case_no, title FROM cases "
                                      "WHERE parent_case_id = $1 ORDER BY id", case_id)]
        out["trail"] = await audit.trail(conn, case_id)
    return out


def _validity(row: asyncpg.Record) -> dict[str, Any]:
    v = row["validity"]
    return json.loads(v) if isinstance(v, str) else dict(v or {})


def _mask(field: str, value: str | None) -> str | None:
    if not value:
        return None
    if field in case_store.PHONE_FIELDS:
        return case_store.mask_phone(value)
    return value[0] + "*" * min(len(value) - 1, 8) if len(value) > 1 else "*"


async def check_personal_access(conn: asyncpg.Connection, actor: Actor, case_id: int) -> None:
    """Raise WorkflowError unless this user may see the case's personal data in full (a
    field, or a voice message): the hotline, or a handler of a unit it is assigned to now."""
    if actor.role not in REVEALERS:
        raise WorkflowError("您的角色无权查看个人信息", "forbidden")
    await _readable(conn, actor, case_id)
    if actor.role == "handler" and not await conn.fetchval(
            """SELECT 1 FROM assignments a JOIN cases c ON c.id = a.case_id
               WHERE a.case_id = $1 AND a.unit_id = $2 AND a.round = c.round
                 AND a.status IN ('assigned', 'accepted', 'reported')""",
            case_id, actor.unit_id):
        raise WorkflowError("只有正在承办此工单的单位可以查看来电人信息", "forbidden")


async def reveal(conn: asyncpg.Connection, keyring: Keyring, actor: Actor, case_id: int,
                 field: str, reason: str, now: datetime) -> str | None:
    """One personal field in full, for someone allowed, with the reason recorded."""
    if field not in case_store.PERSONAL_FIELDS:
        raise WorkflowError("没有这个个人信息字段", "invalid")
    reason = text_field(reason, "查看原因", 200)
    await check_personal_access(conn, actor, case_id)
    async with conn.transaction():
        # One person's reveals are counted under a lock of their own, so two at once both count.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('reveal', $1))",
                           actor.id)
        hour, burst = await conn.fetchrow(
            """SELECT count(*) FILTER (WHERE at > $2), count(*) FILTER (WHERE at > $3)
               FROM case_events WHERE actor_id = $1 AND action = 'personal_revealed'""",
            actor.id, now - timedelta(hours=1), now - REVEAL_BURST_WINDOW)
        if hour >= REVEALS_PER_HOUR:
            raise WorkflowError(f"一小时内查看个人信息已达 {REVEALS_PER_HOUR} 次，请稍后再试；"
                                "确有需要请联系审计员", "rate_limited")
        case = await case_store.get(conn, keyring, case_id)
        assert case is not None
        await audit.record(conn, case_id, "personal_revealed", actor.id, now, field=field,
                           reason=reason)
        if burst + 1 == REVEAL_BURST:
            await audit.record(conn, case_id, "reveal_burst", actor.id, now,
                               count=REVEAL_BURST, minutes=int(REVEAL_BURST_WINDOW.seconds / 60))
    value: str | None = case[field]
    return value


async def earlier_cases(conn: asyncpg.Connection, keyring: Keyring, actor: Actor,
                        case_id: int, now: datetime) -> list[dict[str, Any]]:
    """The caller's other cases (found through the blind index of their numbers), for the
    intake form: to see what they asked before, and to merge a repeat request."""
    if actor.role not in HOTLINE_ROLES:
        raise WorkflowError("您的角色无权查看来电人的历史工单", "forbidden")
    case = await case_store.get(conn, keyring, case_id)
    if case is None:
        raise WorkflowError("工单不存在", "not_found")
    seen: dict[int, dict[str, Any]] = {}
    for number in (case["caller_number"], case["callback_number"]):
        if not number:
            continue
        for r in await case_store.find_by_phone(conn, keyring, number, exclude=case_id):
            if r["status"] in ("intake", "invalid"):
                continue
            full = await conn.fetchrow(f"{_SELECT} WHERE c.id = $1", r["id"])
            seen[r["id"]] = _row(full, now)
    return sorted(seen.values(), key=lambda c: c["received_at"] or "", reverse=True)
