"""Special reports (专报) on typical or major matters, and the alert of a major emergency.

A report is drafted from one or more cases (title, facts, what units did, the figures),
edited, then sent to the supervision office, the secretary-general or the mayor. A major
emergency goes to the emergency office at once: the report is sent in the same step and
every desk of the emergency office and the duty supervisors is alerted (NOTIFY).
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from casework import audit
from casework.workflow import HOTLINE_ROLES, STATUS_WORDS, Actor, WorkflowError, require, text_field
from db import events

RECIPIENTS = {"supervision": "市政府督查室", "secretary_general": "市政府秘书长",
              "mayor": "市长", "emergency_office": "市政府应急管理办公室"}


async def draft(conn: asyncpg.Connection, case_ids: list[int], actor: Actor,
                now: datetime, *, recipient: str, title: str = "") -> int:
    """A draft special report about these cases, pre-filled from them (no personal data:
    the cases' titles, categories, units, statuses and urgings)."""
    require(actor, *HOTLINE_ROLES, "supervision")
    if recipient not in RECIPIENTS:
        raise WorkflowError("专报对象必须是督查室、秘书长、市长或应急办", "invalid")
    ids = list(dict.fromkeys(case_ids))
    if not ids or len(ids) > 100:
        raise WorkflowError("专报须关联 1 到 100 件工单", "invalid")
    rows = await conn.fetch(
        """SELECT c.id, c.case_no, c.title, c.status, c.urge_count, c.rehandle_count,
                  c.received_at, k.name AS category, u.name AS unit
           FROM cases c LEFT JOIN categories k ON k.code = c.category
           LEFT JOIN units u ON u.id = c.lead_unit_id
           WHERE c.id = ANY($1::bigint[]) ORDER BY c.id""", ids)
    if len(rows) != len(ids):
        raise WorkflowError("有工单不存在", "not_found")
    lines = []
    for r in rows:
        status = STATUS_WORDS.get(r["status"], r["status"])
        lines.append(
            f"工单 {r['case_no']}：{r['title'] or '（无标题）'}。"
            f"分类：{r['category'] or '未分类'}；承办单位：{r['unit'] or '尚未交办'}；"
            f"状态：{status}；催办 {r['urge_count']} 次，重办 {r['rehandle_count']} 次。")
    title = text_field(title, "专报标题", 200, required=False) or \
        f"关于{rows[0]['title'] or '有关事项'}的专报"
    body = "\n".join(lines)
    async with conn.transaction():
        report_id: int = await conn.fetchval(
            """INSERT INTO special_reports (case_ids, recipient, title, body, created_by,
                                            created_at)
               VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
            ids, recipient, title, body, actor.id, now)
        for r in rows:
            await audit.record(conn, r["id"], "special_report_drafted", actor.id, now,
                               report=report_id, recipient=recipient)
    return report_id


async def edit(conn: asyncpg.Connection, report_id: int, actor: Actor, *, title: str,
               body: str) -> None:
    """Change a draft's wording before it is sent."""
    require(actor, *HOTLINE_ROLES, "supervision")
    title, body = text_field(title, "专报标题", 200), text_field(body, "专报正文", 20000)
    done = await conn.execute("UPDATE special_reports SET title = $2, body = $3 "
                              "WHERE id = $1 AND status = 'draft'", report_id, title, body)
    if done != "UPDATE 1":
        raise WorkflowError("专报不存在或已报送", "bad_state")


async def send(conn: asyncpg.Connection, report_id: int, actor: Actor, now: datetime) -> None:
    """Send the report to its recipient; an emergency-office report also raises an alert."""
    require(actor, *HOTLINE_ROLES, "supervision")
    async with conn.transaction():
        r = await conn.fetchrow("SELECT * FROM special_reports WHERE id = $1 FOR UPDATE",
                                report_id)
        if r is None or r["status"] != "draft":
            raise WorkflowError("专报不存在或已报送", "bad_state")
        await conn.execute("UPDATE special_reports SET status = 'sent', sent_at = $2 "
                           "WHERE id = $1", report_id, now)
        for case_id in r["case_ids"]:
            await audit.record(conn, case_id, "special_report_sent", actor.id, now,
                               report=report_id, recipient=r["recipient"])
        if r["recipient"] == "emergency_office":
            await events.notify(conn, events.ALERT, report_id=report_id, title=r["title"],
                                case_ids=list(r["case_ids"]))


async def alert_emergency(conn: asyncpg.Connection, case_id: int, actor: Actor,
                          now: datetime, *, title: str = "") -> int:
    """A major emergency: flag the case and report it to the emergency office at once."""
    require(actor, *HOTLINE_ROLES, "supervision")
    async with conn.transaction():
        done = await conn.execute("UPDATE cases SET major = true, updated_at = $2 "
                                  "WHERE id = $1", case_id, now)
        if done != "UPDATE 1":
            raise WorkflowError("工单不存在", "not_found")
        report_id = await draft(conn, [case_id], actor, now, recipient="emergency_office",
                                title=title or "重大突发事件即时报告")
        await send(conn, report_id, actor, now)
    return report_id


async def listing(conn: asyncpg.Connection, status: str | None = None) -> list[dict[str, object]]:
    """Special reports, newest first."""
    rows = await conn.fetch(
        "SELECT r.*, a.display_name AS author FROM special_reports r "
        "LEFT JOIN agents a ON a.id = r.created_by "
        "WHERE $1::text IS NULL OR r.status = $1 ORDER BY r.id DESC LIMIT 200", status)
    return [{"id": r["id"], "case_ids": list(r["case_ids"]), "recipient": r["recipient"],
             "recipient_name": RECIPIENTS[r["recipient"]], "title": r["title"],
             "body": r["body"], "status": r["status"], "author": r["author"],
             "created_at": r["created_at"].isoformat(),
             "sent_at": r["sent_at"].isoformat() if r["sent_at"] else None} for r in rows]
