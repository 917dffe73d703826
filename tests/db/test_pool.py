"""A database that is not reachable at start gives a plain error, after retrying."""

from __future__ import annotations

import socket

import pytest

from db import pool as db_pool


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def test_unreachable_database_is_retried_then_reported_plainly() -> None:
    dsn = f"postgresql://hotline@127.0.0.1:{_closed_port()}/hotline"
    with pytest.raises(ConnectionError, match="the database is not reachable"):
        await db_pool.connect(dsn, retry_for=1.0)
