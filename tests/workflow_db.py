"""A PostgreSQL of its own for the case-workflow tests (no Asterisk needed): started once
per session with a fresh schema from the migrations, stopped at the end."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from db import migrate
from hotline import postgres

ROOT = Path(__file__).resolve().parents[1]
_SLOT = int(os.environ.get("HOTLINE_TEST_SLOT", "0"))
PG_DIR = ROOT / "var" / ("casework-test" if _SLOT == 0 else f"casework-test{_SLOT}")
PG_PORT = 55453 + _SLOT

# Tables a test starts without rows in (the categories tree and the schema stay).
TABLES = ("progress_attempts", "sip_bans", "outbound_calls", "dial_attempts", "case_events",
          "special_reports", "revisits", "urgings", "extensions", "assignments",
          "case_personal", "worklist", "call_offers", "queue_log", "calls", "cases",
          "knowledge", "calendar_days", "desk_sessions", "agent_state_log", "agents", "units")


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    PG_DIR.mkdir(parents=True, exist_ok=True)
    pw_file = PG_DIR / "password"
    if not pw_file.exists():
        pw_file.write_text(secrets.token_urlsafe(24))
        pw_file.chmod(0o600)
    dsn = postgres.start(PG_DIR / "pg", PG_PORT, pw_file.read_text().strip(), durable=False)

    async def fresh_schema() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
            await migrate.apply(conn)
            # The category tree as the migrations seed it, put back before every test
            # (tests and fuzzing edit it, and it is not emptied like the other tables).
            await conn.execute("CREATE TABLE test_categories_seed AS TABLE categories")
        finally:
            await conn.close()

    asyncio.run(fresh_schema())
    yield dsn
    postgres.stop(PG_DIR / "pg")


@pytest.fixture
async def conn(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to an empty workflow (no cases, units, users or calendar rows)."""
    c = await asyncpg.connect(pg_dsn)
    await c.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    await c.execute("DELETE FROM categories; "
                    "INSERT INTO categories SELECT * FROM test_categories_seed")
    yield c
    await c.close()
