"""The dial guard on a real PostgreSQL, with a controlled clock: the caps per number and per
hour, what is recorded (never the number), and that racing checks cannot share one slot."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from db import dialguard
from db.crypto import Kek, Keyring
from dialplan.numbering import GuardRules, NumberKind

CN = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=CN)
RULES = GuardRules()  # 3 per number, 300 per hour
CITIZEN = "13800138000"


def keyring() -> Keyring:
    return Keyring({"k1": os.urandom(32)}, "k1", os.urandom(32))


@pytest.fixture
async def db(conn: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """The workflow tests' connection, with no dial attempts yet."""
    await conn.execute("TRUNCATE dial_attempts RESTART IDENTITY")
    yield conn


async def check(conn: asyncpg.Connection, keys: Keyring, text: str, when: datetime,
                rules: GuardRules = RULES, **kw: Any) -> dialguard.Decision:
    return await dialguard.check(conn, keys, text, rules, purpose="worklist", now=when, **kw)


async def test_the_fourth_call_in_an_hour_is_refused(db: asyncpg.Connection) -> None:
    keys = keyring()
    # One citizen, written three ways: it is one number.
    for minutes, text in ((0, CITIZEN), (10, "+86 138-0013-8000"), (20, "008613800138000")):
        d = await check(db, keys, text, T0 + timedelta(minutes=minutes), agent_id=7)
        assert (d.allowed, d.code, d.dial_digits, d.kind) == (True, "ok", CITIZEN,
                                                              NumberKind.MOBILE)
    fourth = await check(db, keys, CITIZEN, T0 + timedelta(minutes=30))
    assert (fourth.allowed, fourth.code, fourth.dial_digits) == (False, "too_many_for_number",
                                                                 None)
    assert "3" in fourth.reason and not fourth.reason.isascii()
    # Another number is not held up by it.
    other = await check(db, keys, "63160001", T0 + timedelta(minutes=30))
    assert (other.allowed, other.dial_digits) == (True, "63160001")
    # An hour after the first call one slot is free again (refusals take none) ...
    again = await check(db, keys, CITIZEN, T0 + timedelta(hours=1))
    assert again.allowed
    # ... and only one: the calls at :10, :20 and 11:00 are within the hour.
    assert not (await check(db, keys, CITIZEN, T0 + timedelta(hours=1, minutes=5))).allowed
    assert (await check(db, keys, CITIZEN, T0 + timedelta(hours=2))).allowed


async def test_local_landline_with_and_without_area_code_is_one_number(
        db: asyncpg.Connection) -> None:
    keys = keyring()
    for text in ("63160001", "0377-6316-0001", "+86 377 6316 0001"):
        assert (await check(db, keys, text, T0)).allowed
    assert (await check(db, keys, "63160001", T0)).code == "too_many_for_number"


async def test_the_hourly_cap_for_everyone(db: asyncpg.Connection) -> None:
    keys = keyring()
    rules = GuardRules(max_per_hour=5)
    for i in range(5):
        assert (await check(db, keys, f"1390000000{i}", T0, rules)).allowed
    refused = await check(db, keys, "13900000009", T0 + timedelta(minutes=59), rules)
    assert (refused.allowed, refused.code) == (False, "too_many_per_hour")
    assert (await check(db, keys, "13900000009", T0 + timedelta(hours=1), rules)).allowed


async def test_refusals_are_recorded_with_their_code(db: asyncpg.Connection,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    keys = keyring()
    rules = GuardRules(max_per_number_per_hour=1)
    caplog.set_level(logging.INFO, logger="db.dialguard")
    await check(db, keys, CITIZEN, T0, rules, case_id=42)
    await check(db, keys, CITIZEN, T0, rules, case_id=42, agent_id=3)
    await check(db, keys, "0044207946000", T0, rules)
    await check(db, keys, "13800138000&x", T0, rules)
    await check(db, keys, "*#", T0, rules)
    await check(db, keys, "12345", T0, rules)
    rows = await db.fetch("SELECT * FROM dial_attempts ORDER BY id")
    assert [(r["outcome"], r["reason"]) for r in rows] == [
        ("dialled", None), ("refused", "too_many_for_number"), ("refused", "international"),
        ("refused", "bad_characters"), ("refused", "bad_characters"),
        ("refused", "short_code_not_allowed")]
    assert [r["purpose"] for r in rows] == ["worklist"] * 6
    assert (rows[1]["case_id"], rows[1]["agent_id"], rows[1]["at"]) == (42, 3, T0)
    # The number with junk after it is still indexed as that number, so its tries show.
    assert rows[3]["number_index"] == rows[0]["number_index"] == keys.blind_index(CITIZEN)
    assert rows[4]["number_index"] == b""  # no digits: matched to nothing
    # Refusals are logged, masked.
    assert len([r for r in caplog.records if r.name == "db.dialguard"]) == 5
    assert "138******00" in caplog.text
    assert CITIZEN not in caplog.text and "207946000" not in caplog.text


async def test_the_table_never_holds_the_number(db: asyncpg.Connection) -> None:
    keys = keyring()
    numbers = {CITIZEN: CITIZEN, "63160001": "037763160001", "0044207946000": "44207946000",
               "1380013800A": "1380013800", "01065123456": "01065123456"}
    for text in numbers:
        for _ in range(5):
            await check(db, keys, text, T0)
    dump = "\n".join(await db.fetchval(
        "SELECT string_agg(row_to_json(d)::text || ' ' || encode(number_index, 'escape'), "
        "E'\\n') FROM dial_attempts d"))
    raw = b"".join(r["number_index"] for r in await db.fetch(
        "SELECT number_index FROM dial_attempts"))
    for text, digits in numbers.items():
        for secret in {text, digits, digits[-8:], digits[-7:]}:
            assert secret not in dump
            assert secret.encode() not in raw


async def test_an_older_index_key_still_counts(db: asyncpg.Connection) -> None:
    """Attempts indexed before an index-key rotation count until the window has passed."""
    kek = Kek("kek-1", os.urandom(32))
    old, new = os.urandom(32), os.urandom(32)
    before = Keyring.envelope(kek, {"i1": old}, "i1")
    after = Keyring.envelope(kek, {"i1": old, "i2": new}, "i2")
    for _ in range(3):
        assert (await check(db, before, CITIZEN, T0)).allowed
    refused = await check(db, after, CITIZEN, T0 + timedelta(minutes=1))
    assert refused.code == "too_many_for_number"
    stored = await db.fetchval("SELECT number_index FROM dial_attempts WHERE id = $1",
                               refused.attempt_id)
    assert stored == after.blind_index(CITIZEN) != before.blind_index(CITIZEN)


async def test_racing_checks_cannot_share_the_last_slot(db: asyncpg.Connection,
                                                        pg_dsn: str) -> None:
    keys = keyring()
    for _ in range(2):
        assert (await check(db, keys, CITIZEN, T0)).allowed
    a, b = await asyncpg.connect(pg_dsn), await asyncpg.connect(pg_dsn)
    try:
        # a takes the last slot but has not committed yet: b must wait for it, then see it.
        tx = a.transaction()
        await tx.start()
        first = await check(a, keys, CITIZEN, T0)
        second_task = asyncio.create_task(check(b, keys, CITIZEN, T0))
        await asyncio.sleep(0.3)
        assert not second_task.done()
        await tx.commit()
        second = await asyncio.wait_for(second_task, 10)
        assert (first.allowed, second.allowed) == (True, False)
        assert second.code == "too_many_for_number"
    finally:
        await a.close()
        await b.close()


async def test_many_racing_checks_let_exactly_one_through(db: asyncpg.Connection,
                                                          pg_dsn: str) -> None:
    keys = keyring()
    for _ in range(2):
        assert (await check(db, keys, CITIZEN, T0)).allowed
    conns = [await asyncpg.connect(pg_dsn) for _ in range(8)]
    try:
        decisions = await asyncio.gather(*(check(c, keys, CITIZEN, T0) for c in conns))
    finally:
        for c in conns:
            await c.close()
    assert sum(d.allowed for d in decisions) == 1
    assert await db.fetchval(
        "SELECT count(*) FROM dial_attempts WHERE outcome = 'dialled'") == 3


async def test_bad_arguments(db: asyncpg.Connection) -> None:
    keys = keyring()
    with pytest.raises(ValueError):
        await check(db, keys, CITIZEN, T0.replace(tzinfo=None))
    with pytest.raises(ValueError):
        await dialguard.check(db, keys, CITIZEN, RULES, purpose="", now=T0)
    assert await db.fetchval("SELECT count(*) FROM dial_attempts") == 0


def test_mask() -> None:
    assert dialguard.mask("13800138000") == "138******00"
    assert "13800138000" not in dialguard.mask("+86 138-0013-8000")
    assert "0013" not in dialguard.mask("138x0013x8000")  # letters do not split it into short runs
    assert "8000" not in dialguard.mask("037763168000")
    assert dialguard.mask("12345") == "12345"  # a short code is nobody's number
    assert "20260101123456" not in dialguard.mask("+20260101123456")


async def test_old_attempts_are_purged_with_their_blind_index(db: asyncpg.Connection) -> None:
    keys = keyring()
    await check(db, keys, "13800138000", T0 - timedelta(days=dialguard.KEEP_DAYS + 1))
    await check(db, keys, "13900139000", T0)
    assert await dialguard.purge(db, T0) == 1
    assert await db.fetchval("SELECT count(*) FROM dial_attempts") == 1
