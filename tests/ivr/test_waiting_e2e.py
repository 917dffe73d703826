"""What a waiting caller hears and what happens when they wait too long (real stack)."""

from __future__ import annotations

import asyncio
import os
import stat
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from db import recordings
from hotline.asterisk import AsteriskInstance, locate
from ivr.ari import AriError
from tests.conftest import SIP_TARGET, VAR, Stack, wait_until
from tests.sip import FarEnd, citizen_call

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean")]


async def test_waiting_callers_hear_their_place_and_wait_in_mandarin(
    stack: Stack, db: asyncpg.Connection
) -> None:
    # Queue t_overflow announces every 3 s; two callers wait, nobody is ready.
    media: list[tuple[str, str]] = []
    async with stack.ari(subscribe_all=True) as ari:
        async def seen(event: dict[str, Any]) -> None:
            p = event["playback"]
            media.append((p["target_uri"].removeprefix("channel:"), p["media_uri"]))

        ari.on("PlaybackStarted", seen)  # once for each item of a list being played
        watcher = asyncio.create_task(ari.run())
        await asyncio.wait_for(ari.connected.wait(), 15)
        before = {r["id"] for r in await db.fetch("SELECT id FROM calls")}
        stack.call("96005", "13600000001", "--hold", "50")
        await wait_until(db, "SELECT count(*) = 1 FROM calls WHERE state = 'waiting' "
                             "AND NOT (id = ANY($1::uuid[]))", list(before))
        stack.call("96005", "13600000002", "--hold", "50")
        await wait_until(db, "SELECT count(*) = 2 FROM calls WHERE state = 'waiting' "
                             "AND NOT (id = ANY($1::uuid[]))", list(before))
        rows = await db.fetch("SELECT channel_id FROM calls WHERE state = 'waiting' "
                              "AND NOT (id = ANY($1::uuid[])) ORDER BY entered_queue_at",
                              list(before))
        first, second = rows[0]["channel_id"], rows[1]["channel_id"]

        def heard(channel: str) -> list[str]:
            items = [uri.removeprefix("sound:hotline/") for ch, uri in media if ch == channel]
            if "position_before" not in items:
                return []
            start = items.index("position_before")
            return items[start:start + 7]

        # An announcement every 3 s, each a few seconds long: wait until both were heard.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 40
        while (len(heard(first)) < 5 or len(heard(second)) < 3) and loop.time() < deadline:
            await asyncio.sleep(0.5)
        watcher.cancel()

    # 您前面还有 一 位来电在等候, 预计等待时间约 N 分钟 / 您前面还有 两 位... (两, not 二,
    # before a measure word)
    assert heard(first)[:3] == ["position_before", "num_1", "position_after"]
    assert heard(first)[3] == "wait_before" and heard(first)[4].startswith("num_")
    assert heard(second)[:3] == ["position_before", "num_liang", "position_after"]


async def test_a_caller_waiting_too_long_leaves_a_voice_message_that_joins_the_case(
    stack: Stack, db: asyncpg.Connection, tmp_path: Path
) -> None:
    before = {r["id"] for r in await db.fetch("SELECT id FROM calls")}
    # A caller from the carrier: SIPp sends speech (A-law RTP) all along.
    caller = await citizen_call(SIP_TARGET, "96005", caller="13600000003", hold=60,
                                log_dir=tmp_path)
    await wait_until(db, "SELECT count(*) FROM calls WHERE NOT (id = ANY($1::uuid[]))",
                     list(before))
    call_id: uuid.UUID = await db.fetchval(
        "SELECT id FROM calls WHERE NOT (id = ANY($1::uuid[]))", list(before))
    # max_wait is 8 s: the caller leaves the queue for the voice message
    await wait_until(db, "SELECT end_reason = 'overflow_voice_message' FROM calls "
                         "WHERE id = $1", call_id, timeout=40)
    assert await db.fetchval("SELECT count(*) FROM queue_log WHERE call_id = $1 "
                             "AND event = 'EXITWITHTIMEOUT'", call_id) == 1
    # The caller hangs up a few seconds after the beep.
    channel = await db.fetchval("SELECT channel_id FROM calls WHERE id = $1", call_id)
    async with stack.ari() as ari:
        for _ in range(150):
            try:
                await ari.request("GET", f"/recordings/live/hotline-vm-{call_id}")
                break
            except AriError:
                await asyncio.sleep(0.2)
        await asyncio.sleep(4)
        await ari.channel(channel).hangup()
    await caller.wait(timeout=20)
    # The recording ends on #, silence or the caller hanging up, and joins the case.
    rec = await wait_until(db, "SELECT file FROM case_recordings WHERE call_id = $1",
                           call_id, timeout=90)
    path = Path(rec)
    assert path.exists() and path.stat().st_size > 44
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # Where Asterisk records it (in the clear, until sealed) is for Asterisk's user only.
    spool = AsteriskInstance(locate(), VAR).host_base / "spool"
    for folder in (spool, spool / "recording", spool / "hotline-fallback"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    # Encrypted at rest: no WAV header on disk; the desk's reader decrypts it to a WAV.
    stored = path.read_bytes()
    assert b"RIFF" not in stored[:64] and b"WAVE" not in stored[:64]
    assert not list(path.parent.glob("*.wav"))  # no plaintext copy beside it
    rec_id = await db.fetchval("SELECT id FROM case_recordings WHERE call_id = $1", call_id)
    audio = await recordings.read_audio(db, stack.keyring(), rec_id)
    assert audio[:4] == b"RIFF" and audio[8:12] == b"WAVE" and len(audio) > 44
    assert await db.fetchval("SELECT kind FROM worklist WHERE call_id = $1", call_id) \
        == "voice_message"


async def test_callback_keeps_the_callers_place_and_calls_back_after_the_agent(
    stack: Stack, db: asyncpg.Connection, desk, carrier: FarEnd
) -> None:
    before = {r["id"] for r in await db.fetch("SELECT id FROM calls")}
    # Caller A presses 1 while waiting, then 1 again to confirm, and hangs up.
    delay = stack.prompt_seconds("t_hello") + 3
    stack.call("96006", "13600000011", "--dtmf-delay", f"{delay:.1f}",
               "--dtmf", "1wwwwww1", "--hold", "60")
    await wait_until(db, "SELECT count(*) FROM calls WHERE callback_at IS NOT NULL "
                         "AND NOT (id = ANY($1::uuid[]))", list(before), timeout=60)
    a = await db.fetchrow("SELECT * FROM calls WHERE callback_at IS NOT NULL "
                          "AND NOT (id = ANY($1::uuid[]))", list(before))
    async with stack.ari() as ari:  # A's line is down...
        await wait_until_gone(ari, a["channel_id"])
    assert a["state"] == "waiting"  # ...but the call keeps its place
    # Caller B arrives later and waits on the line.
    stack.call("96006", "13600000012", "--hold", "60")
    await wait_until(db, "SELECT count(*) = 2 FROM calls WHERE state = 'waiting' "
                         "AND NOT (id = ANY($1::uuid[]))", list(before))
    status = stack.status()["queue"]["waiting"]
    assert [w["call_id"] for w in status if w["dialled_number"] == "96006"][0] == str(a["id"])

    # A's turn comes first: the agent is connected, then A is called back.
    agent = await desk("agent1")
    await agent.set_state("ready")
    await wait_until(db, "SELECT state = 'connected' FROM calls WHERE id = $1", a["id"])
    row = await db.fetchrow("SELECT * FROM calls WHERE id = $1", a["id"])
    assert row["entered_queue_at"] == a["entered_queue_at"]
    async with stack.ari() as ari:
        bridge = {b["id"]: b for b in await ari.bridges()}[row["bridge_id"]]
    assert sorted(bridge["channels"]) == sorted([row["agent_channel_id"],
                                                 row["callback_channel_id"]])
    # The call back went out through the demo trunk, showing the number A had dialled.
    [seen] = await carrier.wait_for_calls(1, outcome="answered")
    assert (seen.dialled, seen.caller_id) == ("13600000011", "96006")
    events = [r["event"] for r in await db.fetch(
        "SELECT event FROM queue_log WHERE call_id = $1 ORDER BY id", a["id"])]
    assert events[:2] == ["ENTERQUEUE", "CALLBACKREQ"] and "CONNECT" in events


async def wait_until_gone(ari: Any, channel_id: str, timeout: float = 20) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while channel_id in {c["id"] for c in await ari.channels()}:
        assert loop.time() < deadline, f"channel {channel_id} still up"
        await asyncio.sleep(0.3)


async def test_the_supervisors_emergency_and_after_hours_messages_reach_callers(
    stack: Stack, db: asyncpg.Connection, desk
) -> None:
    lead = await desk("lead1")
    code, body = await lead.request("POST", "/api/supervisor/announcement",
                                    json={"mode": "emergency", "text": "暴雨预警，请注意安全。"})
    assert code == 200 and body["mode"] == "emergency"
    played: list[str] = []
    async with stack.ari(subscribe_all=True) as ari:
        async def seen(event: dict[str, Any]) -> None:
            played.append(event["playback"]["media_uri"])

        ari.on("PlaybackStarted", seen)
        watcher = asyncio.create_task(ari.run())
        await asyncio.wait_for(ari.connected.wait(), 15)
        await asyncio.sleep(1)  # the message is spoken (espeak-ng) when switched on
        before = {r["id"] for r in await db.fetch("SELECT id FROM calls")}
        stack.call("96002", "13600000021", "--hold", "30")
        # An emergency message is played, then the caller queues as usual.
        await wait_until(db, "SELECT count(*) FROM calls WHERE state = 'waiting' "
                             "AND NOT (id = ANY($1::uuid[]))", list(before), timeout=40)
        watcher.cancel()
    assert any(m.startswith("sound:hotline/announcement_") for m in played), played

    code, _ = await lead.request("POST", "/api/supervisor/announcement",
                                 json={"mode": "after_hours", "text": "现在是非工作时间。"})
    assert code == 200
    await asyncio.sleep(2)
    before = {r["id"] for r in await db.fetch("SELECT id FROM calls")}
    stack.call("96002", "13600000022", "--hold", "30")
    # After hours: no queue, a voice message instead.
    await wait_until(db, "SELECT count(*) FROM calls WHERE end_reason = "
                         "'after_hours_voice_message' AND NOT (id = ANY($1::uuid[]))",
                     list(before), timeout=60)
    code, _ = await lead.request("POST", "/api/supervisor/announcement",
                                 json={"mode": "off", "text": ""})
    assert code == 200
