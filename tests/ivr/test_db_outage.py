"""The database goes away under call control's dispatch loop and comes back: one clear line
when it goes and one when it is back (no traceback a second), counted for `hotline status`.
A real PostgreSQL (the workflow tests') behind a TCP link the test cuts; no Asterisk."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from db import pool as db_pool
from dialplan import config
from ivr.channels import Inboxes
from ivr.queue import QueueService
from tests.conftest import ROOT, closed_port
from tests.link import CuttableLink


class ConnectedAri:
    """Dispatch runs only while ARI is connected; nothing else of ARI is reached here."""

    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.connected.set()


def test_outages_are_logged_once_each_way(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    log = logging.getLogger("test.outages")
    outages = db_pool.Outages("dispatch", log, lambda: now[0])
    with caplog.at_level(logging.INFO, logger="test.outages"):
        outages.succeeded()  # nothing to say while it is up
        for _ in range(30):
            outages.failed(ConnectionRefusedError("connection refused"))
            now[0] += 1
        outages.succeeded()
        outages.succeeded()
        outages.failed(OSError("again"))
        now[0] += 4
        outages.succeeded()
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ERROR", "the database is unreachable (connection refused); dispatch waits for it"),
        ("WARNING", "the database is back after 30 s; dispatch goes on"),
        ("ERROR", "the database is unreachable (again); dispatch waits for it"),
        ("WARNING", "the database is back after 4 s; dispatch goes on"),
    ]
    assert outages.as_dict() == {"db_outages": 2, "db_down_seconds": 34.0}
    assert not db_pool.unreachable(asyncpg.UndefinedTableError("no such table"))
    assert db_pool.unreachable(asyncpg.InterfaceError("pool is closed"))


async def test_dispatch_waits_out_a_database_outage_quietly(
        pg_dsn: str, conn: asyncpg.Connection, caplog: pytest.LogCaptureFixture) -> None:
    parts = urlsplit(pg_dsn)
    link = CuttableLink(closed_port(), parts.port or 5432)
    via_link = urlunsplit(parts._replace(
        netloc=parts.netloc.rsplit(":", 1)[0] + f":{link.listen_port}"))
    pool = await db_pool.connect(via_link, min_size=1, max_size=2)
    cfg = config.load(ROOT / "config" / "hotline.yaml")
    ari: Any = ConnectedAri()
    queue = QueueService(cfg, ari, pool, Inboxes(), None, None)  # type: ignore[arg-type]
    task = asyncio.create_task(queue.run())
    try:
        with caplog.at_level(logging.INFO, logger="ivr.queue"):
            await asyncio.sleep(1.5)
            link.cut(down_for=4.0)  # every connection reset; new ones refused for 4 s
            await asyncio.sleep(4.0)
            for _ in range(100):  # the pool reconnects on the next dispatch pass
                if queue.outages.down_since is None and queue.outages.count:
                    break
                await asyncio.sleep(0.1)
        mine = [r for r in caplog.records if r.name == "ivr.queue"]
        assert [r.levelname for r in mine] == ["ERROR", "WARNING"], \
            [r.getMessage() for r in mine]
        assert "the database is unreachable" in mine[0].getMessage()
        assert "the database is back after" in mine[1].getMessage()
        assert not any(r.exc_info for r in mine)  # no traceback a second
        assert queue.outages.as_dict()["db_outages"] == 1
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await pool.close()
        link.close()
