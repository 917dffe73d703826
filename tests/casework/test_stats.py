"""Figures by unit and category over ISO week 2026-W08 (Mon 16 - Sun 22 Feb 2026, Beijing
time), and the assessment score, against values worked out by hand from the rows below.

`seed_week` is shared with the publication and Open311 tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from casework import stats
from casework import workflow as wf
from casework.stats import AssessmentFormula, Figures, assessment_score
from db import cases as case_store
from db.crypto import Keyring

TZ = ZoneInfo("Asia/Shanghai")
WEEK_START = datetime(2026, 2, 16, tzinfo=TZ)
WEEK_END = datetime(2026, 2, 23, tzinfo=TZ)
# Personal data put on every case (encrypted, or even in clear) and into its free text:
# none of it may ever appear in a figure, a publication or the Open311 API.
CALLER_NAME = "欧阳娜娜"
CALLER_NUMBER = "13987654321"
CALLER_ADDRESS = "幸福路88号3栋"


def t(day: int, hour: int = 0, minute: int = 0, month: int = 2) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=TZ)


@dataclass
class Week:
    units: dict[str, int]
    cases: dict[int, int]  # our case number in the scenario -> cases.id
    case_no: dict[int, str]


async def _unit(conn: asyncpg.Connection, code: str, name: str, level: int,
                parent: int | None = None) -> int:
    uid: int = await conn.fetchval(
        "INSERT INTO units (code, name, level, parent_id) VALUES ($1, $2, $3, $4)"
        " RETURNING id", code, name, level, parent)
    return uid


async def _case(conn: asyncpg.Connection, keyring: Keyring, n: int, **cols: Any) -> int:
    cols.setdefault("status", "assigned")
    cols.setdefault("title", f"事项{n}")
    cols["content"] = f"来电人{CALLER_NAME}，电话{CALLER_NUMBER}，住{CALLER_ADDRESS}，反映问题{n}"
    cols["case_no"] = f"20260216{n:06d}"
    cols["dialled_number"] = "12345"
    cols["service"] = "hotline"
    names = list(cols)
    case_id: int = await conn.fetchval(
        f"INSERT INTO cases ({', '.join(names)}) VALUES "
        f"({', '.join(f'${i + 1}' for i in range(len(names)))}) RETURNING id",
        *cols.values())
    for field, value in (("caller_number", CALLER_NUMBER), ("name", CALLER_NAME),
                         ("address", CALLER_ADDRESS)):
        if n % 2:
            key_id, blob = keyring.encrypt(value, f"case_personal:{case_id}:{field}".encode())
        else:
            # In clear, as if a bug had stored it so: still never published.
            key_id, blob = "plain", value.encode()
        await conn.execute("INSERT INTO case_personal (case_id, field, key_id, ciphertext)"
                           " VALUES ($1, $2, $3, $4)", case_id, field, key_id, blob)
    return case_id


async def _assign(conn: asyncpg.Connection, case_id: int, unit_id: int, at: datetime,
                  due: datetime | None, *, role: str = "lead", round: int = 1,
                  mode: str = "written", status: str = "assigned",
                  reported_at: datetime | None = None,
                  returned_at: datetime | None = None) -> int:
    aid: int = await conn.fetchval(
        """INSERT INTO assignments (case_id, unit_id, role, mode, round, status, assigned_at,
               due_at, reported_at, returned_at, return_reason)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id""",
        case_id, unit_id, role, mode, round, status, at, due, reported_at, returned_at,
        "不属于本单位职责" if returned_at else None)
    return aid


async def _urge(conn: asyncpg.Connection, case_id: int, unit_id: int, at: datetime) -> None:
    await conn.execute("INSERT INTO urgings (case_id, unit_id, kind, at) VALUES ($1, $2,"
                       " 'auto', $3)", case_id, unit_id, at)


async def _revisit(conn: asyncpg.Connection, case_id: int, round: int, at: datetime,
                   outcome: str) -> None:
    await conn.execute("INSERT INTO revisits (case_id, round, at, outcome) VALUES ($1, $2,"
                       " $3, $4)", case_id, round, at, outcome)


def keyring() -> Keyring:
    return Keyring({"k1": bytes(range(32))}, "k1", bytes(range(1, 33)))


async def seed_week(conn: asyncpg.Connection) -> Week:
    """The scenario of 2026-W08 (see each case's comment for what it tests)."""
    ring = keyring()
    a = await _unit(conn, "U01", "市供电公司", 1)
    b = await _unit(conn, "U02", "市住建局", 1)
    c = await _unit(conn, "U0201", "城东街道办事处", 2, b)
    await _unit(conn, "U03", "市水务集团", 1)  # no activity at all
    cases: dict[int, int] = {}

    # 1: A, received and closed in the week, reported before its deadline, satisfied.
    cases[1] = k = await _case(conn, ring, 1, category="04", status="closed",
                               title="小区电压不稳", public_summary="已更换变压器，电压恢复正常",
                               received_at=t(16, 9), due_at=t(20, 18), lead_unit_id=a,
                               reported_at=t(19, 10), closed_at=t(20, 10), replied=True,
                               satisfaction="satisfied", mode="written")
    await _assign(conn, k, a, t(16, 10), t(20, 18), status="done", reported_at=t(19, 10))
    await _revisit(conn, k, 1, t(20, 9), "satisfied")

    # 2: A, received the week before; round 1 result rejected at the revisit on Monday,
    # re-handled (round 2), reported late, urged once, closed without a reply.
    cases[2] = k = await _case(conn, ring, 2, category="04", status="closed", round=2,
                               received_at=t(9, 9), due_at=t(18, 18), lead_unit_id=a,
                               reported_at=t(19, 15), closed_at=t(20, 12),
                               rehandle_count=1, urge_count=1, satisfaction="satisfied")
    await _assign(conn, k, a, t(9, 10), t(13, 18), status="done", reported_at=t(12, 10))
    await _revisit(conn, k, 1, t(16, 9), "unsatisfied")
    await _assign(conn, k, a, t(16, 10), t(18, 18), round=2, status="done",
                  reported_at=t(19, 15))
    await _urge(conn, k, a, t(19, 9))
    await _revisit(conn, k, 2, t(20, 11), "satisfied")

    # 3: B leads, C co-handles; past its deadline (17th 18:00) at the end of the week,
    # urged twice in the week and once after it: on the public-criticism list.
    cases[3] = k = await _case(conn, ring, 3, category="02", status="accepted",
                               title="楼道积水无人处理", received_at=t(10, 9),
                               due_at=t(17, 18), lead_unit_id=b, urge_count=3)
    await _assign(conn, k, b, t(10, 10), t(17, 18), status="accepted")
    await _assign(conn, k, c, t(10, 10), t(17, 18), role="co", status="accepted")
    await _urge(conn, k, b, t(18, 9))
    await _urge(conn, k, b, t(20, 9))
    await _urge(conn, k, b, t(24, 9))

    # 4: received in the week, assigned to C, returned by C, reassigned to B (a new round,
    # but not a re-handling: C reported nothing).
    cases[4] = k = await _case(conn, ring, 4, category="05", received_at=t(17, 9),
                               due_at=t(25, 18), lead_unit_id=b, return_count=1, round=2)
    await _assign(conn, k, c, t(17, 10), t(24, 18), status="returned", returned_at=t(18, 10))
    await _assign(conn, k, b, t(18, 15), t(25, 18), round=2)

    # 5: A, urgent (no deadline), closed in the week, caller unreachable at the revisit.
    cases[5] = k = await _case(conn, ring, 5, category="04", status="closed", mode="urgent",
                               received_at=t(21, 8), lead_unit_id=a, reported_at=t(21, 12),
                               closed_at=t(22, 9), replied=True)
    await _assign(conn, k, a, t(21, 8, 30), None, mode="urgent", status="done",
                  reported_at=t(21, 12))
    await _revisit(conn, k, 1, t(22, 8), "unreachable")

    # 6: not a valid case; 7: a repeat request merged into case 1. Neither counts.
    cases[6] = await _case(conn, ring, 6, category="01", status="invalid",
                           received_at=t(18, 9), invalid_reason="骚扰电话")
    cases[7] = k = await _case(conn, ring, 7, category="04", status="merged",
                               received_at=t(19, 9), parent_case_id=cases[1])
    await _urge(conn, k, a, t(19, 10))

    # 8: B, urged twice the week before, but reported on time on the 18th: handled, so
    # neither overdue nor criticised, though the hotline has not closed it yet.
    cases[8] = k = await _case(conn, ring, 8, category="02", status="reported",
                               received_at=t(11, 9), due_at=t(18, 18), lead_unit_id=b,
                               reported_at=t(18, 10), urge_count=2)
    await _assign(conn, k, b, t(11, 10), t(18, 18), status="reported", reported_at=t(18, 10))
    await _urge(conn, k, b, t(12, 9))
    await _urge(conn, k, b, t(13, 9))

    # 9: answered on the call and closed at once (no unit).
    cases[9] = await _case(conn, ring, 9, category="03", status="closed",
                           public_summary="已解答办事流程", received_at=t(16, 11),
                           closed_at=t(16, 11, 10), replied=True)

    # 10: A, deadline the 16th, extended to the 19th; reported on the 19th: on time.
    cases[10] = k = await _case(conn, ring, 10, category="04", status="closed",
                                received_at=t(12, 9), due_at=t(19, 18), lead_unit_id=a,
                                reported_at=t(19, 10), closed_at=t(20, 15), replied=True,
                                satisfaction="satisfied")
    aid = await _assign(conn, k, a, t(12, 10), t(16, 18), status="done",
                        reported_at=t(19, 10))
    await conn.execute(
        """INSERT INTO extensions (assignment_id, case_id, asked_at, reason, days, status,
               decided_at, new_due_at)
           VALUES ($1, $2, $3, '需协调多个部门', 3, 'approved', $4, $5)""",
        aid, k, t(15, 9), t(15, 12), t(19, 18))
    await _revisit(conn, k, 1, t(20, 14), "satisfied")

    # 11: A, received in the week, closed exactly at the end of the week: next week's.
    cases[11] = k = await _case(conn, ring, 11, category="04", status="closed",
                                received_at=t(20, 9), due_at=t(27, 18), lead_unit_id=a,
                                reported_at=t(22, 10), closed_at=WEEK_END, replied=True)
    await _assign(conn, k, a, t(20, 10), t(27, 18), status="done", reported_at=t(22, 10))

    # 12: B, received in the week; its result rejected at the hotline's review (no
    # revisit): re-handled in round 2, due after the week.
    cases[12] = k = await _case(conn, ring, 12, category="02", received_at=t(16, 8),
                                due_at=t(25, 18), lead_unit_id=b, round=2, rehandle_count=1)
    await _assign(conn, k, b, t(16, 8, 30), t(20, 18), status="done", reported_at=t(17, 9))
    await _assign(conn, k, b, t(18, 10), t(25, 18), round=2)

    case_no = {n: f"20260216{n:06d}" for n in cases}
    return Week(units={"A": a, "B": b, "C": c}, cases=cases, case_no=case_no)


def _counts(f: Figures) -> dict[str, int]:
    names = ("received", "assigned", "closed", "closed_on_time", "closed_late",
             "overdue_open", "overdue", "urgings", "rehandlings", "returns", "revisits",
             "satisfied", "unsatisfied", "replied")
    return {n: getattr(f, n) for n in names}


ZERO = {n: 0 for n in ("received", "assigned", "closed", "closed_on_time", "closed_late",
                       "overdue_open", "overdue", "urgings", "rehandlings", "returns",
                       "revisits", "satisfied", "unsatisfied", "replied")}


async def test_unit_figures_of_the_week(conn: asyncpg.Connection) -> None:
    w = await seed_week(conn)
    rows = await stats.unit_figures(conn, WEEK_START, WEEK_END)
    by_code = {r.unit_code: r for r in rows}
    assert [r.unit_code for r in rows] == ["U01", "U02", "U03", "U0201"]

    a = by_code["U01"]
    assert (a.unit_id, a.unit_name, a.level) == (w.units["A"], "市供电公司", 1)
    # received: cases 1, 5, 11; assigned: 1, 2 (round 2), 5, 11; closed: 1, 2, 5, 10
    # (11 closed at the very end belongs to next week); late: 2; urged: 2 (the merged
    # case's urging does not count); re-handled: 2; revisits: 1, 2 x2, 5, 10.
    assert _counts(a) == {
        "received": 3, "assigned": 4, "closed": 4, "closed_on_time": 3, "closed_late": 1,
        "overdue_open": 0, "overdue": 1, "urgings": 1, "rehandlings": 1, "returns": 0,
        "revisits": 5, "satisfied": 3, "unsatisfied": 1, "replied": 3}
    assert a.on_time_rate == 0.75
    assert a.satisfaction_rate == 0.75  # the unreachable revisit is not in the rate
    assert a.reply_rate == 0.75

    b = by_code["U02"]
    # received: cases 4 (reassigned to B) and 12; assigned: 4, 12 twice; overdue: case 3;
    # urged twice in the week; case 12 re-handled after review.
    assert _counts(b) == {**ZERO, "received": 2, "assigned": 3, "overdue_open": 1,
                          "overdue": 1, "urgings": 2, "rehandlings": 1}
    assert b.on_time_rate == 0.0  # its one case due was not met
    assert b.satisfaction_rate is None and b.reply_rate is None

    c = by_code["U0201"]
    assert (c.level, c.parent_id) == (2, w.units["B"])
    assert _counts(c) == {**ZERO, "received": 1, "assigned": 1, "returns": 1}
    assert c.on_time_rate is None and c.satisfaction_rate is None and c.reply_rate is None

    assert _counts(by_code["U03"]) == ZERO
    assert not by_code["U03"].any_activity()

    (only_b,) = await stats.unit_figures(conn, WEEK_START, WEEK_END, unit_id=w.units["B"])
    assert only_b == b


async def test_the_period_matters(conn: asyncpg.Connection) -> None:
    w = await seed_week(conn)
    # The week before: case 2's round 1 was reported on the 12th (due the 13th) and
    # case 8's urgings were then; cases 2, 10 were received then.
    before = await stats.unit_figures(conn, WEEK_START - timedelta(days=7), WEEK_START)
    by_id = {r.unit_id: r for r in before}
    a, b = by_id[w.units["A"]], by_id[w.units["B"]]
    assert (a.received, a.assigned, a.closed, a.overdue_open) == (2, 2, 0, 0)
    # At the end of that week case 10 (due the 16th after nothing) was not yet late, and
    # case 2 had been reported on time.
    assert (b.received, b.assigned, b.urgings, b.overdue_open) == (2, 2, 2, 0)
    # Case 11 closed at 00:00 on the 23rd is the next week's.
    (a_next,) = await stats.unit_figures(conn, WEEK_END, WEEK_END + timedelta(days=7),
                                         unit_id=w.units["A"])
    assert (a_next.closed, a_next.closed_on_time, a_next.replied) == (1, 1, 1)


async def test_category_figures_of_the_week(conn: asyncpg.Connection) -> None:
    await seed_week(conn)
    rows = await stats.category_figures(conn, WEEK_START, WEEK_END)
    by_code = {r.code: r for r in rows}
    # In the tree's order; no '01' (only an invalid case) and the merged case 7 is not
    # among '04''s received.
    assert [r.code for r in rows] == ["02", "03", "04", "05"]
    assert by_code["04"].name == "直接关系群众生活的问题及突发事件处置"
    assert _counts(by_code["04"]) == {
        "received": 3, "assigned": 4, "closed": 4, "closed_on_time": 3, "closed_late": 1,
        "overdue_open": 0, "overdue": 1, "urgings": 1, "rehandlings": 1, "returns": 0,
        "revisits": 5, "satisfied": 3, "unsatisfied": 1, "replied": 3}
    assert _counts(by_code["02"]) == {**ZERO, "received": 1, "assigned": 1, "overdue_open": 1,
                                      "overdue": 1, "urgings": 2, "rehandlings": 1}
    assert _counts(by_code["03"]) == {**ZERO, "received": 1, "closed": 1,
                                      "closed_on_time": 1, "replied": 1}
    assert by_code["03"].reply_rate == 1.0 and by_code["03"].on_time_rate == 1.0
    # case 4: one case, two assignments (C then B), one return.
    assert _counts(by_code["05"]) == {**ZERO, "received": 1, "assigned": 1, "returns": 1}


async def test_a_case_with_no_category_is_uncategorised(conn: asyncpg.Connection) -> None:
    await _case(conn, keyring(), 1, received_at=t(17, 9), status="pending")
    (row,) = await stats.category_figures(conn, WEEK_START, WEEK_END)
    assert (row.code, row.name, row.received) == (None, "未分类", 1)


async def test_categories_come_in_the_tree_order(conn: asyncpg.Connection) -> None:
    for n, code in enumerate(("05", "0402", "04", "0201"), 1):
        await _case(conn, keyring(), n, category=code, received_at=t(17, 9), status="pending")
    rows = await stats.category_figures(conn, WEEK_START, WEEK_END)
    assert [(r.code, r.parent, r.received) for r in rows] == [
        ("0201", "02", 1), ("04", None, 1), ("0402", "04", 1), ("05", None, 1)]


async def test_closed_cases_and_urged_open_cases(conn: asyncpg.Connection) -> None:
    w = await seed_week(conn)
    closed = await stats.closed_cases(conn, WEEK_START, WEEK_END)
    assert [c.case_no for c in closed] == [w.case_no[n] for n in (9, 1, 2, 10, 5)]
    assert [c.on_time for c in closed] == [True, True, False, True, True]
    one = closed[1]
    assert (one.title, one.public_summary, one.category_name, one.unit_name,
            one.satisfaction) == ("小区电压不稳", "已更换变压器，电压恢复正常",
                                  "直接关系群众生活的问题及突发事件处置", "市供电公司",
                                  "satisfied")
    assert closed[0].unit_name is None  # answered on the call

    (urged,) = await stats.urged_open_cases(conn, WEEK_END)
    assert (urged.case_no, urged.unit_name, urged.urgings, urged.days_overdue) == \
        (w.case_no[3], "市住建局", 2, 5)  # 17th 18:00 -> 23rd 00:00 is 5 days 6 hours
    assert await stats.urged_open_cases(conn, WEEK_END, 3) == []
    # A week later the third urging counts too.
    (later,) = await stats.urged_open_cases(conn, WEEK_END + timedelta(days=7), 3)
    assert (later.urgings, later.days_overdue) == (3, 12)


async def test_periods_must_be_aware_and_not_empty(conn: asyncpg.Connection) -> None:
    with pytest.raises(ValueError, match="time zone"):
        await stats.unit_figures(conn, datetime(2026, 2, 16), WEEK_END)
    with pytest.raises(ValueError, match="start before it ends"):
        await stats.category_figures(conn, WEEK_END, WEEK_START)
    with pytest.raises(ValueError, match="no unit with id 999"):
        await stats.unit_figures(conn, WEEK_START, WEEK_END, unit_id=999)


# -- assessment ------------------------------------------------------------------------


async def test_assessment_scores_of_the_week(conn: asyncpg.Connection) -> None:
    await seed_week(conn)
    rows = {r.unit_code: r for r in await stats.unit_figures(conn, WEEK_START, WEEK_END)}
    # A: every rate 75 % -> 75; minus 1 urging x1, 1 re-handling x2, 1 overdue x2 = 70.
    assert assessment_score(rows["U01"]) == pytest.approx(70.0)
    # B: on-time 0 % is its only measurable rate -> 0; minus penalties, clamped at 0.
    assert assessment_score(rows["U02"]) == 0.0
    # C: nothing measurable -> 100; minus 1 return x1.
    assert assessment_score(rows["U0201"]) == pytest.approx(99.0)
    assert assessment_score(rows["U03"]) == 100.0
    # A formula that only counts satisfaction and urgings at 5 points each.
    f = AssessmentFormula.from_mapping({"on_time_weight": 0, "reply_weight": 0,
                                        "satisfaction_weight": 100, "urging_penalty": 5,
                                        "rehandling_penalty": 0, "overdue_penalty": 0})
    assert assessment_score(rows["U01"], f) == pytest.approx(75.0 - 5.0)


def test_default_formula_weights_add_up_to_100() -> None:
    f = AssessmentFormula()
    assert f.total_weight == 100.0
    perfect = Figures(closed=10, closed_on_time=10, replied=10, revisits=10, satisfied=10)
    assert assessment_score(perfect, f) == 100.0


def test_scores_are_clamped_to_100() -> None:
    f = AssessmentFormula.from_mapping({"on_time_weight": 80, "satisfaction_weight": 80})
    perfect = Figures(closed=1, closed_on_time=1, replied=1, revisits=1, satisfied=1)
    assert assessment_score(perfect, f) == 100.0


def test_rates_are_none_not_a_division_by_zero() -> None:
    empty = Figures()
    assert (empty.on_time_rate, empty.satisfaction_rate, empty.reply_rate) == \
        (None, None, None)
    # Only unreachable revisits: still no satisfaction rate.
    assert Figures(revisits=3).satisfaction_rate is None


@pytest.mark.parametrize(("mapping", "message"), [
    ({"on_time": 40}, "unknown assessment setting 'on_time'"),
    ({"urging_penalty": "2"}, "'urging_penalty' must be a number"),
    ({"urging_penalty": True}, "'urging_penalty' must be a number"),
    ({"reply_weight": float("nan")}, "'reply_weight' must be a number"),
    ({"return_penalty": -1}, "'return_penalty' cannot be negative"),
    ({"on_time_weight": 0, "satisfaction_weight": 0, "reply_weight": 0}, "add up to 0"),
])
def test_bad_formulas_are_refused_in_plain_words(mapping: dict[str, Any],
                                                 message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AssessmentFormula.from_mapping(mapping)


def test_a_formula_from_a_mapping_keeps_other_defaults() -> None:
    f = AssessmentFormula.from_mapping({"overdue_penalty": 5, "reply_weight": 10.5})
    assert f == AssessmentFormula(overdue_penalty=5.0, reply_weight=10.5)


# -- the same figures from cases driven through the real workflow ------------------------


class _Days:
    """Deadlines in plain days (the official calendar is casework.calendar's business)."""

    def add_working_days(self, received: datetime, days: int) -> datetime:
        return received + timedelta(days=days)

    def is_working_day(self, d: Any) -> bool:
        return True


async def _actor(conn: asyncpg.Connection, login: str, role: str,
                 unit_id: int | None = None) -> wf.Actor:
    agent_id = await conn.fetchval(
        "INSERT INTO agents (login, display_name, role, unit_id) VALUES ($1, $1, $2, $3)"
        " RETURNING id", login, role, unit_id)
    return wf.Actor(agent_id, role, unit_id)


async def test_figures_of_cases_driven_through_the_workflow(conn: asyncpg.Connection) -> None:
    days, rules = _Days(), wf.Rules(written_days=2)
    valid = dict.fromkeys(wf.VALIDITY_CRITERIA, True)
    p = await _unit(conn, "P", "市供电公司", 1)
    q = await _unit(conn, "Q", "市住建局", 1)
    agent = await _actor(conn, "agent1", "agent")
    hp = await _actor(conn, "hp", "handler", p)
    hq = await _actor(conn, "hq", "handler", q)

    async def new_case(when: datetime) -> int:
        row = await case_store.create(conn, keyring(), call_id=None, dialled_number="12345",
                                      service="hotline", caller_number=CALLER_NUMBER)
        await conn.execute("UPDATE cases SET created_at = $2, content = $3 WHERE id = $1",
                           row["id"], when, f"{CALLER_NAME}反映电压低")
        await wf.register(conn, row["id"], agent, when, title="电压低", category="0402",
                          validity=valid)
        case_id: int = row["id"]
        return case_id

    async def lead_of(case_id: int, unit_id: int) -> int:
        aid: int = await conn.fetchval(
            "SELECT id FROM assignments WHERE case_id = $1 AND unit_id = $2 AND round ="
            " (SELECT round FROM cases WHERE id = $1)", case_id, unit_id)
        return aid

    # Case 1: P leads, Q co-handles; P reports late (urged once), the caller is not
    # satisfied, P re-handles in round 2 on time and the caller is satisfied.
    one = await new_case(t(16, 9))
    await wf.assign(conn, one, agent, t(16, 10), days, rules, lead_unit=p, co_units=[q])
    await wf.accept(conn, await lead_of(one, p), hp, t(16, 11))
    await wf.accept(conn, await lead_of(one, q), hq, t(16, 11))
    await wf.urge(conn, one, wf.SYSTEM, t(18, 11))
    await wf.report_result(conn, await lead_of(one, p), hp, t(18, 12), result="已处理",
                           reply="已告知", replied=True)
    await wf.review(conn, one, agent, t(18, 13), days, rules, approve=True)
    await wf.revisit(conn, one, agent, t(18, 15), days, rules, outcome="unsatisfied",
                     note="仍然电压低")
    await wf.accept(conn, await lead_of(one, p), hp, t(19, 9))
    await wf.report_result(conn, await lead_of(one, p), hp, t(20, 10), result="已更换变压器",
                           reply="已告知", replied=True)
    await wf.review(conn, one, agent, t(20, 11), days, rules, approve=True,
                    public_summary="已更换变压器")
    await wf.revisit(conn, one, agent, t(20, 16), days, rules, outcome="satisfied")

    # Case 2: Q returns it, it is reassigned to P (a new round, not a re-handling), P lets
    # it slip past its deadline and is urged twice.
    two = await new_case(t(17, 9))
    await wf.assign(conn, two, agent, t(17, 10), days, rules, lead_unit=q)
    await wf.return_case(conn, await lead_of(two, q), hq, t(17, 11), "不属于本单位职责")
    await wf.assign(conn, two, agent, t(17, 12), days, rules, lead_unit=p)
    await wf.urge(conn, two, wf.SYSTEM, t(20, 9))
    await wf.urge(conn, two, wf.SYSTEM, t(21, 9))

    rows = {r.unit_code: r for r in await stats.unit_figures(conn, WEEK_START, WEEK_END)}
    assert _counts(rows["P"]) == {
        "received": 2, "assigned": 3, "closed": 1, "closed_on_time": 1, "closed_late": 0,
        "overdue_open": 1, "overdue": 1, "urgings": 3, "rehandlings": 1, "returns": 0,
        "revisits": 2, "satisfied": 1, "unsatisfied": 1, "replied": 1}
    assert _counts(rows["Q"]) == {**ZERO, "received": 2, "assigned": 3, "returns": 1}
    # P: on time 1 / (1 closed + 1 overdue), satisfaction 1/2, reply 1/1 ->
    # 100 x (40 x .5 + 40 x .5 + 20 x 1) / 100 = 60, minus 3 + 2 + 2 = 53.
    assert assessment_score(rows["P"]) == pytest.approx(53.0)
    (cat,) = await stats.category_figures(conn, WEEK_START, WEEK_END)
    assert (cat.code, cat.parent, cat.received, cat.closed, cat.rehandlings, cat.returns) == \
        ("0402", "04", 2, 1, 1, 1)
    (urged,) = await stats.urged_open_cases(conn, WEEK_END)
    assert (urged.unit_name, urged.urgings, urged.days_overdue) == ("市供电公司", 2, 3)


def test_the_yaml_knows_every_assessment_setting() -> None:
    from dataclasses import fields

    from casework.stats import AssessmentFormula
    from dialplan.config import ASSESSMENT_SETTINGS

    assert set(ASSESSMENT_SETTINGS) == {f.name for f in fields(AssessmentFormula)}
