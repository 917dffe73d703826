"""`hotline call` takes the real path: a SIP call from the demo trunk's address (SIPp, real
RTP and RFC 4733 keys), as a carrier would send it, not a Local channel inside Asterisk."""

from __future__ import annotations

import time

import asyncpg
import pytest

from db import cases as case_store
from tests.conftest import Stack, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean")]


async def test_hotline_call_is_a_carriers_sip_call(stack: Stack, db: asyncpg.Connection) -> None:
    since = time.time() - 1
    out = stack.cli("call", "12345", "--from", "13800138041", "--hold", "30").stdout
    assert "trunk demo" in out and "SIP from 127.0.0.2" in out, out
    out = stack.cli("call", "63160000", "--from", "13900139042", "--dtmf", "2",
                    "--dtmf-delay", "2", "--hold", "30").stdout
    assert "SIP from 127.0.0.2" in out, out
    await wait_until(db, "SELECT count(*) = 2 FROM calls WHERE state = 'waiting' "
                         "AND arrived_at >= to_timestamp($1)", since, timeout=40)
    rows = {r["dialled_number"]: r for r in await db.fetch(
        "SELECT * FROM calls WHERE arrived_at >= to_timestamp($1)", since)}
    assert {r["trunk"] for r in rows.values()} == {"demo"}
    assert rows["63160000"]["service"] == "news_tip"  # the key, as RFC 4733
    async with stack.ari() as ari:
        channel = await ari.request("GET", f"/channels/{rows['12345']['channel_id']}")
    assert channel["name"].startswith("PJSIP/trunk-demo-")  # not a Local channel
    case = await case_store.get(db, stack.keyring(), rows["12345"]["case_id"])
    assert case is not None and case["caller_number"] == "13800138041"  # from PAI
    waiting = {w["dialled_number"]: w["trunk"] for w in stack.status()["queue"]["waiting"]}
    assert waiting == {"12345": "demo", "63160000": "demo"}


async def test_hotline_call_refuses_what_cannot_be_dialled(stack: Stack) -> None:
    """Keys SIP cannot carry, or a caller that is no number: refused in words, no call."""
    for args, words in ((["12345", "--dtmf", "12A"], "cannot be sent over SIP"),
                        (["12345", "--from", "138;rm"], "is not a number")):
        done = stack.cli("call", *args, check=False)
        assert done.returncode == 2 and words in done.stderr, done
        assert "Traceback" not in done.stderr
