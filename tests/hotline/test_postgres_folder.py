"""A checkout in a folder only root may enter (root's home on Debian, a mktemp -d folder):
the project-local PostgreSQL, which runs as 'postgres', still starts, its cluster kept
outside the checkout."""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import tempfile
from pathlib import Path

import asyncpg
import pytest

from hotline import postgres
from tests.conftest import closed_port

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as 'postgres'")


def test_a_folder_others_may_enter_keeps_its_cluster(tmp_path: Path) -> None:
    open_folder = tmp_path / "open"
    open_folder.mkdir()
    for p in (tmp_path, open_folder):
        p.chmod(0o755)
    if postgres._reachable_by_others(open_folder / "pg" / "data"):
        assert postgres.cluster_dir(open_folder / "pg" / "data") == open_folder / "pg" / "data"


async def test_a_cluster_asked_for_under_a_0700_folder_starts_elsewhere() -> None:
    private = Path(tempfile.mkdtemp(prefix="hotline-0700-"))  # mode 0700, as mktemp -d
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    asked = private / "var" / "pg" / "data"
    real = postgres.cluster_dir(asked)
    assert real.is_relative_to(postgres.RELOCATED) and real.name == "data"
    assert postgres.cluster_dir(real) == real  # asked again (as stop and start do): the same
    password = secrets.token_urlsafe(16)
    try:
        dsn = postgres.start(asked, closed_port(), password, durable=False)
        assert postgres.is_running(asked)
        conn = await asyncpg.connect(dsn)
        assert await conn.fetchval("SELECT 1") == 1
        await conn.close()
        assert not (asked / "PG_VERSION").exists()  # nothing of it inside the checkout
        # A second start (a second `make test`) finds it running and leaves it be.
        assert postgres.start(asked, int(dsn.rsplit(":", 1)[1].split("/")[0]), password,
                              durable=False) == dsn
        pid = int((real / "postmaster.pid").read_text().split()[0])
        postgres.stop(asked)
        assert not postgres.is_running(asked)
        # The server itself is gone (or a zombie no one reaped), not just its pid file.
        status = Path(f"/proc/{pid}/status")
        assert not status.exists() or "\nState:\tZ" in status.read_text()
    finally:
        postgres.stop(asked)
        shutil.rmtree(real.parent, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)
