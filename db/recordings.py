"""Audio attached to cases (voice messages), kept as encrypted files beside the database.

A voice message holds the caller's voice and often their name and number, so the file is
encrypted at rest like the personal fields: sealed under the primary data key with the
file's name bound in (db/crypto.py ``Keyring.seal``), the key id kept with the row and in
the file's own header. The desk plays it back through :func:`read_audio` only.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg

from db import keys
from db.crypto import CryptoError, Keyring


async def attach(conn: asyncpg.Connection, case_id: int, call_id: uuid.UUID | None, kind: str,
                 file: str, seconds: float | None, key_id: str | None = None) -> int:
    """Record that a case has an audio file (sealed under ``key_id``); return the row id."""
    value: int = await conn.fetchval(
        """INSERT INTO case_recordings (case_id, call_id, kind, file, seconds, key_id)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
        case_id, call_id, kind, file, seconds, key_id,
    )
    return value


async def for_case(conn: asyncpg.Connection, case_id: int) -> list[asyncpg.Record]:
    """A case's recordings, oldest first."""
    return await conn.fetch(
        "SELECT * FROM case_recordings WHERE case_id = $1 ORDER BY created_at", case_id)


async def seal_file(db: asyncpg.Pool | asyncpg.Connection, keyring: Keyring, source: Path,
                    target: Path) -> str:
    """Encrypt the audio file ``source`` into ``target`` (mode 0600, written atomically),
    then remove the plaintext; return the data key id it is sealed under."""
    await keys.ensure_loaded(db, keyring)
    data = await asyncio.to_thread(source.read_bytes)
    sealed = keyring.seal(data, keys.recording_aad(target))
    await asyncio.to_thread(_replace_plaintext, source, target, sealed)
    key_id = keyring.sealed_key_id(sealed)
    assert key_id is not None
    return key_id


def _replace_plaintext(source: Path, target: Path, sealed: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    keys.write_sealed(target, sealed)
    source.unlink(missing_ok=True)


async def read_audio(conn: asyncpg.Connection, keyring: Keyring, recording_id: int) -> bytes:
    """A recording's audio (a WAV), decrypted; for the desk to stream to someone allowed.

    Raises ``LookupError`` for no such recording or a missing file, :class:`CryptoError`
    when the file does not decrypt. A file from before encryption at rest is returned as is.
    """
    row = await conn.fetchrow("SELECT file FROM case_recordings WHERE id = $1", recording_id)
    if row is None:
        raise LookupError(f"no recording {recording_id}")
    path = Path(row["file"])
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except FileNotFoundError:
        raise LookupError(f"the audio file of recording {recording_id} is missing") from None
    try:
        return await keys.unseal(conn, keyring, data, keys.recording_aad(path))
    except CryptoError as e:
        raise CryptoError(f"recording {recording_id}: {e}") from None
