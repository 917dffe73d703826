"""Retention on a real PostgreSQL with a controlled clock: past the period after archiving,
a case's personal fields and voice messages (rows and files) are erased, with one
'personal_erased' audit entry of counts; a case just inside the period, or closed but not
archived, keeps them; the figures do not change, and a second run does nothing."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from casework import calendar, retention, stats
from casework import workflow as wf
from db import cases as case_store
from db import recordings
from db.crypto import Keyring

CN = ZoneInfo("Asia/Shanghai")
T0 = datetime(2022, 3, 1, 9, 0, tzinfo=CN)
DAYS = 1095
CALLER, NAME, ADDRESS = "13937760123", "王秀英", "卧龙区七一路12号"
VALID = dict.fromkeys(wf.VALIDITY_CRITERIA, True)


async def _actor(conn: asyncpg.Connection, login: str, role: str,
                 unit_id: int | None = None) -> wf.Actor:
    agent_id = await conn.fetchval(
        "INSERT INTO agents (login, display_name, role, unit_id) VALUES ($1, $1, $2, $3)"
        " RETURNING id", login, role, unit_id)
    return wf.Actor(agent_id, role, unit_id)


class World:
    def __init__(self, conn: asyncpg.Connection, tmp: Path) -> None:
        self.conn, self.tmp = conn, tmp
        self.keys = Keyring({"k1": os.urandom(32)}, "k1", os.urandom(32))
        self.cal = calendar.WorkCalendar()

    async def setup(self) -> None:
        self.unit = await self.conn.fetchval(
            "INSERT INTO units (code, name, level) VALUES ('P', '市供电公司', 1) RETURNING id")
        self.agent = await _actor(self.conn, "agent1", "agent")
        self.handler = await _actor(self.conn, "hp", "handler", self.unit)

    async def intake(self, when: datetime, voice_messages: int = 0) -> int:
        row = await case_store.create(self.conn, self.keys, call_id=None,
                                      dialled_number="12345", service="hotline",
                                      caller_number=CALLER)
        case_id: int = row["id"]
        await self.conn.execute("UPDATE cases SET created_at = $2, content = '电压低' "
                                "WHERE id = $1", case_id, when)
        await case_store.update(self.conn, self.keys, case_id,
                                {"name": NAME, "address": ADDRESS})
        for n in range(voice_messages):
            f = self.tmp / f"case{case_id}-{n}.wav.sealed"
            f.write_bytes(b"sealed audio")
            await recordings.attach(self.conn, case_id, None, "voice_message", str(f), 3.0,
                                    "k1")
        return case_id

    async def archived(self, when: datetime, voice_messages: int = 0) -> int:
        """A case through its whole life, archived at `when` (begun ten days before)."""
        c, a, h, r = self.conn, self.agent, self.handler, wf.Rules()
        start = when - timedelta(days=10)
        case_id = await self.intake(start, voice_messages)
        await wf.register(c, case_id, a, start, title="电压低", category="0402",
                          validity=VALID)
        await wf.assign(c, case_id, a, start + timedelta(hours=1), self.cal, r,
                        lead_unit=self.unit)
        lead = await c.fetchval("SELECT id FROM assignments WHERE case_id = $1", case_id)
        await wf.accept(c, lead, h, start + timedelta(hours=2))
        await wf.report_result(c, lead, h, start + timedelta(days=1), result="已处理",
                               reply="已告知", replied=True)
        await wf.review(c, case_id, a, start + timedelta(days=2), self.cal, r, approve=True)
        await wf.revisit(c, case_id, a, start + timedelta(days=3), self.cal, r,
                         outcome="satisfied")
        await wf.archive(c, case_id, a, when)
        return case_id

    async def personal(self, case_id: int) -> int:
        return int(await self.conn.fetchval(
            "SELECT count(*) FROM case_personal WHERE case_id = $1", case_id))

    async def voice(self, case_id: int) -> list[Path]:
        return [Path(r["file"]) for r in await recordings.for_case(self.conn, case_id)]


async def _figures(conn: asyncpg.Connection, now: datetime) -> list[object]:
    start, end = T0 - timedelta(days=60), now + timedelta(days=1)
    return [await stats.unit_figures(conn, start, end),
            await stats.category_figures(conn, start, end)]


async def test_personal_data_is_erased_after_the_retention_period(
        conn: asyncpg.Connection, tmp_path: Path) -> None:
    w = World(conn, tmp_path)
    await w.setup()
    old = await w.archived(T0, voice_messages=2)
    now = T0 + timedelta(days=DAYS, hours=1)
    recent = await w.archived(now - timedelta(days=DAYS) + timedelta(minutes=1),
                              voice_messages=1)
    # Answered on the call long ago but never archived: not the rule's to erase yet.
    closed = await w.intake(T0 - timedelta(days=30))
    await wf.close_at_intake(conn, closed, w.agent, T0 - timedelta(days=30), title="咨询",
                             category="0402", answer="请拨打供电服务热线")
    # An invalid call long ago: its fields went at once, its voice message goes now.
    invalid = await w.intake(T0 - timedelta(days=5), voice_messages=1)
    await wf.mark_invalid(conn, invalid, w.agent, T0 - timedelta(days=5), "骚扰电话")
    old_files, recent_files = await w.voice(old), await w.voice(recent)
    invalid_files = await w.voice(invalid)
    assert all(f.exists() for f in old_files + recent_files + invalid_files)
    figures_before = await _figures(conn, now)
    assert figures_before[0][0].closed == 2  # the figures below really count these cases

    erased = await retention.erase_expired(conn, now, DAYS, batch=1)

    assert sorted(erased) == sorted([old, invalid])
    assert await w.personal(old) == 0 and await w.voice(old) == []
    assert not any(f.exists() for f in old_files + invalid_files)
    assert await w.voice(invalid) == []
    assert await w.personal(recent) == 3 and await w.voice(recent) == recent_files
    assert all(f.exists() for f in recent_files)
    assert await w.personal(closed) == 3
    # The case itself stays, with its content, assignments and trail.
    case = await conn.fetchrow("SELECT status, content, title FROM cases WHERE id = $1", old)
    assert (case["status"], case["content"], case["title"]) == ("archived", "电压低", "电压低")
    assert await conn.fetchval("SELECT count(*) FROM assignments WHERE case_id = $1", old) == 1
    assert await _figures(conn, now) == figures_before
    # The caller's number can no longer find the erased case.
    found = {r["id"] for r in await case_store.find_by_phone(conn, w.keys, CALLER)}
    assert old not in found and recent in found
    # One audit entry per erased case, with counts and nothing personal.
    events = await conn.fetch("SELECT case_id, actor_id, detail, at FROM case_events "
                              "WHERE action = 'personal_erased' ORDER BY case_id")
    details = {e["case_id"]: json.loads(e["detail"]) for e in events}
    assert details == {
        old: {"fields": 3, "recordings": 2, "retention_days": DAYS},
        invalid: {"fields": 0, "recordings": 1, "retention_days": DAYS}}
    assert all(e["actor_id"] is None and e["at"] == now for e in events)
    assert not any(s in json.dumps(details, ensure_ascii=False) for s in (CALLER, NAME, ADDRESS))

    # Again, and again half a minute later: nothing left to erase, nothing written.
    assert await retention.erase_expired(conn, now, DAYS) == []
    assert await retention.erase_expired(conn, now + timedelta(seconds=30), DAYS) == []
    assert await conn.fetchval("SELECT count(*) FROM case_events "
                               "WHERE action = 'personal_erased'") == 2
    # A minute past its own period, the recent case goes too.
    later = now + timedelta(minutes=2)
    assert await retention.erase_expired(conn, later, DAYS) == [recent]
    assert await w.personal(recent) == 0 and not any(f.exists() for f in recent_files)


async def test_a_merged_repeat_request_goes_with_its_case(conn: asyncpg.Connection,
                                                          tmp_path: Path) -> None:
    w = World(conn, tmp_path)
    await w.setup()
    parent = await w.intake(T0)
    await wf.register(conn, parent, w.agent, T0, title="电压低", category="0402",
                      validity=VALID)
    child = await w.intake(T0 + timedelta(hours=1))
    await wf.merge(conn, child, parent, w.agent, T0 + timedelta(hours=1))
    now = T0 + timedelta(days=DAYS + 30)
    # The parent is still open: neither is touched, however old.
    assert await retention.erase_expired(conn, now, DAYS) == []
    await conn.execute("UPDATE cases SET status = 'archived', archived_at = $2 "
                       "WHERE id = $1", parent, T0 + timedelta(days=1))
    assert sorted(await retention.erase_expired(conn, now, DAYS)) == [parent, child]
    assert await w.personal(child) == 0


async def test_zero_days_means_never(conn: asyncpg.Connection, tmp_path: Path) -> None:
    w = World(conn, tmp_path)
    await w.setup()
    old = await w.archived(T0)
    far = T0 + timedelta(days=20 * 365)
    assert await retention.erase_expired(conn, far, 0) == []
    assert await w.personal(old) == 3
    with pytest.raises(ValueError):
        await retention.erase_expired(conn, far.replace(tzinfo=None), DAYS)


async def test_the_audit_trail_refuses_changes_in_sql(conn: asyncpg.Connection,
                                                      tmp_path: Path) -> None:
    """Not even the erasure, nor anyone with SQL, edits or deletes an audit entry."""
    w = World(conn, tmp_path)
    await w.setup()
    case_id = await w.archived(T0)
    await retention.erase_expired(conn, T0 + timedelta(days=DAYS + 1), DAYS)
    event = await conn.fetchval("SELECT id FROM case_events WHERE case_id = $1 "
                                "AND action = 'personal_erased'", case_id)
    for sql in ("UPDATE case_events SET detail = '{}' WHERE id = $1",
                "UPDATE case_events SET actor_id = NULL, at = now() WHERE id = $1",
                "DELETE FROM case_events WHERE id = $1"):
        with pytest.raises(asyncpg.RaiseError, match="cannot be changed or deleted"):
            await conn.execute(sql, event)
    assert await conn.fetchval("SELECT detail->>'fields' FROM case_events WHERE id = $1",
                               event) == "3"


def test_the_period_comes_from_the_yaml() -> None:
    from dialplan import config

    base = (Path(__file__).resolve().parents[2] / "config" / "hotline.yaml").read_text(
        encoding="utf-8")
    assert config.loads(base).casework.retention_days == 1095  # three years by default
    assert config.loads(base + "casework:\n  retention_days: 0\n").casework.retention_days == 0
    for bad in ("-1", "tomorrow", "true", "40000"):
        with pytest.raises(config.ConfigError) as e:
            config.loads(base + f"casework:\n  retention_days: {bad}\n", "hotline.yaml")
        assert "hotline.yaml:" in str(e.value) and "retention_days" in str(e.value)
