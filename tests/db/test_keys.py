"""Envelope keys and live rotation on the real PostgreSQL (db/keys.py, db/recordings.py).

What matters to users: every personal field and voice message stays readable through a
rotation, an interrupted rotation finishes when run again, a second process picks up the new
key by itself, repeat callers are still found while the index is rebuilt, and a dump of the
database holds no caller's number or name.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from db import cases as case_store
from db import events, keys, recordings
from db.crypto import CryptoError, Keyring, create_key_file, load_keyring

NUMBERS = [f"1390000{i:04d}" for i in range(12)]
NAME = "欧阳娜娜"
ADDRESS = "宛城区建设东路 88 号"


class Interrupted(Exception):
    """Stands in for Ctrl-C / kill in the middle of a rotation."""


@pytest.fixture
async def db(conn: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    await conn.execute("TRUNCATE data_keys, case_recordings")
    yield conn
    await conn.execute("TRUNCATE data_keys, case_recordings")


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    assert create_key_file(path)
    return path


def _ring(path: Path) -> Keyring:
    return load_keyring(path, env={})


def _wav(seconds: float = 0.5) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x01\x02" * int(8000 * seconds))
    return buf.getvalue()


async def _cases(db: asyncpg.Connection, ring: Keyring, numbers: list[str]) -> list[int]:
    ids = []
    for n in numbers:
        row = await case_store.create(db, ring, call_id=None, dialled_number="12345",
                                      service="hotline", caller_number=n)
        await case_store.update(db, ring, row["id"], {"name": NAME, "address": ADDRESS,
                                                      "callback_number": "0377-6316" + n[-4:]})
        ids.append(row["id"])
    return ids


async def _per_key(db: asyncpg.Connection) -> dict[str, int]:
    return {r["key_id"]: r["n"] for r in await db.fetch(
        "SELECT key_id, count(*) AS n FROM case_personal GROUP BY key_id")}


async def _voice_message(db: asyncpg.Connection, ring: Keyring, folder: Path, case_id: int,
                         plaintext: bool = False) -> tuple[int, bytes]:
    audio = _wav()
    source = folder / f"spool-{case_id}.wav"
    source.write_bytes(audio)
    target = folder / f"{case_id}.wav.enc"
    if plaintext:  # a file stored before encryption at rest
        source.rename(target)
        key_id = None
    else:
        key_id = await recordings.seal_file(db, ring, source, target)
        assert not source.exists()  # the plaintext is gone
    rid = await recordings.attach(db, case_id, None, "voice_message", str(target), 0.5, key_id)
    return rid, audio


# -- envelope --------------------------------------------------------------------------------


async def test_data_keys_are_stored_only_wrapped_and_round_trip(
        db: asyncpg.Connection, key_file: Path) -> None:
    ring = _ring(key_file)
    (case_id,) = await _cases(db, ring, NUMBERS[:1])
    (row,) = await db.fetch("SELECT * FROM data_keys")
    assert row["is_primary"] and row["kek_id"] == ring.kek_id
    assert await _per_key(db) == {row["id"]: 4}
    # A fresh process (key file only) unwraps the key and reads the case.
    got = await case_store.get(db, _ring(key_file), case_id)
    assert got is not None
    assert (got["caller_number"], got["name"], got["address"]) == (NUMBERS[0], NAME, ADDRESS)
    # What is stored is not the key: the running keyring's key does not appear in it.
    assert ring._state.keys[row["id"]].key not in bytes(row["wrapped"])  # noqa: SLF001


async def test_a_wrong_key_encryption_key_fails_in_plain_words(
        db: asyncpg.Connection, key_file: Path, tmp_path: Path) -> None:
    await _cases(db, _ring(key_file), NUMBERS[:1])
    doc = json.loads(key_file.read_text())
    other = tmp_path / "other.json"
    assert create_key_file(other)
    other_doc = json.loads(other.read_text())
    # Same KEK id, different key: a damaged or mixed-up key file.
    other_doc["kek"]["id"] = doc["kek"]["id"]
    other.write_text(json.dumps(other_doc))
    with pytest.raises(CryptoError, match="cannot be unwrapped") as info:
        await keys.load_data_keys(db, _ring(other))
    assert other_doc["kek"]["key"] not in str(info.value)
    # Another KEK id: the key file of another install.
    assert create_key_file(tmp_path / "third.json")
    with pytest.raises(CryptoError, match="not the key file of this database"):
        await keys.load_data_keys(db, _ring(tmp_path / "third.json"))


# -- data-key rotation -----------------------------------------------------------------------


async def test_rotation_re_encrypts_everything_and_resumes_after_an_interruption(
        db: asyncpg.Connection, pg_dsn: str, key_file: Path, tmp_path: Path) -> None:
    ring = _ring(key_file)
    ids = await _cases(db, ring, NUMBERS)
    old = ring.primary_key_id
    assert await _per_key(db) == {old: 4 * len(NUMBERS)}
    audio: dict[int, bytes] = {}
    for i, case_id in enumerate(ids[:3]):
        rid, data = await _voice_message(db, ring, tmp_path, case_id, plaintext=i == 0)
        audio[rid] = data
    stale = _ring(key_file)  # another process that has not heard of the rotation yet
    await keys.ensure_loaded(db, stale)

    batches = 0

    async def interrupt(stage: str, done: int) -> None:
        nonlocal batches
        batches += 1
        if batches == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        await keys.rotate_data_key(db, ring, batch=10, after_batch=interrupt)
    new = ring.primary_key_id
    assert new != old
    halfway = await _per_key(db)
    assert halfway == {new: 20, old: 4 * len(NUMBERS) - 20}

    # The hotline keeps working meanwhile: the stale process saves a case under the old key.
    live = await asyncpg.connect(pg_dsn)
    try:
        (late,) = await _cases(live, stale, ["13700001111"])
    finally:
        await live.close()

    progress: list[tuple[str, int, int]] = []
    result = await keys.rotate_data_key(db, ring, batch=10,
                                        progress=lambda *a: progress.append(a))
    assert result.resumed and result.key_id == new and not result.failed
    assert await _per_key(db) == {new: 4 * (len(NUMBERS) + 1)}
    assert result.files == 3 and progress and progress[-1][0] == "files"
    assert result.retired == [old]
    # Everything reads back, through a process that never saw the new key before.
    reader = _ring(key_file)
    for case_id, number in [*zip(ids, NUMBERS, strict=True), (late, "13700001111")]:
        got = await case_store.get(db, reader, case_id)
        assert got is not None and (got["caller_number"], got["name"]) == (number, NAME)
    for rid, data in audio.items():
        stored = Path(await db.fetchval("SELECT file FROM case_recordings WHERE id = $1", rid))
        assert not stored.read_bytes().startswith(b"RIFF")
        assert Keyring.sealed_key_id(stored.read_bytes()) == new
        assert await recordings.read_audio(db, reader, rid) == data
    assert await db.fetchval("SELECT count(*) FROM case_recordings WHERE key_id = $1",
                             new) == 3
    # Done: the next rotation makes a new key rather than resuming.
    again = await keys.rotate_data_key(db, ring, batch=100)
    assert not again.resumed and again.key_id != new
    status = await keys.key_status(db, ring)
    assert {k["id"]: k["rows"] for k in status["data_keys"]} == {
        old: 0, new: 0, again.key_id: 4 * (len(NUMBERS) + 1)}
    assert ring.kek_id and ring.kek_id in json.dumps(status)
    assert json.loads(key_file.read_text())["kek"]["key"] not in json.dumps(status)


async def test_a_second_process_reloads_when_it_meets_a_new_key(
        db: asyncpg.Connection, pg_dsn: str, key_file: Path) -> None:
    rotator, desk = _ring(key_file), _ring(key_file)
    await _cases(db, rotator, NUMBERS[:1])
    await keys.ensure_loaded(db, desk)
    before = desk.primary_key_id

    listener = await asyncpg.connect(pg_dsn)
    notices: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await listener.add_listener(events.CHANNEL, lambda *a: notices.put_nowait(
        events.parse(a[3]) or {}))
    try:
        await keys.rotate_data_key(db, rotator)
        (case_id,) = await _cases(db, rotator, NUMBERS[1:2])
        # Reading a row under a key it has not seen: it reloads once and succeeds.
        got = await case_store.get(db, desk, case_id)
        assert got is not None and got["caller_number"] == NUMBERS[1]
        assert desk.primary_key_id == rotator.primary_key_id != before
        # Processes that only write learn of the new primary from the notice.
        writer = _ring(key_file)
        await keys.ensure_loaded(db, writer)
        await keys.rotate_data_key(db, rotator)
        notice = await asyncio.wait_for(notices.get(), 5)
        while notice.get("kind") != events.KEYS:
            notice = await asyncio.wait_for(notices.get(), 5)
        assert writer.primary_key_id != rotator.primary_key_id
        await keys.refresh_soon(db, writer)  # what the desk's and call control's handlers do
        assert writer.primary_key_id == rotator.primary_key_id
    finally:
        await listener.close()


async def test_a_version_1_key_file_moves_to_envelope_keys_without_losing_data(
        db: asyncpg.Connection, tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    legacy = Keyring({"k1": bytes(range(32))}, "k1", bytes(range(1, 33)))
    doc = {"version": 1, "primary": "k1", "index_key": _b64(bytes(range(1, 33))),
           "keys": {"k1": _b64(bytes(range(32)))}}
    path.write_text(json.dumps(doc))
    path.chmod(0o600)
    ring = _ring(path)
    ids = await _cases(db, ring, NUMBERS[:2])
    assert await _per_key(db) == {"k1": 8}
    assert await db.fetchval("SELECT count(*) FROM data_keys") == 0  # legacy: keys in file

    result = await keys.rotate_data_key(db, ring, batch=3)  # the first rotation migrates
    migrated = json.loads(path.read_text())
    assert migrated["version"] == 2 and "keys" not in migrated
    assert migrated["index_keys"] == {"i1": doc["index_key"]}
    assert await _per_key(db) == {result.key_id: 8}
    fresh = _ring(path)
    for case_id, number in zip(ids, NUMBERS, strict=False):
        got = await case_store.get(db, fresh, case_id)
        assert got is not None and got["caller_number"] == number
    assert [r["id"] for r in await case_store.find_by_phone(db, fresh, NUMBERS[0])] \
        == [ids[0]]
    assert legacy.blind_index(NUMBERS[0]) == fresh.blind_index(NUMBERS[0])


def _b64(raw: bytes) -> str:
    import base64

    return base64.b64encode(raw).decode()


# -- index-key rotation ----------------------------------------------------------------------


async def test_repeat_callers_are_found_before_during_and_after_an_index_rotation(
        db: asyncpg.Connection, key_file: Path) -> None:
    ring = _ring(key_file)
    ids = await _cases(db, ring, NUMBERS[:6])
    desk = _ring(key_file)  # another process, told of the new key by the notice
    old_index = ring.index_key_id

    async def found(r: Keyring) -> None:
        for case_id, number in zip(ids, NUMBERS, strict=False):
            assert [x["id"] for x in await case_store.find_by_phone(db, r, number)] \
                == [case_id]
            assert await case_store.has_open_case(db, r, "+86 " + number)

    await found(ring)
    checks = 0

    async def during(stage: str, done: int) -> None:
        nonlocal checks
        checks += 1
        mixed = {r["bidx_key_id"] for r in await db.fetch(
            "SELECT bidx_key_id FROM case_personal WHERE blind_index IS NOT NULL")}
        if done < 12:
            assert mixed == {old_index, ring.index_key_id}  # half rebuilt
        await keys.refresh(db, desk)
        await found(desk)
        # A case the live hotline opens meanwhile is indexed under the new key at once.
        row = await case_store.create(db, desk, call_id=None, dialled_number="12345",
                                      service="hotline", caller_number=f"1351234000{checks}")
        assert await db.fetchval("SELECT bidx_key_id FROM case_personal WHERE case_id = $1",
                                 row["id"]) == ring.index_key_id
        assert [x["id"] for x in await case_store.find_by_phone(
            db, ring, f"1351234000{checks}")] == [row["id"]]

    new_id, n = await keys.rotate_index_key(db, ring, batch=5, after_batch=during)
    assert checks >= 2 and n == 12 and new_id != old_index
    doc = json.loads(key_file.read_text())
    assert list(doc["index_keys"]) == [new_id] and doc["primary_index"] == new_id
    assert {r["bidx_key_id"] for r in await db.fetch(
        "SELECT bidx_key_id FROM case_personal WHERE blind_index IS NOT NULL")} == {new_id}
    await found(_ring(key_file))
    await found(ring)


# -- what a dump shows ------------------------------------------------------------------------


async def test_no_table_holds_a_callers_number_or_name_in_plaintext(
        db: asyncpg.Connection, key_file: Path, tmp_path: Path) -> None:
    ring = _ring(key_file)
    ids = await _cases(db, ring, NUMBERS[:2])
    await _voice_message(db, ring, tmp_path, ids[0])
    await keys.rotate_data_key(db, ring, batch=1)
    await keys.rotate_index_key(db, ring, batch=1)
    needles = [NUMBERS[0], NUMBERS[1], NAME, "建设东路", "6316" + NUMBERS[1][-4:]]
    tables = [r["table_name"] for r in await db.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
        "AND table_type = 'BASE TABLE'")]
    assert "case_personal" in tables and "data_keys" in tables
    for table in tables:
        # A row as text shows bytea as hex: look for the hex of each needle too.
        for (text,) in await db.fetch(f'SELECT t::text FROM "{table}" t'):
            for needle in needles:
                assert needle not in text, f"{table} holds personal data in plaintext"
                assert needle.encode().hex() not in text, f"{table} holds it as bytes"
    # The data keys are there only wrapped: no key of the running keyring appears.
    for key_id in ring.key_ids:
        raw = ring._state.keys[key_id].key  # noqa: SLF001 - the test looks for the raw key
        assert not await db.fetchval("SELECT count(*) FROM data_keys WHERE "
                                     "position($1::bytea in wrapped) > 0", raw)


async def test_rotation_moves_second_factor_secrets_too(
        db: asyncpg.Connection, key_file: Path) -> None:
    from datetime import UTC, datetime

    from db import keys, totp

    ring = _ring(key_file)
    await keys.ensure_loaded(db, ring)
    agent = await db.fetchval("INSERT INTO agents (login, display_name, role) "
                              "VALUES ('lead9', 'lead9', 'supervisor') RETURNING id")
    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    enrolment = await totp.enrol(db, ring, agent, "lead9", now)
    old = await db.fetchval("SELECT key_id FROM agent_totp WHERE agent_id = $1", agent)
    result = await keys.rotate_data_key(db, ring)
    assert await db.fetchval("SELECT key_id FROM agent_totp WHERE agent_id = $1",
                             agent) == result.key_id != old
    assert old in result.retired
    # The secret is the same one: the code of the enrolled authenticator still matches.
    code = totp.code_at(base64.b32decode(enrolment.secret), now)
    assert await totp.confirm(db, _ring(key_file), agent, code, now)
