"""Data keys in the database, wrapped by the key-encryption key; rotation while the hotline runs.

The key file holds the KEK and the blind-index keys (db/crypto.py); this module keeps the
running keyring's data keys in step with table ``data_keys``:

* :func:`ensure_loaded` unwraps them at start (creating the first one on a fresh install);
* :func:`refresh` re-reads the key file and the table, on a ``keys`` notice or when a row
  names a key id this process has not seen (:func:`decrypt`, :func:`unseal`);
* :func:`rotate_data_key` makes a new primary data key and re-encrypts every personal field
  and voice-message file under it, batch by batch, each batch a short transaction with row
  locks, so the live hotline keeps writing; run again after an interruption it resumes;
* :func:`rotate_index_key` rebuilds every blind index under a new index key, lookups
  matching both keys meanwhile;
* :func:`migrate_key_file` moves a version-1 key file's keys into the database.

Nothing here logs or prints key material or personal data: ids and counts only.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg

from db import events
from db.crypto import (
    DEFAULT_CIPHER,
    KEY_BYTES,
    CryptoError,
    Kek,
    Keyring,
    get_cipher,
    new_key_id,
    write_key_file,
    write_private_file,
)

__all__ = [
    "Progress",
    "RotationResult",
    "decrypt",
    "ensure_loaded",
    "key_status",
    "load_data_keys",
    "migrate_key_file",
    "personal_aad",
    "recording_aad",
    "refresh",
    "refresh_soon",
    "rotate_data_key",
    "rotate_index_key",
    "unseal",
]

log = logging.getLogger(__name__)

# Serialises creating data keys and rotations between processes (any constant will do).
KEYS_LOCK = 0x4B455953
Db: TypeAlias = "asyncpg.Connection | asyncpg.Pool"
# progress(stage, done, total): stage is "fields", "files" or "index".
Progress = Callable[[str, int, int], None]
# Called after each committed batch (tests interrupt a rotation from here).
AfterBatch = Callable[[str, int], Awaitable[None] | None]


def personal_aad(case_id: int, field_name: str) -> bytes:
    """Associated data of a personal field: its case and field, so a ciphertext moved to
    another row or field does not decrypt."""
    return f"case_personal:{case_id}:{field_name}".encode()


def recording_aad(file: str | Path) -> bytes:
    """Associated data of a voice-message file: its name (the call's id)."""
    return f"recording:{Path(file).name}".encode()


@asynccontextmanager
async def _conn(db: Db) -> AsyncIterator[asyncpg.Connection]:
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            yield conn
    else:
        yield db


# -- loading -----------------------------------------------------------------------------------


async def load_data_keys(db: Db, keyring: Keyring, *, create: bool = True) -> None:
    """Unwrap every data key in the database into ``keyring`` (an envelope keyring; a
    version-1 keyring has its keys already). With no data key at all, make the first one
    unless ``create`` is false or the connection is inside a transaction (a key made there
    could be rolled back after this process started encrypting under it)."""
    if not keyring.is_envelope:
        return
    async with _conn(db) as conn:
        rows = await conn.fetch("SELECT id, wrapped, kek_id, cipher, is_primary FROM data_keys")
        if not any(r["is_primary"] for r in rows):
            if not create or conn.is_in_transaction():
                raise CryptoError("there is no primary data key yet: start the hotline "
                                  "(`hotline run`) or run `hotline keys status` once")
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", KEYS_LOCK)
                if not await conn.fetchval("SELECT 1 FROM data_keys WHERE is_primary"):
                    await _new_primary(conn, keyring, DEFAULT_CIPHER)
            rows = await conn.fetch(
                "SELECT id, wrapped, kek_id, cipher, is_primary FROM data_keys")
    keys = {r["id"]: keyring.unwrap_data_key(r["id"], r["cipher"], r["kek_id"], r["wrapped"])
            for r in rows}
    primary = next(r["id"] for r in rows if r["is_primary"])
    keyring.install_data_keys(keys, primary)


async def ensure_loaded(db: Db, keyring: Keyring) -> None:
    """Load the data keys unless the keyring already has them (cheap when it does)."""
    if keyring.needs_data_keys:
        await load_data_keys(db, keyring)


async def refresh(db: Db, keyring: Keyring) -> None:
    """Pick up changed keys: re-read the key file (a new index key, version 1 moved to 2)
    and the database's data keys (a new primary). A failure keeps the keys held so far."""
    keyring.reload_source()
    await load_data_keys(db, keyring, create=False)


_refreshing: set[asyncio.Task[None]] = set()


def refresh_soon(pool: asyncpg.Pool, keyring: Keyring) -> asyncio.Task[None]:
    """Refresh in the background: for the handlers of ``keys`` notices, which are not async."""

    async def run() -> None:
        try:
            await refresh(pool, keyring)
            log.info("keys reloaded: primary data key %s, index key %s",
                     keyring.primary_key_id, keyring.index_key_id)
        except (CryptoError, OSError, asyncpg.PostgresError) as e:
            log.error("the changed keys could not be loaded (%s); keeping the keys held", e)

    task = asyncio.get_running_loop().create_task(run())
    _refreshing.add(task)
    task.add_done_callback(_refreshing.discard)
    return task


async def decrypt(db: Db, keyring: Keyring, key_id: str, blob: bytes, aad: bytes) -> str:
    """Decrypt a stored value; a key id this keyring has not seen (another process rotated)
    makes it reload the keys once and retry."""
    if key_id not in keyring.key_ids:
        await refresh(db, keyring)
    return keyring.decrypt(key_id, blob, aad)


async def unseal(db: Db, keyring: Keyring, data: bytes, aad: bytes) -> bytes:
    """Open a sealed file's bytes (reloading keys once for an unseen key id); bytes that are
    not sealed (a file from before encryption at rest) are returned as they are."""
    key_id = keyring.sealed_key_id(data)
    if key_id is None:
        return data
    if key_id not in keyring.key_ids:
        await refresh(db, keyring)
    return keyring.unseal(data, aad)


async def _new_primary(conn: asyncpg.Connection, keyring: Keyring, cipher_name: str,
                       rotation: str | None = None) -> str:
    """Make a fresh random data key the primary (inside the caller's transaction)."""
    cipher = get_cipher(cipher_name)
    key_id = new_key_id("k")
    raw = secrets.token_bytes(cipher.key_bytes)
    await conn.execute("UPDATE data_keys SET is_primary = false WHERE is_primary")
    await conn.execute(
        """INSERT INTO data_keys (id, wrapped, kek_id, cipher, is_primary, rotation)
           VALUES ($1, $2, $3, $4, true, $5)""",
        key_id, keyring.wrap_data_key(key_id, raw, cipher_name), keyring.kek_id, cipher_name,
        rotation)
    await events.notify(conn, events.KEYS, primary=key_id)
    log.info("new primary data key %s (%s)", key_id, cipher_name)
    return key_id


# -- moving from a version-1 key file ------------------------------------------------------


async def migrate_key_file(db: Db, keyring: Keyring) -> bool:
    """Move a version-1 key file to version 2: its data keys go into the database wrapped by
    a new KEK (same ids, so every row stays readable), its index key stays (id "i1"), then
    the file is replaced atomically. False if the keyring is already version 2.

    The database is written first: a crash in between leaves the version-1 file, and running
    this again wraps the keys anew."""
    if keyring.is_envelope:
        return False
    path = keyring.source_path
    if path is None:
        raise CryptoError("the keys come from the environment variable HOTLINE_KEYS, which "
                          "this command cannot rewrite: put them in a key file, set "
                          "HOTLINE_KEY_FILE to it, and run the command again")
    legacy = keyring.legacy_keys()
    primary = keyring.primary_key_id
    kek = Kek(new_key_id("kek-"), secrets.token_bytes(KEY_BYTES))
    fresh = Keyring.envelope(kek, keyring.index_keys(), keyring.index_key_id)
    async with _conn(db) as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", KEYS_LOCK)
        await conn.execute("UPDATE data_keys SET is_primary = false WHERE is_primary")
        for key_id, dk in legacy.items():
            await conn.execute(
                """INSERT INTO data_keys (id, wrapped, kek_id, cipher, is_primary)
                   VALUES ($1, $2, $3, $4, $5)
                   ON CONFLICT (id) DO UPDATE SET wrapped = EXCLUDED.wrapped,
                     kek_id = EXCLUDED.kek_id, cipher = EXCLUDED.cipher,
                     is_primary = EXCLUDED.is_primary, retired_at = NULL""",
                key_id, fresh.wrap_data_key(key_id, dk.key, dk.cipher.name), kek.id,
                dk.cipher.name, key_id == primary)
    write_key_file(path, fresh.document())
    async with _conn(db) as conn:
        await events.notify(conn, events.KEYS, migrated=True)
    await refresh(db, keyring)
    log.info("key file %s moved to version 2 (key-encryption key %s)", path, kek.id)
    return True


# -- data-key rotation -----------------------------------------------------------------------


@dataclass
class RotationResult:
    """What a rotation did (ids and counts only)."""

    key_id: str
    resumed: bool
    fields: int = 0
    files: int = 0
    failed: list[str] = field(default_factory=list)  # "case 12 name", "recording 3: why"
    retired: list[str] = field(default_factory=list)


async def rotate_data_key(db: Db, keyring: Keyring, *, batch: int = 200,
                          cipher: str | None = None, progress: Progress | None = None,
                          after_batch: AfterBatch | None = None) -> RotationResult:
    """Make a new primary data key and re-encrypt every personal field and voice-message
    file under it. If an earlier rotation did not finish (rows or files remain under older
    keys), finish that one instead of making another key. Keys nothing is under any more
    are marked retired, never deleted: backups taken before still need them."""
    if not keyring.is_envelope:
        await migrate_key_file(db, keyring)
    await ensure_loaded(db, keyring)
    async with _conn(db) as conn:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", KEYS_LOCK)
            primary = await conn.fetchrow(
                "SELECT id, cipher, rotation FROM data_keys WHERE is_primary")
            wanted = cipher or primary["cipher"]
            resumed = primary["rotation"] == "running" and wanted == primary["cipher"]
            key_id = (primary["id"] if resumed
                      else await _new_primary(conn, keyring, wanted, "running"))
        await refresh(conn, keyring)
    if keyring.primary_key_id != key_id:
        raise CryptoError(f"the primary data key changed to {keyring.primary_key_id!r} "
                          "during the rotation; run it again")
    result = RotationResult(key_id, resumed)
    await _reencrypt_fields(db, keyring, result, batch, progress, after_batch)
    await _reencrypt_files(db, keyring, result, batch, progress, after_batch)
    await _reencrypt_totp(db, keyring, result)
    async with _conn(db) as conn:
        # Finished even if some rows failed: they are reported, and the next rotation makes
        # a new key instead of retrying them for ever.
        await conn.execute("UPDATE data_keys SET rotation = 'finished' WHERE id = $1", key_id)
        retired = await conn.fetch(
            """UPDATE data_keys d SET retired_at = now()
               WHERE NOT is_primary AND retired_at IS NULL
                 AND NOT EXISTS (SELECT 1 FROM case_personal p WHERE p.key_id = d.id)
                 AND NOT EXISTS (SELECT 1 FROM case_recordings r WHERE r.key_id = d.id)
                 AND NOT EXISTS (SELECT 1 FROM agent_totp t WHERE t.key_id = d.id)
               RETURNING id""")
    result.retired = sorted(r["id"] for r in retired)
    return result


async def _reencrypt_totp(db: Db, keyring: Keyring, result: RotationResult) -> None:
    """The desk users' second-factor secrets (a handful of rows: one transaction)."""
    async with _conn(db) as conn, conn.transaction():
        rows = await conn.fetch("SELECT agent_id, key_id, secret FROM agent_totp "
                                "WHERE key_id <> $1 FOR UPDATE", result.key_id)
        for r in rows:
            aad = f"agent_totp:{r['agent_id']}".encode()
            try:
                secret = keyring.decrypt_bytes(r["key_id"], r["secret"], aad)
            except CryptoError as e:
                result.failed.append(f"second factor of agent {r['agent_id']}: {e}")
                continue
            new_id, blob = keyring.encrypt_bytes(secret, aad)
            await conn.execute("UPDATE agent_totp SET key_id = $2, secret = $3 "
                               "WHERE agent_id = $1", r["agent_id"], new_id, blob)


async def _after(after_batch: AfterBatch | None, stage: str, done: int) -> None:
    if after_batch is not None:
        maybe = after_batch(stage, done)
        if maybe is not None:
            await maybe


async def _reencrypt_fields(db: Db, keyring: Keyring, result: RotationResult, batch: int,
                            progress: Progress | None, after_batch: AfterBatch | None) -> None:
    key_id = result.key_id
    failed: list[tuple[int, str]] = []
    async with _conn(db) as conn:
        total = await conn.fetchval("SELECT count(*) FROM case_personal WHERE key_id <> $1",
                                    key_id)
    while True:
        async with _conn(db) as conn, conn.transaction():
            # SKIP LOCKED: a row an agent is saving right now is taken in a later batch.
            rows = await conn.fetch(
                """SELECT case_id, field, key_id, ciphertext FROM case_personal
                   WHERE key_id <> $1
                     AND NOT ((case_id, field) = ANY(
                       SELECT * FROM unnest($3::bigint[], $4::text[])))
                   ORDER BY case_id, field LIMIT $2 FOR UPDATE SKIP LOCKED""",
                key_id, batch, [c for c, _ in failed], [f for _, f in failed])
            for r in rows:
                aad = personal_aad(r["case_id"], r["field"])
                try:
                    value = await decrypt(conn, keyring, r["key_id"], r["ciphertext"], aad)
                except CryptoError as e:
                    failed.append((r["case_id"], r["field"]))
                    result.failed.append(f"case {r['case_id']} {r['field']}: {e}")
                    continue
                new_id, blob = keyring.encrypt(value, aad)
                await conn.execute(
                    "UPDATE case_personal SET key_id = $3, ciphertext = $4 "
                    "WHERE case_id = $1 AND field = $2", r["case_id"], r["field"], new_id, blob)
                result.fields += 1
        if not rows:
            async with _conn(db) as conn:
                left = await conn.fetchval(
                    "SELECT count(*) FROM case_personal WHERE key_id <> $1", key_id)
            if left <= len(failed):
                return
            await asyncio.sleep(0.2)  # rows locked by a live save: take them once it is done
            continue
        if progress is not None:
            progress("fields", result.fields, max(total, result.fields))
        await _after(after_batch, "fields", result.fields)


async def _reencrypt_files(db: Db, keyring: Keyring, result: RotationResult, batch: int,
                           progress: Progress | None, after_batch: AfterBatch | None) -> None:
    key_id = result.key_id
    failed: list[int] = []
    async with _conn(db) as conn:
        total = await conn.fetchval(
            "SELECT count(*) FROM case_recordings WHERE key_id IS DISTINCT FROM $1", key_id)
    while True:
        async with _conn(db) as conn, conn.transaction():
            rows = await conn.fetch(
                """SELECT id, file FROM case_recordings
                   WHERE key_id IS DISTINCT FROM $1 AND NOT (id = ANY($3::bigint[]))
                   ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED""", key_id, batch, failed)
            for r in rows:
                try:
                    await _reseal_file(conn, keyring, Path(r["file"]), key_id)
                except (CryptoError, OSError) as e:
                    failed.append(r["id"])
                    why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
                    result.failed.append(f"recording {r['id']}: {why}")
                    continue
                await conn.execute("UPDATE case_recordings SET key_id = $2 WHERE id = $1",
                                   r["id"], key_id)
                result.files += 1
        if not rows:
            async with _conn(db) as conn:
                left = await conn.fetchval(
                    "SELECT count(*) FROM case_recordings WHERE key_id IS DISTINCT FROM $1",
                    key_id)
            if left <= len(failed):
                return
            await asyncio.sleep(0.2)
            continue
        if progress is not None:
            progress("files", result.files, max(total, result.files))
        await _after(after_batch, "files", result.files)


async def _reseal_file(conn: asyncpg.Connection, keyring: Keyring, path: Path,
                       key_id: str) -> None:
    """Re-encrypt one file under ``key_id`` in place (atomically: new file, then rename).
    The file names its own key, so a crash between the rename and the row update is
    repaired by the next run (the file is already under the new key)."""
    data = await asyncio.to_thread(path.read_bytes)
    if keyring.sealed_key_id(data) == key_id:
        return
    aad = recording_aad(path)
    plain = await unseal(conn, keyring, data, aad)
    await asyncio.to_thread(write_sealed, path, keyring.seal(plain, aad))


def write_sealed(path: Path, data: bytes) -> None:
    """Write an encrypted file atomically with mode 0600."""
    write_private_file(path, data)


# -- index-key rotation --------------------------------------------------------------------


async def rotate_index_key(db: Db, keyring: Keyring, *, batch: int = 200,
                           progress: Progress | None = None,
                           after_batch: AfterBatch | None = None) -> tuple[str, int]:
    """Rebuild every blind index under a new index key; return (new index key id, rows).

    1. the new key is written into the key file beside the old one and made primary
       (atomically); running processes reload it on the ``keys`` notice, index new rows
       with it and look numbers up under both keys;
    2. every blind index made with another key is recomputed, batch by batch;
    3. the old key is dropped from the key file.
    Interrupted and run again, it resumes at step 2 with the key already written."""
    if not keyring.is_envelope:
        await migrate_key_file(db, keyring)
    path = keyring.source_path
    if path is None:
        raise CryptoError("the keys come from the environment variable HOTLINE_KEYS, which "
                          "this command cannot rewrite: put them in a key file, set "
                          "HOTLINE_KEY_FILE to it, and run the command again")
    keyring.reload_source()
    if len(keyring.index_key_ids) == 1:
        new_id = new_key_id("i")
        index = keyring.index_keys()
        index[new_id] = secrets.token_bytes(KEY_BYTES)
        write_key_file(path, keyring.document(index, new_id))
        keyring.reload_source()
        async with _conn(db) as conn:
            await events.notify(conn, events.KEYS, index_key=new_id)
    new_id = keyring.index_key_id
    await ensure_loaded(db, keyring)
    done = 0
    failed: list[tuple[int, str]] = []
    async with _conn(db) as conn:
        total = await conn.fetchval(
            "SELECT count(*) FROM case_personal WHERE blind_index IS NOT NULL "
            "AND bidx_key_id IS DISTINCT FROM $1", new_id)
    while True:
        async with _conn(db) as conn, conn.transaction():
            rows = await conn.fetch(
                """SELECT case_id, field, key_id, ciphertext FROM case_personal
                   WHERE blind_index IS NOT NULL AND bidx_key_id IS DISTINCT FROM $1
                     AND NOT ((case_id, field) = ANY(
                       SELECT * FROM unnest($3::bigint[], $4::text[])))
                   ORDER BY case_id, field LIMIT $2 FOR UPDATE SKIP LOCKED""",
                new_id, batch, [c for c, _ in failed], [f for _, f in failed])
            for r in rows:
                try:
                    value = await decrypt(conn, keyring, r["key_id"], r["ciphertext"],
                                          personal_aad(r["case_id"], r["field"]))
                    bidx = keyring.blind_index(value)
                except (CryptoError, ValueError):
                    failed.append((r["case_id"], r["field"]))
                    continue
                await conn.execute(
                    "UPDATE case_personal SET blind_index = $3, bidx_key_id = $4 "
                    "WHERE case_id = $1 AND field = $2", r["case_id"], r["field"], bidx, new_id)
                done += 1
        if not rows:
            async with _conn(db) as conn:
                left = await conn.fetchval(
                    "SELECT count(*) FROM case_personal WHERE blind_index IS NOT NULL "
                    "AND bidx_key_id IS DISTINCT FROM $1", new_id)
            if left <= len(failed):
                break
            await asyncio.sleep(0.2)
            continue
        if progress is not None:
            progress("index", done, max(total, done))
        await _after(after_batch, "index", done)
    if failed:
        raise CryptoError(f"{len(failed)} blind index(es) could not be rebuilt (their value "
                          "does not decrypt); the old index key is kept until they are fixed")
    index = {new_id: keyring.index_keys()[new_id]}
    write_key_file(path, keyring.document(index, new_id))
    keyring.reload_source()
    async with _conn(db) as conn:
        await events.notify(conn, events.KEYS, index_key=new_id)
    return new_id, done


# -- status ----------------------------------------------------------------------------------


async def key_status(db: Db, keyring: Keyring) -> dict[str, Any]:
    """Key ids, which is primary, and how many rows and files each key has; never a key."""
    async with _conn(db) as conn:
        keys = await conn.fetch(
            "SELECT id, kek_id, cipher, created_at, is_primary, retired_at FROM data_keys "
            "ORDER BY created_at, id")
        rows = {r["key_id"]: r["n"] for r in await conn.fetch(
            "SELECT key_id, count(*) AS n FROM case_personal GROUP BY key_id")}
        files = {r["key_id"]: r["n"] for r in await conn.fetch(
            "SELECT key_id, count(*) AS n FROM case_recordings GROUP BY key_id")}
        bidx = {r["bidx_key_id"]: r["n"] for r in await conn.fetch(
            "SELECT bidx_key_id, count(*) AS n FROM case_personal "
            "WHERE blind_index IS NOT NULL GROUP BY bidx_key_id")}
    data_keys = [
        {"id": k["id"], "cipher": k["cipher"], "kek_id": k["kek_id"],
         "created_at": k["created_at"].isoformat(), "primary": k["is_primary"],
         "retired_at": k["retired_at"].isoformat() if k["retired_at"] else None,
         "rows": rows.get(k["id"], 0), "files": files.get(k["id"], 0)}
        for k in keys]
    known = {k["id"] for k in keys}
    if not keyring.is_envelope:  # version-1 file: its keys are not in the table
        data_keys += [{"id": k, "cipher": keyring.cipher_name, "kek_id": None,
                       "created_at": None, "primary": k == keyring.primary_key_id,
                       "retired_at": None, "rows": rows.get(k, 0), "files": files.get(k, 0),
                       "legacy": True} for k in sorted(keyring.key_ids - known)]
    unknown = sorted(set(rows) - known - keyring.key_ids)
    return {
        "key_file_version": 2 if keyring.is_envelope else 1,
        "kek_id": keyring.kek_id,
        "data_keys": data_keys,
        "rows_under_unknown_keys": {k: rows[k] for k in unknown},
        "plaintext_files": files.get(None, 0),
        "index_keys": sorted(keyring.index_key_ids),
        "primary_index": keyring.index_key_id,
        "blind_indexes_per_index_key": {str(k): n for k, n in bidx.items()},
    }
