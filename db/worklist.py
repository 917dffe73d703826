"""The callback worklist: callers the hotline owes a call back (national rules: missed
calls are called back), and the outcome of each attempt."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from db import events

KINDS = ("abandoned", "callback", "voice_message")
OUTCOMES = ("reached", "no_answer", "invalid")


# Why a call back did not reach the citizen, in the words the desk shows the agent.
REASONS = {
    "callback_no_answer": "市民未接听回拨",
    "callback_busy": "市民电话占线",
    "callback_trunk_failed": "外呼线路故障，所有线路均未接通",
    "callback_refused": "号码未通过外呼检查（号码不合规或超过呼叫次数上限）",
    "callback_no_route": "没有可用的外呼线路",
    # A waiting caller whose line died without a hang-up (ivr/channels.py LINE_LOST).
    "rtp_timeout": "来电方线路中断（长时间无语音，未正常挂机）",
    "session_expired": "来电方线路中断（运营商会话超时，未正常挂机）",
    # Asterisk restarted under the call (waiting or talking): the hotline cut it, not the
    # caller; these come first on the list, oldest first.
    "system_lost": "系统故障中断（非市民挂机），请优先回拨",
}
SYSTEM_LOST = "system_lost"


async def add(conn: asyncpg.Connection, call_id: uuid.UUID, kind: str,
              reason: str | None = None) -> None:
    """Put a call on the worklist (once); reason: why a call back failed, or why a missed
    call's line ended (REASONS)."""
    await conn.execute(
        "INSERT INTO worklist (call_id, kind, reason) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING",
        call_id, kind, reason,
    )
    await events.notify(conn, events.QUEUE)


async def open_items(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Open items, oldest first, with what the desk shows of their call and case."""
    return await conn.fetch(
        """SELECT w.*, c.dialled_number, c.case_id, c.entered_queue_at, c.ended_at,
                  k.case_no,
                  (SELECT (l.data->>'waited')::float FROM queue_log l
                   WHERE l.call_id = w.call_id AND l.event IN ('ABANDON', 'EXITCALLBACK',
                                                               'EXITWITHTIMEOUT')
                   ORDER BY l.at DESC LIMIT 1) AS waited,
                  (SELECT (l.data->>'position')::int FROM queue_log l
                   WHERE l.call_id = w.call_id AND l.event IN ('ABANDON', 'EXITCALLBACK',
                                                               'EXITWITHTIMEOUT')
                   ORDER BY l.at DESC LIMIT 1) AS position
           FROM worklist w JOIN calls c ON c.id = w.call_id
           LEFT JOIN cases k ON k.id = c.case_id
           WHERE w.status = 'open'
           ORDER BY w.reason IS NOT DISTINCT FROM 'system_lost' DESC,
                    CASE WHEN w.reason = 'system_lost' THEN c.arrived_at END, w.created_at"""
    )


async def record_attempt(conn: asyncpg.Connection, call_id: uuid.UUID, agent_id: int,
                         outcome: str) -> asyncpg.Record | None:
    """An agent called back: 'reached' or 'invalid' closes the item, 'no_answer' counts
    an attempt and leaves it open."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    done = outcome != "no_answer"
    row = await conn.fetchrow(
        """UPDATE worklist SET attempts = attempts + 1, outcome = $3,
             status = CASE WHEN $4 THEN 'done' ELSE status END,
             done_by = CASE WHEN $4 THEN $2::int END, done_at = CASE WHEN $4 THEN now() END
           WHERE call_id = $1 AND status = 'open' RETURNING *""",
        call_id, agent_id, outcome, done,
    )
    if row is not None:
        await events.notify(conn, events.QUEUE)
    return row


def item_dict(row: asyncpg.Record, caller_masked: str | None) -> dict[str, Any]:
    return {
        "call_id": str(row["call_id"]),
        "kind": row["kind"],
        "dialled_number": row["dialled_number"],
        "at": (row["ended_at"] or row["created_at"]).isoformat(),
        "waited_seconds": round(float(row["waited"]), 1) if row["waited"] is not None else None,
        "position": row["position"],
        "caller_masked": caller_masked,
        "case_id": row["case_id"],
        "case_no": row["case_no"],
        "attempts": row["attempts"],
        "status": row["status"],
        "reason": row["reason"],
        "reason_text": REASONS.get(row["reason"] or ""),
    }
