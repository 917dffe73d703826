"""The whole life of a case on a real PostgreSQL, with a controlled clock: intake over the
2026 Spring Festival, a unit that returns it, reassignment to a lead and a co-handling
unit, an extension, automatic urging, the public-criticism list, re-handling after an
unsatisfied revisit, a merged repeat request, archive, and the audit trail."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from casework import calendar, urging, views
from casework import workflow as wf
from casework.workflow import Actor, Rules, WorkflowError
from db import cases as case_store
from db.crypto import Keyring

CN = ZoneInfo("Asia/Shanghai")
RULES = Rules()
CALLER = "13937760001"
VALID = dict.fromkeys(wf.VALIDITY_CRITERIA, True)


def at(text: str) -> datetime:
    """A moment in Beijing time: '2026-02-13 10:00'."""
    return datetime.fromisoformat(text).replace(tzinfo=CN)


def keyring() -> Keyring:
    return Keyring({"k1": os.urandom(32)}, "k1", os.urandom(32))


async def _unit(conn: asyncpg.Connection, code: str, name: str) -> int:
    unit_id: int = await conn.fetchval(
        "INSERT INTO units (code, name, level) VALUES ($1, $2, 1) RETURNING id", code, name)
    return unit_id


async def _user(conn: asyncpg.Connection, login: str, role: str,
                unit_id: int | None = None) -> Actor:
    agent_id = await conn.fetchval(
        "INSERT INTO agents (login, display_name, role, unit_id) VALUES ($1, $1, $2, $3) "
        "RETURNING id", login, role, unit_id)
    return Actor(agent_id, role, unit_id)


async def _new_case(conn: asyncpg.Connection, keys: Keyring, when: datetime) -> int:
    row = await case_store.create(conn, keys, call_id=None, dialled_number="12345",
                                  service="hotline", caller_number=CALLER)
    await conn.execute("UPDATE cases SET created_at = $2, content = $3 WHERE id = $1",
                       row["id"], when, "小区电压只有125伏，电器无法使用")
    await case_store.update(conn, keys, row["id"], {"name": "李明", "address": "卧龙区某小区"})
    case_id: int = row["id"]
    return case_id


async def _status(conn: asyncpg.Connection, case_id: int) -> str:
    return str(await conn.fetchval("SELECT status FROM cases WHERE id = $1", case_id))


async def _lead(conn: asyncpg.Connection, case_id: int, unit_id: int) -> int:
    aid: int = await conn.fetchval(
        "SELECT id FROM assignments WHERE case_id = $1 AND unit_id = $2 "
        "AND round = (SELECT round FROM cases WHERE id = $1)", case_id, unit_id)
    return aid


async def test_the_life_of_a_case(conn: asyncpg.Connection) -> None:
    await calendar.seed_from_package(conn)
    cal = await calendar.load(conn)
    keys = keyring()
    power = await _unit(conn, "L1-01", "国网南阳供电公司")
    district = await _unit(conn, "L1-02", "宛城区人民政府")
    housing = await _unit(conn, "L1-03", "市住房和城乡建设局")
    agent = await _user(conn, "agent1", "agent")
    lead = await _user(conn, "lead1", "supervisor")
    h_power = await _user(conn, "h_power", "handler", power)
    h_district = await _user(conn, "h_district", "handler", district)
    h_housing = await _user(conn, "h_housing", "handler", housing)

    # Friday before the Spring Festival: the call is taken and registered.
    case = await _new_case(conn, keys, at("2026-02-13 10:00"))
    await wf.register(conn, case, agent, at("2026-02-13 10:05"), title="小区电压过低",
                      category="04", validity=VALID)
    # Written assignment: 7 working days from the working day after receipt, across the
    # holiday (Feb 15-23) and both working Saturdays (Feb 14, Feb 28): Feb 14, 24, 25,
    # 26, 27, 28, Mar 2 -> due at the end of Monday 2 March.
    due = await wf.assign(conn, case, agent, at("2026-02-13 10:10"), cal, RULES,
                          lead_unit=district, mode="written")
    assert due == at("2026-03-03 00:00")

    # The district is not responsible: it returns the case on the working Saturday.
    # A handler of another unit cannot touch that assignment, nor see the case.
    a_district = await _lead(conn, case, district)
    with pytest.raises(WorkflowError) as e:
        await wf.return_case(conn, a_district, h_power, at("2026-02-14 09:00"), "不是我们的")
    assert e.value.code == "not_found"
    with pytest.raises(WorkflowError):
        await views.case_detail(conn, keys, h_power, case, at("2026-02-14 09:00"))
    await wf.return_case(conn, a_district, h_district, at("2026-02-14 09:30"),
                         "供电线路属供电公司管理")
    assert await _status(conn, case) == "returned"

    # After the holiday the hotline reassigns it: power company leads, housing co-handles.
    due = await wf.assign(conn, case, agent, at("2026-02-24 09:00"), cal, RULES,
                          lead_unit=power, co_units=[housing], mode="written")
    # Feb 25, 26, 27, 28 (Saturday, a working day), Mar 2, 3, 4.
    assert due == at("2026-03-05 00:00")
    assert await conn.fetchval("SELECT status FROM assignments WHERE id = $1",
                               a_district) == "returned"
    # The district, having returned it, no longer sees the case or its caller.
    assert await views.list_cases(conn, h_district, at("2026-02-24 09:01")) == []
    a_power, a_housing = await _lead(conn, case, power), await _lead(conn, case, housing)
    await wf.accept(conn, a_power, h_power, at("2026-02-24 10:00"))
    await wf.accept(conn, a_housing, h_housing, at("2026-02-24 11:00"))
    assert await _status(conn, case) == "accepted"

    # A repeat call from the same citizen is found through the blind index and merged.
    repeat = await _new_case(conn, keys, at("2026-02-26 15:00"))
    earlier = await views.earlier_cases(conn, keys, agent, repeat, at("2026-02-26 15:01"))
    assert [c["id"] for c in earlier] == [case]
    await wf.merge(conn, repeat, case, agent, at("2026-02-26 15:02"))
    assert await conn.fetchval("SELECT parent_case_id FROM cases WHERE id = $1", repeat) == case

    # More time, asked before the deadline and approved: two more working days.
    ext = await wf.request_extension(conn, a_power, h_power, at("2026-03-03 16:00"), RULES,
                                     reason="需更换变压器，等待设备到货", days=2)
    # While the request waits, the deadline passes: no automatic urging yet.
    assert await urging.run_due_urgings(conn, at("2026-03-05 09:00"), cal) == []
    new_due = await wf.decide_extension(conn, ext, lead, at("2026-03-05 10:00"), cal,
                                        approve=True)
    assert new_due == at("2026-03-07 00:00")  # Thursday 5 and Friday 6 March

    # Still no result: the scheduled job urges once per working day late.
    assert await urging.run_due_urgings(conn, at("2026-03-06 18:00"), cal) == []
    assert await urging.run_due_urgings(conn, at("2026-03-07 10:00"), cal) == []  # Saturday
    assert await urging.run_due_urgings(conn, at("2026-03-08 10:00"), cal) == []  # Sunday
    assert await urging.run_due_urgings(conn, at("2026-03-09 09:00"), cal) == [case]
    assert await urging.run_due_urgings(conn, at("2026-03-09 15:00"), cal) == []
    assert await urging.run_due_urgings(conn, at("2026-03-10 08:00"), cal) == [case]
    await wf.urge(conn, case, lead, at("2026-03-10 08:30"), note="电话催办")
    criticised = await urging.criticism_list(conn, at("2026-03-10 09:00"))
    assert [(c.case_no, c.unit, c.urgings) for c in criticised] == [
        (await conn.fetchval("SELECT case_no FROM cases WHERE id = $1", case),
         "国网南阳供电公司", 3)]
    assert await conn.fetchval("SELECT count(*) FROM urgings WHERE case_id = $1 "
                               "AND kind = 'auto'", case) == 2

    # Results: the co-handling unit's part, then the lead unit's (late), reply recorded.
    await wf.report_result(conn, a_housing, h_housing, at("2026-03-10 09:00"),
                           result="已配合核查线路", reply="", replied=False)
    assert await _status(conn, case) == "accepted"
    await wf.report_result(conn, a_power, h_power, at("2026-03-10 10:00"),
                           result="已更换变压器，电压恢复正常", reply="已电话告知来电人",
                           replied=True)
    assert await _status(conn, case) == "reported"
    await wf.review(conn, case, agent, at("2026-03-10 11:00"), cal, RULES, approve=True,
                    public_summary="供电公司更换变压器，电压恢复正常")
    # The citizen is not satisfied: the case goes back to both units, counted.
    await wf.revisit(conn, case, agent, at("2026-03-11 09:00"), cal, RULES,
                     outcome="unsatisfied", note="晚间电压仍偏低")
    assert await _status(conn, case) == "assigned"
    row = await conn.fetchrow("SELECT * FROM cases WHERE id = $1", case)
    assert (row["rehandle_count"], row["round"]) == (1, 3)
    # Mar 12, 13, 16, 17, 18, 19, 20.
    assert row["due_at"] == at("2026-03-21 00:00")
    assert {(r["unit_id"], r["role"]) for r in await conn.fetch(
        "SELECT unit_id, role FROM assignments WHERE case_id = $1 AND round = 3", case)} == {
        (power, "lead"), (housing, "co")}

    # Re-handled in time; satisfied; closed and archived.
    a_power = await _lead(conn, case, power)
    await wf.report_result(conn, a_power, h_power, at("2026-03-13 10:00"),
                           result="增设配电线路，晚间电压正常", reply="已上门告知", replied=True)
    await wf.review(conn, case, agent, at("2026-03-13 11:00"), cal, RULES, approve=True)
    await wf.revisit(conn, case, agent, at("2026-03-16 09:00"), cal, RULES,
                     outcome="satisfied")
    assert await _status(conn, case) == "closed"
    with pytest.raises(WorkflowError):
        await wf.urge(conn, case, lead, at("2026-03-16 10:00"))
    await wf.archive(conn, case, agent, at("2026-03-17 09:00"))
    row = await conn.fetchrow("SELECT * FROM cases WHERE id = $1", case)
    assert (row["status"], row["satisfaction"], row["urge_count"], row["return_count"]) == (
        "archived", "satisfied", 3, 1)

    # The audit trail tells the story, in order, and carries no personal data.
    trail = await conn.fetch("SELECT action, actor_id, detail::text AS d FROM case_events "
                             "WHERE case_id = $1 ORDER BY id", case)
    assert [r["action"] for r in trail] == [
        "registered", "assigned", "returned", "reassigned", "accepted", "accepted",
        "merged_from", "extension_requested", "extension_approved", "urged", "urged", "urged",
        "result_reported", "result_reported", "result_approved", "revisited", "sent_back",
        "result_reported", "result_approved", "revisited", "archived"]
    assert trail[9]["actor_id"] is None  # the scheduler's urging
    for r in trail:
        assert CALLER not in r["d"] and "李明" not in r["d"]


async def test_handlers_see_only_their_units_cases(conn: asyncpg.Connection) -> None:
    cal = calendar.WorkCalendar()
    keys = keyring()
    a, b = await _unit(conn, "A", "甲单位"), await _unit(conn, "B", "乙单位")
    agent = await _user(conn, "agent1", "agent")
    ha, hb = await _user(conn, "ha", "handler", a), await _user(conn, "hb", "handler", b)
    admin = await _user(conn, "admin", "admin")
    now = at("2026-04-01 10:00")
    mine, theirs = await _new_case(conn, keys, now), await _new_case(conn, keys, now)
    for case, unit in ((mine, a), (theirs, b)):
        await wf.register(conn, case, agent, now, title="事项", category="05", validity=VALID)
        await wf.assign(conn, case, agent, now, cal, RULES, lead_unit=unit)
    assert [c["id"] for c in await views.list_cases(conn, ha, now)] == [mine]
    assert [c["id"] for c in await views.list_cases(conn, hb, now)] == [theirs]
    assert {c["id"] for c in await views.list_cases(conn, agent, now)} == {mine, theirs}
    with pytest.raises(WorkflowError):
        await views.list_cases(conn, admin, now)
    # The detail masks personal fields; revealing one is allowed to the unit handling the
    # case, with a reason, and written to the audit trail.
    detail = await views.case_detail(conn, keys, ha, mine, now)
    assert detail["personal"]["caller_number"] == "139****0001"
    assert "trail" not in detail  # the hotline's internal trail is not shown to units
    with pytest.raises(WorkflowError):
        await views.reveal(conn, keys, ha, theirs, "caller_number", "回复来电人", now)
    assert await views.reveal(conn, keys, ha, mine, "caller_number", "回复来电人",
                              now) == CALLER
    ev = await conn.fetchrow("SELECT * FROM case_events WHERE action = 'personal_revealed'")
    assert (ev["case_id"], ev["actor_id"]) == (mine, ha.id)
    assert json.loads(ev["detail"]) == {"field": "caller_number", "reason": "回复来电人"}
    # Accepting someone else's assignment is refused as if it did not exist.
    other = await _lead(conn, theirs, b)
    with pytest.raises(WorkflowError) as e:
        await wf.accept(conn, other, ha, now)
    assert e.value.code == "not_found"


async def test_reveals_are_throttled_and_a_burst_is_written_for_the_auditor(
        conn: asyncpg.Connection) -> None:
    cal = calendar.WorkCalendar()
    keys = keyring()
    unit = await _unit(conn, "A", "甲单位")
    agent = await _user(conn, "agent1", "agent")
    handler = await _user(conn, "ha", "handler", unit)
    now = at("2026-04-01 10:00")
    case = await _new_case(conn, keys, now)
    await wf.register(conn, case, agent, now, title="事项", category="05", validity=VALID)
    await wf.assign(conn, case, agent, now, cal, RULES, lead_unit=unit)
    # A burst: the REVEAL_BURST-th within ten minutes is written down, once.
    for i in range(views.REVEAL_BURST + 1):
        assert await views.reveal(conn, keys, handler, case, "caller_number", "回复来电人",
                                  now + timedelta(seconds=i)) == CALLER
    bursts = await conn.fetch("SELECT * FROM case_events WHERE action = 'reveal_burst'")
    assert [(b["actor_id"], b["case_id"]) for b in bursts] == [(handler.id, case)]
    # The hourly cap: refused in words (429 at the desk), nothing revealed or recorded.
    later = now + timedelta(minutes=30)
    for _ in range(views.REVEALS_PER_HOUR - views.REVEAL_BURST - 1):
        await views.reveal(conn, keys, handler, case, "name", "核实", later)
    before = await conn.fetchval("SELECT count(*) FROM case_events")
    with pytest.raises(WorkflowError) as e:
        await views.reveal(conn, keys, handler, case, "caller_number", "回复来电人", later)
    assert e.value.code == "rate_limited" and "一小时内" in str(e.value)
    assert await conn.fetchval("SELECT count(*) FROM case_events") == before
    # Another person is not held back by it, and the hour passes.
    assert await views.reveal(conn, keys, agent, case, "caller_number", "回访", later)
    assert await views.reveal(conn, keys, handler, case, "caller_number", "回复来电人",
                              now + timedelta(minutes=61)) == CALLER


async def test_invalid_calls_and_answers_on_the_call(conn: asyncpg.Connection) -> None:
    keys = keyring()
    agent = await _user(conn, "agent1", "agent")
    now = at("2026-05-06 10:00")
    prank = await _new_case(conn, keys, now)
    with pytest.raises(WorkflowError, match="不符合受理条件"):
        await wf.register(conn, prank, agent, now, title="x", category="05",
                          validity={**VALID, "real_identity": False})
    await wf.mark_invalid(conn, prank, agent, now, "来电人拒绝提供真实信息且反映对象不明确")
    row = await conn.fetchrow("SELECT * FROM cases WHERE id = $1", prank)
    assert (row["status"], row["invalid_reason"]) == (
        "invalid", "来电人拒绝提供真实信息且反映对象不明确")
    assert await conn.fetchval("SELECT count(*) FROM case_personal WHERE case_id = $1",
                               prank) == 0
    assert await views.list_cases(conn, agent, now) == []

    question = await _new_case(conn, keys, now)
    await wf.close_at_intake(conn, question, agent, now, title="公积金提取条件",
                             category="03", answer="购房、租房等情形可申请提取，请携带身份证办理")
    row = await conn.fetchrow("SELECT * FROM cases WHERE id = $1", question)
    assert (row["status"], row["closed_at"], row["replied"]) == ("closed", now, True)
    listed = await views.list_cases(conn, agent, now, which="closed")
    assert [c["id"] for c in listed] == [question]


async def test_an_extension_must_be_asked_before_the_deadline(conn: asyncpg.Connection) -> None:
    cal = calendar.WorkCalendar()
    keys = keyring()
    unit = await _unit(conn, "A", "甲单位")
    agent, handler = await _user(conn, "agent1", "agent"), await _user(conn, "h", "handler", unit)
    now = at("2026-06-01 10:00")  # Monday
    case = await _new_case(conn, keys, now)
    await wf.register(conn, case, agent, now, title="事项", category="05", validity=VALID)
    due = await wf.assign(conn, case, agent, now, cal, RULES, lead_unit=unit, mode="phone")
    assert due == at("2026-06-05 00:00")  # Tue, Wed, Thu
    aid = await _lead(conn, case, unit)
    with pytest.raises(WorkflowError) as e:
        await wf.request_extension(conn, aid, handler, due + timedelta(minutes=1), RULES,
                                   reason="来不及", days=2)
    assert e.value.code == "too_late"
    with pytest.raises(WorkflowError):
        await wf.request_extension(conn, aid, handler, now, RULES, reason="来不及", days=99)
    ext = await wf.request_extension(conn, aid, handler, now, RULES, reason="需现场勘查", days=1)
    assert await wf.decide_extension(conn, ext, agent, now, cal, approve=False) is None
    assert await conn.fetchval("SELECT due_at FROM cases WHERE id = $1", case) == due
