"""Applied versions of the hotline YAML: what ran when, who applied it, and what failed.

Written by `hotline config apply` / `rollback` (hotline/apply.py). The newest row with
status 'applied' is the configuration running now (see ``last_good``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import asyncpg

APPLIED = "applied"
FAILED = "failed"
ROLLED_BACK = "rolled_back"
STATUSES = (APPLIED, FAILED, ROLLED_BACK)

APPLY = "apply"
ROLLBACK = "rollback"
BASELINE = "baseline"
ORIGINS = (APPLY, ROLLBACK, BASELINE)


@dataclass(frozen=True)
class ConfigVersion:
    """One applied (or tried) version of the YAML."""

    id: int
    yaml: str
    sha256: str
    applied_by: str
    applied_at: datetime
    status: str
    error: str | None
    origin: str
    source: str
    rollback_of: int | None

    @property
    def ran(self) -> bool:
        """Whether this version was live at some time (so it can be rolled back to)."""
        return self.status in (APPLIED, ROLLED_BACK)


def sha256_of(text: str) -> str:
    """The hex sha256 of the YAML's UTF-8 bytes, as stored beside it."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _version(row: asyncpg.Record) -> ConfigVersion:
    return ConfigVersion(
        id=row["id"], yaml=row["yaml"], sha256=row["sha256"], applied_by=row["applied_by"],
        applied_at=row["applied_at"], status=row["status"], error=row["error"],
        origin=row["origin"], source=row["source"], rollback_of=row["rollback_of"],
    )


async def record(
    conn: asyncpg.Connection,
    *,
    yaml_text: str,
    applied_by: str,
    status: str,
    origin: str = APPLY,
    source: str = "",
    error: str | None = None,
    rollback_of: int | None = None,
) -> ConfigVersion:
    """Store one version; a failed one needs an error text."""
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    if origin not in ORIGINS:
        raise ValueError(f"unknown origin {origin!r}")
    if status == FAILED and not error:
        raise ValueError("a failed version needs an error text")
    row = await conn.fetchrow(
        """INSERT INTO config_versions
               (yaml, sha256, applied_by, status, error, origin, source, rollback_of)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           RETURNING *""",
        yaml_text, sha256_of(yaml_text), applied_by, status, error, origin, source, rollback_of,
    )
    return _version(row)


async def list_versions(conn: asyncpg.Connection, limit: int = 50) -> list[ConfigVersion]:
    """The newest versions first (failed ones included)."""
    rows = await conn.fetch("SELECT * FROM config_versions ORDER BY id DESC LIMIT $1", limit)
    return [_version(r) for r in rows]


async def get(conn: asyncpg.Connection, version_id: int) -> ConfigVersion | None:
    """One version by id, or None."""
    row = await conn.fetchrow("SELECT * FROM config_versions WHERE id = $1", version_id)
    return _version(row) if row else None


async def last_good(conn: asyncpg.Connection) -> ConfigVersion | None:
    """The version running now: the newest one applied, or None before the first apply."""
    row = await conn.fetchrow(
        "SELECT * FROM config_versions WHERE status = 'applied' ORDER BY id DESC LIMIT 1"
    )
    return _version(row) if row else None


async def known_sha256(conn: asyncpg.Connection, sha256: str) -> bool:
    """Whether some version that went live had exactly this YAML."""
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM config_versions WHERE sha256 = $1 AND status <> 'failed')",
        sha256,
    ))


async def mark_rolled_back(conn: asyncpg.Connection, version_id: int) -> None:
    """Mark a version that was live as replaced by a rollback."""
    await conn.execute(
        "UPDATE config_versions SET status = 'rolled_back' WHERE id = $1 AND status = 'applied'",
        version_id,
    )
