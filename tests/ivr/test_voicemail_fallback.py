"""Voice messages the dialplan took while call control was down become cases, and the
number dialled is always a hotline number: never the caller's (which the worklist would
show unmasked). A real PostgreSQL; the files are what the fallback context writes."""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg
import pytest

from db import cases as case_store
from db import pool as db_pool
from db.crypto import Keyring
from dialplan import config
from dialplan.render import FALLBACK_SPOOL, render_extensions
from ivr.voicemail import UNKNOWN_DIALLED, VoiceMessages
from tests.conftest import ROOT

CALLER = "13877700109"


@pytest.mark.parametrize(("written", "dialled"), [
    (f"dialled:63160000 caller:{CALLER}", "63160000"),   # today's fallback file
    (f"dialled: caller:{CALLER}", UNKNOWN_DIALLED),       # the number was lost
    (f"12345 {CALLER}", "12345"),                         # written before labels
    (f" {CALLER}", UNKNOWN_DIALLED),                      # the old bug: only the caller's
    (f"dialled:{CALLER} caller:{CALLER}", UNKNOWN_DIALLED),  # no hotline number
])
async def test_a_fallback_message_keeps_only_a_hotline_number_as_dialled(
        pg_dsn: str, conn: asyncpg.Connection, tmp_path: Path, written: str,
        dialled: str) -> None:
    keys = Keyring({"k1": os.urandom(32)}, "k1", os.urandom(32))
    folder = tmp_path / "asterisk" / "spool" / FALLBACK_SPOOL
    folder.mkdir(parents=True)
    (folder / "1733.1.txt").write_text(written + "\n")
    (folder / "1733.1.done").write_text("1")
    pool = await db_pool.connect(pg_dsn, min_size=1, max_size=2)
    try:
        messages = VoiceMessages(pool, keys, tmp_path / "asterisk", tmp_path / "store",
                                 hotline_numbers=["12345", "63160000"])
        assert await messages.import_fallback() == 1
    finally:
        await pool.close()
    [call] = await conn.fetch("SELECT * FROM calls")
    assert call["dialled_number"] == dialled
    assert CALLER not in str(dict(call))  # nowhere in the row, in the clear
    case = await case_store.get(conn, keys, call["case_id"])
    assert case is not None and case["caller_number"] == CALLER  # encrypted, on the case
    assert not list(folder.iterdir())  # imported once: the files are gone


def test_the_dialplan_sets_the_dialled_number_before_call_control_sees_the_call() -> None:
    """Call control may send a call on to the fallback itself (the database is down): the
    number is set before Stasis, so the fallback's file always has it."""
    cfg = config.load(ROOT / "config" / "hotline.yaml")
    text = render_extensions(cfg, "/spool")
    block = text.split("exten => 12345,1,")[1].split("exten =>")[0]
    assert block.index("Set(HOTLINE_DIALLED=12345)") < block.index("Stasis(")
    assert "Set(FILE(${VM}.txt)=dialled:${HOTLINE_DIALLED} caller:${CALLERID(num)})" in text
