"""A caller's look at their case by phone: the verification code and what they hear."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import asyncpg

from casework import progress

NOW = datetime(2025, 5, 6, 2, 0, tzinfo=UTC)  # 10:00 in Nanyang


async def _case(conn: asyncpg.Connection, case_no: str, status: str = "assigned",
                **extra: object) -> int:
    unit = await conn.fetchval(
        "INSERT INTO units (code, name, level) VALUES ($1, '市住房和城乡建设局', 1) RETURNING id",
        f"u{case_no}")
    cols = {"case_no": case_no, "dialled_number": "12345", "service": "hotline",
            "status": status, "lead_unit_id": unit,
            "due_at": datetime(2025, 5, 8, 15, 30, tzinfo=UTC), **extra}
    names = ", ".join(cols)
    marks = ", ".join(f"${i}" for i in range(1, len(cols) + 1))
    return int(await conn.fetchval(f"INSERT INTO cases ({names}) VALUES ({marks}) RETURNING id",
                                   *cols.values()))


async def _heard(conn: asyncpg.Connection, case_id: int) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM case_events WHERE case_id = $1 AND "
                            "action = 'progress_heard'", case_id)


async def test_the_code_is_six_digits_and_only_its_hash_is_stored(
        conn: asyncpg.Connection) -> None:
    case_id = await _case(conn, "20250506000001")
    code = await progress.issue_code(conn, case_id)
    assert len(code) == 6 and code.isdigit()
    stored = await conn.fetchval("SELECT verify_hash FROM cases WHERE id = $1", case_id)
    assert stored.startswith("$argon2id$") and code not in stored
    # A new code replaces the old one.
    again = await progress.issue_code(conn, case_id)
    assert await progress.lookup(conn, "20250506000001", again, NOW) is not None
    if again != code:
        assert await progress.lookup(conn, "20250506000001", code, NOW) is None


async def test_the_right_code_tells_status_unit_and_due_date_and_is_audited(
        conn: asyncpg.Connection) -> None:
    case_id = await _case(conn, "20250506000002",
                          due_at=datetime(2025, 5, 8, 17, 0, tzinfo=UTC))  # 9th, 01:00 local
    code = await progress.issue_code(conn, case_id)
    p = await progress.lookup(conn, " 20250506000002", code, NOW)
    assert p == progress.Progress(
        case_no="20250506000002", status="assigned", status_words="已转交承办单位办理",
        unit="市住房和城乡建设局", due=date(2025, 5, 9), late=False, summary=None)
    (event,) = await _heard(conn, case_id)
    assert event["actor_id"] is None and event["at"] == NOW


async def test_past_the_due_date_an_open_case_is_late(conn: asyncpg.Connection) -> None:
    case_id = await _case(conn, "20250506000003", status="accepted")
    code = await progress.issue_code(conn, case_id)
    p = await progress.lookup(conn, "20250506000003", code, NOW + timedelta(days=3))
    assert p is not None and p.late and p.status_words == "承办单位正在办理"


async def test_a_closed_case_gives_its_public_summary_only(conn: asyncpg.Connection) -> None:
    case_id = await _case(conn, "20250506000004", status="closed",
                          public_summary="路灯已修复。", result="张先生反映的路灯已于5月7日修复")
    code = await progress.issue_code(conn, case_id)
    p = await progress.lookup(conn, "20250506000004", code, NOW + timedelta(days=30))
    assert p is not None
    assert (p.status_words, p.summary, p.late) == ("已办结", "路灯已修复。", False)


async def test_wrong_code_unknown_case_and_merged_case_all_answer_none(
        conn: asyncpg.Connection) -> None:
    case_id = await _case(conn, "20250506000005")
    code = await progress.issue_code(conn, case_id)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    assert await progress.lookup(conn, "20250506000005", wrong, NOW) is None
    assert await progress.lookup(conn, "20250506999999", code, NOW) is None
    merged = await _case(conn, "20250506000006", status="merged")
    merged_code = await progress.issue_code(conn, merged)
    assert await progress.lookup(conn, "20250506000006", merged_code, NOW) is None
    invalid = await _case(conn, "20250506000007", status="invalid")
    invalid_code = await progress.issue_code(conn, invalid)
    assert await progress.lookup(conn, "20250506000007", invalid_code, NOW) is None
    # A case without a code cannot be looked up at all.
    await _case(conn, "20250506000008")
    assert await progress.lookup(conn, "20250506000008", "000000", NOW) is None
    assert not await _heard(conn, case_id) and not await _heard(conn, merged)


STRANGER = b"\x01" * 16  # blind indexes of calling numbers
CITIZEN = b"\x02" * 16


async def test_many_wrong_tries_lock_the_caller_out_not_the_citizen(
        conn: asyncpg.Connection) -> None:
    case_id = await _case(conn, "20250506000009")
    code = await progress.issue_code(conn, case_id)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    # Wrong codes and case numbers that do not exist both count against the caller.
    for i in range(progress.MAX_WRONG_CODES):
        case_no = "20250506000009" if i % 2 else f"2025050699{i:04d}"
        assert await progress.lookup(conn, case_no, wrong, NOW, STRANGER) is None
    # Guessing on: even the right code is refused to that caller, the same way...
    assert await progress.lookup(conn, "20250506000009", code, NOW, STRANGER) is None
    assert await conn.fetchval("SELECT count(*) FROM case_events WHERE case_id = $1 "
                               "AND action = 'progress_locked'", case_id) == 1
    # ...while the citizen, on their own phone, still hears their case.
    assert await progress.lookup(conn, "20250506000009", code, NOW, CITIZEN) is not None
    later = NOW + progress.LOCKOUT_WINDOW + timedelta(minutes=1)
    assert await progress.lookup(conn, "20250506000009", code, later, STRANGER) is not None
    # Nothing but the blind index is kept of a caller, and only for two days.
    assert await progress.purge_attempts(
        conn, later + progress.KEEP_ATTEMPTS + timedelta(minutes=1)) > 0
    assert await conn.fetchval("SELECT count(*) FROM progress_attempts") == 0


async def test_withheld_callers_share_a_larger_allowance(conn: asyncpg.Connection) -> None:
    case_id = await _case(conn, "20250506000010")
    code = await progress.issue_code(conn, case_id)
    for i in range(progress.MAX_WRONG_WITHHELD):
        assert await progress.lookup(conn, f"2025050698{i:04d}", code, NOW, None) is None
    assert await progress.lookup(conn, "20250506000010", code, NOW, None) is None
    assert await progress.lookup(conn, "20250506000010", code, NOW, CITIZEN) is not None


async def test_one_case_guessed_at_from_many_numbers_closes_for_the_day(
        conn: asyncpg.Connection) -> None:
    case_id = await _case(conn, "20250506000011")
    code = await progress.issue_code(conn, case_id)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    await conn.executemany(
        "INSERT INTO progress_attempts (caller_index, case_id, ok, at) VALUES ($1, $2, false, $3)",
        [(i.to_bytes(16, "big"), case_id, NOW) for i in range(progress.MAX_WRONG_PER_CASE - 1)])
    assert await progress.lookup(conn, "20250506000011", wrong, NOW, STRANGER) is None
    assert await progress.lookup(conn, "20250506000011", code, NOW, CITIZEN) is None

