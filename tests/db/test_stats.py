"""Wallboard figures, checked against a known scripted call pattern (real PostgreSQL)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import pytest

from db import stats

pytestmark = pytest.mark.e2e

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 1, 5, 10, 0, tzinfo=CST)
QUEUE = f"t_stats_{uuid.uuid4().hex[:6]}"


def at(minute: int, second: int = 0) -> datetime:
    return T0 + timedelta(minutes=minute, seconds=second)


async def _script(db: asyncpg.Connection) -> None:
    """Five callers between 10:00 and 11:00: three answered, one short and one long abandon."""
    # The test database outlives a run: start from an empty hour.
    await db.execute("DELETE FROM queue_log WHERE at >= $1 AND at < $2", T0, at(60))
    await db.execute("DELETE FROM agent_state_log WHERE at >= $1 AND at < $2", T0, at(120))
    c = [uuid.uuid4() for _ in range(5)]
    rows = [
        (at(1), c[0], "ENTERQUEUE", {}), (at(1, 10), c[0], "CONNECT", {"holdtime": 10}),
        (at(3, 10), c[0], "COMPLETECALLER", {"talktime": 120}),
        (at(2), c[1], "ENTERQUEUE", {}), (at(2, 20), c[1], "CONNECT", {"holdtime": 20}),
        (at(3, 20), c[1], "COMPLETEAGENT", {"talktime": 60}),
        (at(5), c[2], "ENTERQUEUE", {}), (at(5, 3), c[2], "ABANDON", {"waited": 3}),
        (at(20), c[3], "ENTERQUEUE", {}), (at(20, 40), c[3], "ABANDON", {"waited": 40}),
        (at(40), c[4], "ENTERQUEUE", {}), (at(40, 5), c[4], "CONNECT", {"holdtime": 5}),
        (at(41, 35), c[4], "COMPLETECALLER", {"talktime": 90}),
        # Cut by an Asterisk restart while waiting: lost, not abandoned.
        (at(50), uuid.UUID(int=7), "ENTERQUEUE", {}),
        (at(50, 9), uuid.UUID(int=7), "SYSTEMLOST", {"waited": 9}),
    ]
    for when, call, event, data in rows:
        await db.execute("INSERT INTO queue_log (at, call_id, queue, event, data) "
                         "VALUES ($1, $2, $3, $4, $5)", when, call, QUEUE, event,
                         json.dumps(data))
    agent = await db.fetchval("SELECT id FROM agents WHERE login = 'agent1'")
    # Two wrap-ups: 15 s and 5 s.
    for when, state in ((at(3, 10), "wrap_up"), (at(3, 25), "ready"),
                        (at(41, 35), "wrap_up"), (at(41, 40), "ready")):
        await db.execute("INSERT INTO agent_state_log (agent_id, state, at) VALUES ($1, $2, $3)",
                         agent, state, when)


async def test_figures_of_a_scripted_hour(db: asyncpg.Connection) -> None:
    await _script(db)
    f = await stats.figures(db, T0, at(60), QUEUE, short_abandon=5, service_level_seconds=15)
    assert (f.offered, f.answered, f.abandoned, f.short_abandoned, f.lost) == (6, 3, 2, 1, 1)
    assert f.answer_rate == 0.5
    assert f.service_level == pytest.approx(2 / 3, abs=1e-4)  # 10 s and 5 s within 15 s
    assert f.asa == pytest.approx(11.7)  # (10 + 20 + 5) / 3
    assert f.aht == pytest.approx(100.0)  # talk (120 + 60 + 90) / 3 + wrap-up (15 + 5) / 2

    bins = await stats.intervals(db, T0, at(60), 15, QUEUE)
    got = [(b["start"][11:16], b["offered"], b["answered"], b["abandoned"], b["lost"])
           for b in bins]
    # date_bin from 10:00 local (02:00 UTC); starts are shown in UTC by PostgreSQL
    assert got == [("02:00", 3, 2, 1, 0), ("02:15", 1, 0, 1, 0), ("02:30", 1, 1, 0, 0),
                   ("02:45", 1, 0, 0, 1)]
    assert [b["start"] for b in await stats.intervals(db, T0, at(60), 60, QUEUE)] \
        == [datetime(2026, 1, 5, 2, 0, tzinfo=UTC).isoformat()]


async def test_an_empty_period_has_no_rates(db: asyncpg.Connection) -> None:
    f = await stats.figures(db, at(-600), at(-540), QUEUE)
    assert f.offered == 0 and f.answer_rate is None and f.service_level is None
    assert f.asa is None and f.aht is None
