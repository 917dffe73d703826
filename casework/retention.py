"""Retention: the personal data of a finished case is erased after a configured period.

A case archived more than `casework.retention_days` ago (an invalid call: recorded as
invalid that long ago; a repeat request merged into a case: when that case qualifies)
loses every personal field (case_personal: the ciphertexts and the blind indexes of its
numbers) and every audio file of the caller's voice with its row. The case itself, its
assignments, urgings, revisits and audit trail stay, so every figure of casework.stats is
the same before and after. Each erased case gets one 'personal_erased' audit entry with
counts only. A case with nothing left to erase is not touched again: running twice is a
no-op.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg

from casework import audit

BATCH = 200  # cases per transaction: a first run on years of archive must not lock them all

# Cases whose personal data is due for erasure at $1 (the cut-off) and still has some.
_DUE = """
SELECT c.id FROM cases c
LEFT JOIN cases p ON p.id = c.parent_case_id
WHERE ((c.status = 'archived' AND c.archived_at < $1)
       OR (c.status = 'invalid' AND c.closed_at < $1)
       OR (c.status = 'merged' AND p.status = 'archived' AND p.archived_at < $1))
  AND (EXISTS (SELECT 1 FROM case_personal x WHERE x.case_id = c.id)
       OR EXISTS (SELECT 1 FROM case_recordings r WHERE r.case_id = c.id))
ORDER BY c.id
LIMIT $2
FOR UPDATE OF c SKIP LOCKED
"""


async def erase_expired(conn: asyncpg.Connection, now: datetime, days: int,
                        batch: int = BATCH) -> list[int]:
    """Erase the personal fields and voice messages of the cases archived more than
    `days` days before `now` (0: never); return the ids of the cases erased now."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if days <= 0:
        return []
    cutoff = now - timedelta(days=days)
    erased: list[int] = []
    while True:
        async with conn.transaction():
            ids = [r["id"] for r in await conn.fetch(_DUE, cutoff, batch)]
            if not ids:
                return erased
            fields = await conn.fetch(
                "DELETE FROM case_personal WHERE case_id = ANY($1::bigint[]) "
                "RETURNING case_id", ids)
            recordings = await conn.fetch(
                "DELETE FROM case_recordings WHERE case_id = ANY($1::bigint[]) "
                "RETURNING case_id, file", ids)
            # The files go before the commit: should the commit fail, the rows point at
            # missing files (which the desk reports as gone, and the next run deletes),
            # never a caller's voice kept on disk with no row left to find it by.
            await asyncio.to_thread(_remove, [Path(r["file"]) for r in recordings])
            n_fields = Counter(f["case_id"] for f in fields)
            n_recordings = Counter(r["case_id"] for r in recordings)
            for case_id in ids:
                await audit.record(conn, case_id, "personal_erased", None, now,
                                   fields=n_fields[case_id], recordings=n_recordings[case_id],
                                   retention_days=days)
            erased += ids
        if len(ids) < batch:
            return erased


def _remove(files: list[Path]) -> None:
    for path in files:
        path.unlink(missing_ok=True)
