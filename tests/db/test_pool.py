"""A database that is not reachable at start gives a plain error, after retrying."""

from __future__ import annotations

import pytest

from db import pool as db_pool
from tests.conftest import closed_port


async def test_unreachable_database_is_retried_then_reported_plainly() -> None:
    dsn = f"postgresql://hotline@127.0.0.1:{closed_port()}/hotline"
    with pytest.raises(ConnectionError, match="the database is not reachable"):
        await db_pool.connect(dsn, retry_for=1.0)
