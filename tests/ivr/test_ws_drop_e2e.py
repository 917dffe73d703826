"""The ARI events WebSocket drops under a running call control (the link between them is
cut and stays down for seconds): events are missed, then call control reconnects,
reconciles with Asterisk's channels and bridges, and serves the queue with no duplicate
offer and no stuck agent."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.conftest import Stack, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean")]


async def test_a_dropped_websocket_is_reconnected_and_reconciled(
    stack: Stack, db: asyncpg.Connection, desk
) -> None:
    a1 = await desk("agent1")
    start = await db.fetchval("SELECT now()")
    stack.call("12345", "13500000301")
    stack.call("12345", "13500000302")
    await wait_until(db, "SELECT count(*) = 2 FROM calls WHERE state = 'waiting' "
                         "AND arrived_at >= $1", start)
    gone, kept = await db.fetch("SELECT id, channel_id FROM calls WHERE arrived_at >= $1 "
                                "ORDER BY entered_queue_at", start)
    cuts = stack.ari_link.cuts

    stack.ari_link.cut(down_for=5)
    # While call control is deaf: the first caller hangs up (its StasisEnd is never seen by
    # call control) and an agent becomes ready.
    async with stack.ari() as ari:
        await ari.channel(gone["channel_id"]).hangup()
    await a1.set_state("ready")
    await asyncio.sleep(2)
    assert await db.fetchval("SELECT state FROM calls WHERE id = $1", gone["id"]) == "waiting"
    assert await db.fetchval("SELECT count(*) FROM queue_log WHERE event = 'RINGING' "
                             "AND at >= $1", start) == 0, "offered while events were missed"

    # Back up: the gone caller is found gone, the other one is served, once.
    await wait_until(db, "SELECT state = 'ended' FROM calls WHERE id = $1", gone["id"],
                     timeout=30)
    await wait_until(db, "SELECT state = 'connected' FROM calls WHERE id = $1", kept["id"])
    assert await db.fetchval("SELECT end_reason FROM calls WHERE id = $1",
                             gone["id"]) == "caller_hangup"
    assert await db.fetchval("SELECT count(*) FROM queue_log WHERE event = 'ABANDON' "
                             "AND call_id = $1", gone["id"]) == 1
    assert await db.fetchval("SELECT count(*) FROM queue_log WHERE event = 'RINGING' "
                             "AND at >= $1", start) == 1
    assert await db.fetchval("SELECT count(*) FROM queue_log WHERE event = 'CONNECT' "
                             "AND call_id = $1", kept["id"]) == 1
    await a1.expect("connected")
    assert stack.ari_link.cuts == cuts + 1

    # Asterisk agrees: the kept caller and agent1's phone share one bridge.
    bridge = await db.fetchval("SELECT bridge_id FROM calls WHERE id = $1", kept["id"])
    async with stack.ari() as ari:
        (b,) = [b for b in await ari.bridges() if b["id"] == bridge]
        assert kept["channel_id"] in b["channels"]
        assert len(b["channels"]) == 2
        assert gone["channel_id"] not in {c["id"] for c in await ari.channels()}
