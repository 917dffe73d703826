"""The case store: cases whose personal fields exist only as ciphertext.

Each personal field is encrypted with the keyring's primary key, the case id and field
name bound in as associated data (a ciphertext moved to another row or field fails to
decrypt); phone numbers also get a keyed blind index to find repeat callers.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from db import keys
from db.crypto import Keyring, normalise_phone

__all__ = ["normalise_phone"]

PERSONAL_FIELDS = ("caller_number", "callback_number", "name", "address", "work_unit")
PHONE_FIELDS = ("caller_number", "callback_number")
EDITABLE = ("category", "content")
MAX_LEN = {"name": 100, "address": 300, "work_unit": 200, "callback_number": 32,
           "caller_number": 32, "category": 16, "content": 10000}


class CaseInputError(ValueError):
    """A field the desk sent is not acceptable (plain-words message)."""


def _aad(case_id: int, field: str) -> bytes:
    return keys.personal_aad(case_id, field)


async def _put_personal(conn: asyncpg.Connection, keyring: Keyring, case_id: int,
                        field: str, value: str | None) -> None:
    if not value:
        await conn.execute("DELETE FROM case_personal WHERE case_id = $1 AND field = $2",
                           case_id, field)
        return
    await keys.ensure_loaded(conn, keyring)
    key_id, blob = keyring.encrypt(value, _aad(case_id, field))
    bidx = bidx_key_id = None
    if field in PHONE_FIELDS and normalise_phone(value):
        # Which index key made it: rebuilding the index under a new key resumes by this.
        bidx, bidx_key_id = keyring.blind_index(value), keyring.index_key_id
    await conn.execute(
        """INSERT INTO case_personal (case_id, field, key_id, ciphertext, blind_index,
                                      bidx_key_id)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (case_id, field) DO UPDATE SET key_id = EXCLUDED.key_id,
             ciphertext = EXCLUDED.ciphertext, blind_index = EXCLUDED.blind_index,
             bidx_key_id = EXCLUDED.bidx_key_id""",
        case_id, field, key_id, blob, bidx, bidx_key_id,
    )


async def create(
    conn: asyncpg.Connection,
    keyring: Keyring,
    *,
    call_id: uuid.UUID | None,
    dialled_number: str,
    service: str,
    caller_number: str | None,
    callback_number: str | None = None,
) -> asyncpg.Record:
    """Open a case for a call; its number is made of the date and a sequence."""
    # Before the transaction: a fresh install's first data key is made in a transaction of
    # its own, never one that could roll back after we encrypted under it.
    await keys.ensure_loaded(conn, keyring)
    async with conn.transaction():
        row = await conn.fetchrow(
            """INSERT INTO cases (case_no, call_id, dialled_number, service, caller_withheld)
               SELECT to_char(now() AT TIME ZONE 'Asia/Shanghai', 'YYYYMMDD')
                       || lpad(n::text, greatest(6, length(n::text)), '0'), $1, $2, $3, $4
               FROM nextval('case_no_seq') AS n
               RETURNING *""",
            call_id, dialled_number, service, not caller_number,
        )
        await _put_personal(conn, keyring, row["id"], "caller_number", caller_number)
        await _put_personal(conn, keyring, row["id"], "callback_number", callback_number)
        if call_id is not None:
            await conn.execute("UPDATE calls SET case_id = $2 WHERE id = $1", call_id, row["id"])
        return row


async def get(conn: asyncpg.Connection, keyring: Keyring, case_id: int) -> dict[str, Any] | None:
    """A case with its personal fields decrypted (for the agent handling it)."""
    row = await conn.fetchrow("SELECT * FROM cases WHERE id = $1", case_id)
    if row is None:
        return None
    out = _public(row)
    out.update({f: None for f in PERSONAL_FIELDS})
    for p in await conn.fetch("SELECT * FROM case_personal WHERE case_id = $1", case_id):
        # A key id not seen yet (rotated by another process) reloads the keys once.
        out[p["field"]] = await keys.decrypt(conn, keyring, p["key_id"], p["ciphertext"],
                                             _aad(case_id, p["field"]))
    return out


def _public(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "case_no": row["case_no"],
        "call_id": str(row["call_id"]) if row["call_id"] else None,
        "dialled_number": row["dialled_number"],
        "service": row["service"],
        "category": row["category"],
        "content": row["content"],
        "status": row["status"],
        "caller_withheld": row["caller_withheld"],
        "agent_id": row["agent_id"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


async def update(conn: asyncpg.Connection, keyring: Keyring, case_id: int,
                 changes: dict[str, Any]) -> dict[str, Any]:
    """Save what the agent filled in; unknown or oversized fields are refused."""
    for key, value in changes.items():
        if key not in EDITABLE and key not in PERSONAL_FIELDS or key == "caller_number":
            raise CaseInputError(f"the field '{key}' cannot be changed")
        if value is not None and not isinstance(value, str):
            raise CaseInputError(f"the field '{key}' must be text")
        if value and len(value) > MAX_LEN[key]:
            raise CaseInputError(f"the field '{key}' is longer than {MAX_LEN[key]} characters")
    if changes.get("callback_number") and not normalise_phone(changes["callback_number"]):
        raise CaseInputError("the callback number has no digits")
    await keys.ensure_loaded(conn, keyring)
    async with conn.transaction():
        row = await conn.fetchrow("SELECT id FROM cases WHERE id = $1 FOR UPDATE", case_id)
        if row is None:
            raise LookupError(f"no case {case_id}")
        if "category" in changes:
            cat = changes["category"] or None
            if cat and not await conn.fetchval("SELECT 1 FROM categories WHERE code = $1", cat):
                raise CaseInputError(f"'{cat}' is not a known category")
            await conn.execute("UPDATE cases SET category = $2 WHERE id = $1", case_id, cat)
        if "content" in changes:
            await conn.execute("UPDATE cases SET content = $2 WHERE id = $1", case_id,
                               changes["content"] or "")
        for f in PERSONAL_FIELDS:
            if f in changes:
                await _put_personal(conn, keyring, case_id, f, changes[f])
        await conn.execute("UPDATE cases SET updated_at = now() WHERE id = $1", case_id)
    result = await get(conn, keyring, case_id)
    assert result is not None
    return result


async def find_by_phone(conn: asyncpg.Connection, keyring: Keyring, number: str,
                        exclude: int | None = None) -> list[asyncpg.Record]:
    """Earlier cases of the caller with this number (caller or callback), newest first."""
    if not normalise_phone(number):
        return []
    # Under every index key held: while the index is rebuilt under a new key, some rows
    # still carry the old key's index.
    return await conn.fetch(
        """SELECT DISTINCT c.* FROM cases c JOIN case_personal p ON p.case_id = c.id
           WHERE p.blind_index = ANY($1::bytea[]) AND c.id <> COALESCE($2, -1)
           ORDER BY c.created_at DESC""",
        keyring.blind_indexes(number), exclude,
    )


OPEN_STATUSES_EXCLUDED = ("closed", "archived", "invalid")


async def has_open_case(conn: asyncpg.Connection, keyring: Keyring, number: str) -> bool:
    """Whether a caller with this number has a case that is not closed yet."""
    if not normalise_phone(number):
        return False
    return bool(await conn.fetchval(
        """SELECT 1 FROM cases c JOIN case_personal p ON p.case_id = c.id
           WHERE p.blind_index = ANY($1::bytea[]) AND NOT (c.status = ANY($2)) LIMIT 1""",
        keyring.blind_indexes(number), list(OPEN_STATUSES_EXCLUDED),
    ))


def mask_phone(number: str | None) -> str | None:
    """A phone number as lists show it: 138****8000."""
    if not number:
        return None
    digits = normalise_phone(number) or number
    if len(digits) <= 4:
        return "*" * len(digits)
    keep = 3 if len(digits) >= 7 else 1
    return digits[:keep] + "*" * (len(digits) - keep - 4) + digits[-4:]
