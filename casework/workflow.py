"""The life of a case after the call: the rules of the Mayor's Hotline procedure.

intake -> invalid (not a case) | closed (answered on the call) | pending
pending -> assigned (lead + co-handling units, deadline in working days)
assigned -> accepted (签收) | returned (退单, the hotline reviews and reassigns)
accepted -> reported (the lead unit's result) -> reviewed (the hotline checks it)
reviewed -> closed (satisfied revisit) | assigned again (unsatisfied: 重办, counted)
closed -> archived; any open case can take a merged repeat request (并单) as its child.

Each transition locks the case row, checks who may do it and from which status, writes
the change and one audit entry in the same transaction, and tells the desks (NOTIFY).
Messages of WorkflowError are shown to desk users as they are, so they are in Chinese.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

import asyncpg

from casework import audit
from db import events

# Who works on cases at the hotline itself (as opposed to the units and the admin).
HOTLINE_ROLES = ("agent", "supervisor")
OPEN_STATUSES = ("pending", "assigned", "accepted", "returned", "reported", "reviewed")
VALIDITY_CRITERIA = {
    # The source document's valid-call criteria (受理定位), checked at intake.
    "clear_target": "反映对象明确",
    "objective": "内容客观真实",
    "concise": "表述简明清楚",
    "real_identity": "愿意留下真实姓名、电话、工作单位或住址",
    "truthful": "如实回答受理人员询问",
}
MODES = {"written": "书面交办", "phone": "电话交办", "urgent": "紧急交办"}
STATUS_WORDS = {
    "intake": "受理中", "invalid": "无效来电", "pending": "待交办", "assigned": "已交办",
    "accepted": "办理中", "returned": "退单待审", "reported": "已反馈待审核",
    "reviewed": "待回访", "closed": "已办结", "archived": "已归档", "merged": "已并单",
}


class WorkflowError(Exception):
    """A step that is not allowed now, or not to this user (plain words, in Chinese)."""

    def __init__(self, message: str, code: str = "refused"):
        super().__init__(message)
        self.code = code


class Deadlines(Protocol):
    """The official working-day calendar (casework.calendar.WorkCalendar)."""

    def add_working_days(self, received: datetime, days: int) -> datetime: ...

    def is_working_day(self, d: date) -> bool: ...


@dataclass(frozen=True)
class Actor:
    """Who acts: a desk user (id, role, unit for a handler) or the scheduler (id None)."""

    id: int | None
    role: str
    unit_id: int | None = None


SYSTEM = Actor(None, "system")


@dataclass(frozen=True)
class Rules:
    """The hotline's deadlines and thresholds (YAML `casework:`; defaults from the source
    document: written assignment 7 working days, phone 3, criticism after 2 urgings)."""

    written_days: int = 7
    phone_days: int = 3
    criticism_urgings: int = 2
    max_extension_days: int = 15

    def days_for(self, mode: str) -> int | None:
        return {"written": self.written_days, "phone": self.phone_days}.get(mode)


async def actor_for(conn: asyncpg.Connection, agent_id: int) -> Actor:
    """The Actor of a desk user, from the database (role and unit are not taken on trust)."""
    row = await conn.fetchrow("SELECT id, role, unit_id FROM agents WHERE id = $1", agent_id)
    if row is None:
        raise WorkflowError("用户不存在", "forbidden")
    return Actor(row["id"], row["role"], row["unit_id"])


def require(actor: Actor, *roles: str) -> None:
    if actor.role not in roles:
        raise WorkflowError("您的角色无权执行此操作", "forbidden")


async def _lock(conn: asyncpg.Connection, case_id: int) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM cases WHERE id = $1 FOR UPDATE", case_id)
    if row is None:
        raise WorkflowError("工单不存在", "not_found")
    return row


def _expect(case: asyncpg.Record, *statuses: str) -> None:
    if case["status"] not in statuses:
        raise WorkflowError(
            f"工单当前状态为“{STATUS_WORDS.get(case['status'], case['status'])}”，不能执行此操作",
            "bad_state")


def text_field(value: Any, what: str, max_len: int, required: bool = True) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise WorkflowError(f"{what}必须是文字", "invalid")
    value = value.strip()
    if required and not value:
        raise WorkflowError(f"请填写{what}", "invalid")
    if len(value) > max_len:
        raise WorkflowError(f"{what}不能超过 {max_len} 个字", "invalid")
    return value


async def _notify(conn: asyncpg.Connection, case_id: int, action: str,
                  unit_ids: list[int] | None = None) -> None:
    # Delivered at commit: desks refresh their lists (handlers only for their units).
    await events.notify(conn, events.CASE, case_id=case_id, action=action,
                        unit_ids=unit_ids or [])


async def _set(conn: asyncpg.Connection, case_id: int, now: datetime, **fields: Any) -> None:
    cols = ", ".join(f"{k} = ${i}" for i, k in enumerate(fields, start=3))
    await conn.execute(f"UPDATE cases SET updated_at = $2, {cols} WHERE id = $1",
                       case_id, now, *fields.values())


# -- intake -------------------------------------------------------------------------------


async def _at_intake(conn: asyncpg.Connection, case_id: int,
                     category: str) -> asyncpg.Record:
    """Lock a case still at intake and check the category it is being filed under."""
    case = await _lock(conn, case_id)
    _expect(case, "intake")
    if not await conn.fetchval("SELECT 1 FROM categories WHERE code = $1 AND active", category):
        raise WorkflowError("请选择有效的事项分类", "invalid")
    return case


async def register(conn: asyncpg.Connection, case_id: int, actor: Actor, now: datetime, *,
                   title: str, category: str, validity: dict[str, bool]) -> None:
    """Intake done, the call is valid: the case waits to be assigned.

    Every valid-call criterion must be ticked; otherwise the call is invalid (mark_invalid).
    """
    require(actor, *HOTLINE_ROLES)
    title = text_field(title, "事项标题", 200)
    missing = [VALIDITY_CRITERIA[k] for k in VALIDITY_CRITERIA if validity.get(k) is not True]
    if missing:
        raise WorkflowError("不符合受理条件：" + "、".join(missing)
                            + "。请登记为无效来电并说明原因", "invalid")
    async with conn.transaction():
        case = await _at_intake(conn, case_id, category)
        await _set(conn, case_id, now, status="pending", title=title, category=category,
                   validity=json.dumps(validity), received_at=case["created_at"])
        await audit.record(conn, case_id, "registered", actor.id, now, category=category)
        await _notify(conn, case_id, "registered")


async def mark_invalid(conn: asyncpg.Connection, case_id: int, actor: Actor, now: datetime,
                       reason: str) -> None:
    """Record an invalid call with its reason; it is not a case, and its personal data
    is erased at once (minimum data: nothing will ever be done with it)."""
    require(actor, *HOTLINE_ROLES)
    reason = text_field(reason, "无效原因", 500)
    async with conn.transaction():
        case = await _lock(conn, case_id)
        _expect(case, "intake")
        await conn.execute("DELETE FROM case_personal WHERE case_id = $1", case_id)
        await _set(conn, case_id, now, status="invalid", invalid_reason=reason,
                   closed_at=now)
        await audit.record(conn, case_id, "marked_invalid", actor.id, now, reason=reason)


async def close_at_intake(conn: asyncpg.Connection, case_id: int, actor: Actor, now: datetime,
                          *, title: str, category: str, answer: str,
                          knowledge_id: int | None = None) -> None:
    """A consultation answered on the call (often from the knowledge base): closed now."""
    require(actor, *HOTLINE_ROLES)
    title = text_field(title, "事项标题", 200)
    answer = text_field(answer, "答复内容", 5000)
    async with conn.transaction():
        case = await _at_intake(conn, case_id, category)
        if knowledge_id is not None and not await conn.fetchval(
                "SELECT 1 FROM knowledge WHERE id = $1", knowledge_id):
            raise WorkflowError("知识库条目不存在", "invalid")
        await _set(conn, case_id, now, status="closed", title=title, category=category,
                   answer=answer, knowledge_id=knowledge_id, received_at=case["created_at"],
                   closed_at=now, replied=True, public_summary=answer[:500])
        await audit.record(conn, case_id, "answered_at_intake", actor.id, now,
                           knowledge_id=knowledge_id)
        await _notify(conn, case_id, "closed")


async def merge(conn: asyncpg.Connection, case_id: int, into: int, actor: Actor,
                now: datetime) -> None:
    """A repeat request becomes the child of an open case (并单); its own life ends."""
    require(actor, *HOTLINE_ROLES)
    if case_id == into:
        raise WorkflowError("不能把工单并入它自己", "invalid")
    async with conn.transaction():
        # Lock in id order so two merges of the same pair cannot deadlock.
        first, second = sorted((case_id, into))
        rows = {first: await _lock(conn, first), second: await _lock(conn, second)}
        child, parent = rows[case_id], rows[into]
        _expect(child, "intake", "pending")
        if parent["status"] not in OPEN_STATUSES:
            raise WorkflowError("只能并入尚未办结的工单", "bad_state")
        await _set(conn, case_id, now, status="merged", parent_case_id=into, closed_at=now,
                   received_at=child["received_at"] or child["created_at"])
        await audit.record(conn, case_id, "merged_into", actor.id, now, parent=parent["case_no"])
        await audit.record(conn, into, "merged_from", actor.id, now, child=child["case_no"])
        await _notify(conn, into, "merged")


# -- assignment ---------------------------------------------------------------------------


async def _unit(conn: asyncpg.Connection, unit_id: int) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM units WHERE id = $1 AND active", unit_id)
    if row is None:
        raise WorkflowError("承办单位不存在或已停用", "invalid")
    return row


async def _open_round(conn: asyncpg.Connection, case_id: int, round_: int, lead: int,
                      co: list[int], mode: str, due: datetime | None, actor: Actor,
                      now: datetime, note: str) -> None:
    for unit_id, role in [(lead, "lead"), *((u, "co") for u in co)]:
        await conn.execute(
            """INSERT INTO assignments (case_id, unit_id, role, mode, round, note,
                                        assigned_by, assigned_at, due_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
            case_id, unit_id, role, mode, round_, note, actor.id, now, due)


async def assign(conn: asyncpg.Connection, case_id: int, actor: Actor, now: datetime,
                 deadlines: Deadlines, rules: Rules, *, lead_unit: int,
                 co_units: list[int] | None = None, mode: str = "written",
                 note: str = "") -> datetime | None:
    """Send a pending (or returned) case to its lead unit and any co-handling units, with
    the acceptance and assignment form; return the deadline (None for urgent matters)."""
    require(actor, *HOTLINE_ROLES, "supervision")
    if mode not in MODES:
        raise WorkflowError("交办方式必须是书面、电话或紧急", "invalid")
    co = list(dict.fromkeys(co_units or []))
    if lead_unit in co:
        raise WorkflowError("主办单位不能同时是协办单位", "invalid")
    note = text_field(note, "交办意见", 2000, required=False)
    async with conn.transaction():
        case = await _lock(conn, case_id)
        _expect(case, "pending", "returned")
        for u in [lead_unit, *co]:
            await _unit(conn, u)
        days = rules.days_for(mode)
        due = deadlines.add_working_days(now, days) if days else None
        round_ = case["round"] + 1
        if case["status"] == "returned":
            # A reassignment (改派): what is still open of the last round is withdrawn.
            await conn.execute(
                "UPDATE assignments SET status = 'withdrawn' WHERE case_id = $1 "
                "AND status IN ('assigned', 'accepted')", case_id)
        await _open_round(conn, case_id, round_, lead_unit, co, mode, due, actor, now, note)
        await _set(conn, case_id, now, status="assigned", lead_unit_id=lead_unit, mode=mode,
                   round=round_, due_at=due, reported_at=None)
        await audit.record(conn, case_id, "reassigned" if case["status"] == "returned"
                           else "assigned", actor.id, now, lead_unit=lead_unit, co_units=co,
                           mode=mode, due_at=due, round=round_)
        await _notify(conn, case_id, "assigned", [lead_unit, *co])
    return due


async def _my_assignment(conn: asyncpg.Connection, assignment_id: int,
                         actor: Actor) -> tuple[asyncpg.Record, asyncpg.Record]:
    require(actor, "handler")
    a = await conn.fetchrow("SELECT * FROM assignments WHERE id = $1", assignment_id)
    # A handler of another unit learns nothing, not even that the assignment exists.
    if a is None or a["unit_id"] != actor.unit_id:
        raise WorkflowError("交办记录不存在", "not_found")
    case = await _lock(conn, a["case_id"])
    a = await conn.fetchrow("SELECT * FROM assignments WHERE id = $1 FOR UPDATE", assignment_id)
    if a["round"] != case["round"] or a["status"] == "withdrawn":
        raise WorkflowError("此交办已被撤回或已进入新一轮办理", "bad_state")
    return case, a


async def accept(conn: asyncpg.Connection, assignment_id: int, actor: Actor,
                 now: datetime) -> None:
    """The unit signs for the case (签收)."""
    async with conn.transaction():
        case, a = await _my_assignment(conn, assignment_id, actor)
        if a["status"] != "assigned":
            raise WorkflowError("此交办已签收或已退回", "bad_state")
        await conn.execute("UPDATE assignments SET status = 'accepted', accepted_by = $2, "
                           "accepted_at = $3 WHERE id = $1", assignment_id, actor.id, now)
        if a["role"] == "lead":
            await _set(conn, case["id"], now, status="accepted")
        await audit.record(conn, case["id"], "accepted", actor.id, now, unit=a["unit_id"],
                           role=a["role"])
        await _notify(conn, case["id"], "accepted", [a["unit_id"]])


async def return_case(conn: asyncpg.Connection, assignment_id: int, actor: Actor,
                      now: datetime, reason: str) -> None:
    """The unit sends back a case that is not theirs (退单), with its reason. A returned
    lead assignment puts the case back to the hotline for review and reassignment."""
    reason = text_field(reason, "退单理由", 1000)
    async with conn.transaction():
        case, a = await _my_assignment(conn, assignment_id, actor)
        if a["status"] not in ("assigned", "accepted"):
            raise WorkflowError("此交办已退回或已反馈结果", "bad_state")
        await conn.execute("UPDATE assignments SET status = 'returned', return_reason = $2, "
                           "returned_at = $3 WHERE id = $1", assignment_id, reason, now)
        if a["role"] == "lead":
            await _set(conn, case["id"], now, status="returned",
                       return_count=case["return_count"] + 1)
        else:
            await _set(conn, case["id"], now, return_count=case["return_count"] + 1)
        await audit.record(conn, case["id"], "returned", actor.id, now, unit=a["unit_id"],
                           role=a["role"], reason=reason)
        await _notify(conn, case["id"], "returned", [a["unit_id"]])


async def request_extension(conn: asyncpg.Connection, assignment_id: int, actor: Actor,
                            now: datetime, rules: Rules, *, reason: str, days: int) -> int:
    """The lead unit asks for more time, before its deadline, with an explanation."""
    reason = text_field(reason, "延期理由", 1000)
    if not isinstance(days, int) or isinstance(days, bool) or \
            not 1 <= days <= rules.max_extension_days:
        raise WorkflowError(f"延期天数须为 1 到 {rules.max_extension_days} 个工作日", "invalid")
    async with conn.transaction():
        case, a = await _my_assignment(conn, assignment_id, actor)
        if a["role"] != "lead" or a["status"] not in ("assigned", "accepted"):
            raise WorkflowError("只有主办单位在办理期间可以申请延期", "bad_state")
        if a["due_at"] is None:
            raise WorkflowError("紧急事项没有办理期限，无需延期", "bad_state")
        if now >= a["due_at"]:
            raise WorkflowError("已超过办理期限，延期须在期限前申请", "too_late")
        if await conn.fetchval("SELECT 1 FROM extensions WHERE assignment_id = $1 "
                               "AND status = 'pending'", assignment_id):
            raise WorkflowError("已有一项延期申请正在审核", "bad_state")
        ext_id: int = await conn.fetchval(
            """INSERT INTO extensions (assignment_id, case_id, asked_by, asked_at, reason, days)
               VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
            assignment_id, case["id"], actor.id, now, reason, days)
        await audit.record(conn, case["id"], "extension_requested", actor.id, now,
                           extension=ext_id, days=days, reason=reason)
        await _notify(conn, case["id"], "extension_requested", [a["unit_id"]])
    return ext_id


async def decide_extension(conn: asyncpg.Connection, extension_id: int, actor: Actor,
                           now: datetime, deadlines: Deadlines, *, approve: bool,
                           note: str = "") -> datetime | None:
    """The hotline approves (the deadline moves by the working days asked) or refuses."""
    require(actor, *HOTLINE_ROLES, "supervision")
    note = text_field(note, "审核意见", 1000, required=False)
    async with conn.transaction():
        ext = await conn.fetchrow("SELECT * FROM extensions WHERE id = $1", extension_id)
        if ext is None:
            raise WorkflowError("延期申请不存在", "not_found")
        case = await _lock(conn, ext["case_id"])
        ext = await conn.fetchrow("SELECT * FROM extensions WHERE id = $1 FOR UPDATE",
                                  extension_id)
        if ext["status"] != "pending":
            raise WorkflowError("此延期申请已审核", "bad_state")
        a = await conn.fetchrow("SELECT * FROM assignments WHERE id = $1 FOR UPDATE",
                                ext["assignment_id"])
        new_due = None
        if approve:
            # The deadline is the end of a working day: count on from that day.
            new_due = deadlines.add_working_days(a["due_at"] - timedelta(seconds=1),
                                                 ext["days"])
            await conn.execute("UPDATE assignments SET due_at = $2 WHERE id = $1", a["id"],
                               new_due)
            if a["role"] == "lead":
                await _set(conn, case["id"], now, due_at=new_due)
        await conn.execute(
            "UPDATE extensions SET status = $2, decided_by = $3, decided_at = $4, "
            "new_due_at = $5 WHERE id = $1",
            extension_id, "approved" if approve else "refused", actor.id, now, new_due)
        await audit.record(conn, case["id"], "extension_approved" if approve
                           else "extension_refused", actor.id, now, extension=extension_id,
                           due_at=new_due, note=note)
        await _notify(conn, case["id"], "extension_decided", [a["unit_id"]])
    return new_due


async def report_result(conn: asyncpg.Connection, assignment_id: int, actor: Actor,
                        now: datetime, *, result: str, reply: str, replied: bool) -> None:
    """The unit reports its result and how it answered the caller. The lead unit's report
    sends the case to the hotline for review; a co-handling unit's report is its part."""
    result = text_field(result, "办理结果", 5000)
    reply = text_field(reply, "答复来电人情况", 2000, required=replied)
    async with conn.transaction():
        case, a = await _my_assignment(conn, assignment_id, actor)
        if a["status"] not in ("assigned", "accepted"):
            raise WorkflowError("此交办已退回或已反馈结果", "bad_state")
        await conn.execute(
            "UPDATE assignments SET status = 'reported', result = $2, reply = $3, "
            "reported_by = $4, reported_at = $5, accepted_at = COALESCE(accepted_at, $5), "
            "accepted_by = COALESCE(accepted_by, $4) WHERE id = $1",
            assignment_id, result, reply, actor.id, now)
        if a["role"] == "lead":
            await _set(conn, case["id"], now, status="reported", reported_at=now,
                       result=result, replied=replied)
        await audit.record(conn, case["id"], "result_reported", actor.id, now,
                           unit=a["unit_id"], role=a["role"], replied=replied,
                           on_time=a["due_at"] is None or now <= a["due_at"])
        await _notify(conn, case["id"], "reported", [a["unit_id"]])


# -- follow-up ----------------------------------------------------------------------------


async def _rehandle(conn: asyncpg.Connection, case: asyncpg.Record, actor: Actor,
                    now: datetime, deadlines: Deadlines, rules: Rules, why: str,
                    note: str) -> datetime | None:
    """Send a case back to the same units for another round (重办), counted."""
    last = await conn.fetch("SELECT * FROM assignments WHERE case_id = $1 AND round = $2 "
                            "AND status <> 'withdrawn' AND status <> 'returned'",
                            case["id"], case["round"])
    lead = next((a["unit_id"] for a in last if a["role"] == "lead"), case["lead_unit_id"])
    co = [a["unit_id"] for a in last if a["role"] == "co"]
    mode = case["mode"] or "written"
    days = rules.days_for(mode)
    due = deadlines.add_working_days(now, days) if days else None
    await conn.execute("UPDATE assignments SET status = 'done' WHERE case_id = $1 "
                       "AND round = $2 AND status = 'reported'", case["id"], case["round"])
    round_ = case["round"] + 1
    await _open_round(conn, case["id"], round_, lead, co, mode, due, actor, now, note)
    await _set(conn, case["id"], now, status="assigned", round=round_, due_at=due,
               reported_at=None, rehandle_count=case["rehandle_count"] + 1)
    await audit.record(conn, case["id"], "sent_back", actor.id, now, why=why, round=round_,
                       due_at=due, note=note)
    await _notify(conn, case["id"], "sent_back", [lead, *co])
    return due


async def review(conn: asyncpg.Connection, case_id: int, actor: Actor, now: datetime,
                 deadlines: Deadlines, rules: Rules, *, approve: bool, note: str = "",
                 public_summary: str = "") -> None:
    """The hotline checks the lead unit's result: accepted -> the caller is revisited;
    not acceptable -> sent back for re-handling."""
    require(actor, *HOTLINE_ROLES, "supervision")
    note = text_field(note, "审核意见", 2000, required=not approve)
    summary = text_field(public_summary, "公开摘要", 500, required=False)
    async with conn.transaction():
        case = await _lock(conn, case_id)
        _expect(case, "reported")
        if approve:
            await _set(conn, case_id, now, status="reviewed",
                       public_summary=summary or case["public_summary"])
            await audit.record(conn, case_id, "result_approved", actor.id, now, note=note)
            await _notify(conn, case_id, "reviewed")
        else:
            await _rehandle(conn, case, actor, now, deadlines, rules, "review", note)


async def revisit(conn: asyncpg.Connection, case_id: int, actor: Actor, now: datetime,
                  deadlines: Deadlines, rules: Rules, *, outcome: str,
                  note: str = "") -> None:
    """The caller is called back (回访): satisfied -> closed; unsatisfied -> re-handled;
    unreachable -> recorded, the case waits for another try (or close_unreached)."""
    require(actor, *HOTLINE_ROLES)
    if outcome not in ("satisfied", "unsatisfied", "unreachable"):
        raise WorkflowError("回访结果必须是满意、不满意或未联系上", "invalid")
    note = text_field(note, "回访记录", 2000, required=outcome == "unsatisfied")
    async with conn.transaction():
        case = await _lock(conn, case_id)
        _expect(case, "reviewed")
        await conn.execute("INSERT INTO revisits (case_id, round, by_agent, at, outcome, note) "
                           "VALUES ($1, $2, $3, $4, $5, $6)",
                           case_id, case["round"], actor.id, now, outcome, note)
        await audit.record(conn, case_id, "revisited", actor.id, now, outcome=outcome)
        if outcome == "satisfied":
            await conn.execute("UPDATE assignments SET status = 'done' WHERE case_id = $1 "
                               "AND round = $2 AND status = 'reported'", case_id, case["round"])
            await _set(conn, case_id, now, status="closed", closed_at=now,
                       satisfaction="satisfied")
            await _notify(conn, case_id, "closed")
        elif outcome == "unsatisfied":
            await _set(conn, case_id, now, satisfaction="unsatisfied")
            case = await conn.fetchrow("SELECT * FROM cases WHERE id = $1", case_id)
            await _rehandle(conn, case, actor, now, deadlines, rules, "unsatisfied", note)


async def close_unreached(conn: asyncpg.Connection, case_id: int, actor: Actor,
                          now: datetime, *, attempts_needed: int = 3) -> None:
    """Close a reviewed case whose caller could not be reached after several tries."""
    require(actor, *HOTLINE_ROLES)
    async with conn.transaction():
        case = await _lock(conn, case_id)
        _expect(case, "reviewed")
        tries = await conn.fetchval("SELECT count(*) FROM revisits WHERE case_id = $1 "
                                    "AND round = $2 AND outcome = 'unreachable'",
                                    case_id, case["round"])
        if tries < attempts_needed:
            raise WorkflowError(f"回访未联系上 {attempts_needed} 次后才能直接办结", "bad_state")
        await conn.execute("UPDATE assignments SET status = 'done' WHERE case_id = $1 "
                           "AND round = $2 AND status = 'reported'", case_id, case["round"])
        await _set(conn, case_id, now, status="closed", closed_at=now)
        await audit.record(conn, case_id, "closed_unreached", actor.id, now, tries=tries)
        await _notify(conn, case_id, "closed")


async def urge(conn: asyncpg.Connection, case_id: int, actor: Actor, now: datetime, *,
               note: str = "") -> int:
    """Urge the lead unit (催办), by hand (hotline or supervision office) or by the
    scheduled job (actor SYSTEM); every urging is counted. Returns the case's count."""
    if actor is not SYSTEM:
        require(actor, *HOTLINE_ROLES, "supervision")
    note = text_field(note, "催办说明", 1000, required=False)
    async with conn.transaction():
        case = await _lock(conn, case_id)
        _expect(case, "assigned", "accepted")
        a = await conn.fetchrow("SELECT * FROM assignments WHERE case_id = $1 AND round = $2 "
                                "AND role = 'lead' AND status IN ('assigned', 'accepted')",
                                case_id, case["round"])
        if a is None:
            raise WorkflowError("没有正在办理的主办单位", "bad_state")
        kind = "auto" if actor is SYSTEM else "manual"
        await conn.execute("INSERT INTO urgings (case_id, assignment_id, unit_id, kind, "
                           "by_agent, at, note) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                           case_id, a["id"], a["unit_id"], kind, actor.id, now, note)
        count: int = case["urge_count"] + 1
        await _set(conn, case_id, now, urge_count=count)
        await audit.record(conn, case_id, "urged", actor.id, now, kind=kind, unit=a["unit_id"],
                           count=count)
        await _notify(conn, case_id, "urged", [a["unit_id"]])
    return count


async def archive(conn: asyncpg.Connection, case_id: int, actor: Actor, now: datetime) -> None:
    """File a closed case (归档); it stays readable and counted, and no longer changes."""
    require(actor, *HOTLINE_ROLES)
    async with conn.transaction():
        case = await _lock(conn, case_id)
        _expect(case, "closed")
        await _set(conn, case_id, now, status="archived", archived_at=now)
        await audit.record(conn, case_id, "archived", actor.id, now)


async def add_note(conn: asyncpg.Connection, case_id: int, actor: Actor, now: datetime,
                   note: str) -> None:
    """A coordination note (the supervision office's 协调 among several units)."""
    require(actor, *HOTLINE_ROLES, "supervision")
    note = text_field(note, "协调意见", 2000)
    async with conn.transaction():
        await _lock(conn, case_id)
        await audit.record(conn, case_id, "coordination_note", actor.id, now, note=note)
        await _notify(conn, case_id, "note")
