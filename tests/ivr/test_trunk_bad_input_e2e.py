"""Bad input from the telephone network: SIPp plays the carrier against the real Asterisk.

Offers the hotline cannot take, in-band DTMF, a carrier's own requests inside a call, a far
end that vanishes without a BYE, a trunk that is down, a flood of INVITEs from an unknown
address. Each has a defined behaviour and a log line, crashes nothing, and leaves no
caller waiting in silence (the trunks: tests/conftest.py; `demo` ends a call after
RTP_TIMEOUT s without RTP, `backup` at 127.0.0.6 is the second way out)."""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from hotline.asterisk import AsteriskInstance, locate
from tests.conftest import (
    BACKUP_IP,
    BACKUP_PORT,
    CARRIER_IP,
    CARRIER_PORT,
    RTP_TIMEOUT,
    SIP_TARGET,
    VAR,
    Stack,
    wait_until,
)
from tests.sip import (
    bad_offer_call,
    citizen_call,
    far_end,
    inband_call,
    reinvite_call,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean")]

WAITING_SINCE = ("SELECT count(*) = $2 FROM calls WHERE state = 'waiting' "
                 "AND arrived_at >= to_timestamp($1)")


async def new_calls(db: asyncpg.Connection, since: float) -> list[asyncpg.Record]:
    return list(await db.fetch(
        "SELECT * FROM calls WHERE arrived_at >= to_timestamp($1) ORDER BY arrived_at", since))


def log_since(path: Path, offset: int) -> str:
    """What a log file gained past offset (its size before the test's calls)."""
    with path.open("rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def log_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def mobile() -> str:
    """A mobile number of its own for each run (the dial guard caps calls per number)."""
    return "1360" + f"{random.SystemRandom().randrange(10**7):07d}"


async def test_an_offer_of_codecs_the_hotline_does_not_have_is_refused_488(
    stack: Stack, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """G.729 only, GSM only: 488 Not Acceptable Here before a channel exists, so no call
    is recorded and nobody waits."""
    since = time.time() - 1
    calls = [await bad_offer_call(SIP_TARGET, "12345", offer, log_dir=tmp_path)
             for offer in ("g729", "gsm")]
    for c in calls:
        result = (await c.wait(timeout=30)).check()
        assert result.final_codes == {488: 1}, result.describe()
    assert await new_calls(db, since) == []
    async with stack.ari() as ari:
        assert [c["name"] for c in await ari.channels()] == []


async def test_malformed_sdp_is_refused_400_and_the_next_call_is_answered(
    stack: Stack, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """A body that is no SDP, and SDP without a c= line: 400 Bad Request (pjproject's
    parser logs why), nothing recorded, and Asterisk takes the next good call."""
    log = VAR / "asterisk.log"
    offset = log_size(log)
    since = time.time() - 1
    for offer in ("garbage", "no_connection"):
        result = (await (await bad_offer_call(SIP_TARGET, "12345", offer, log_dir=tmp_path)
                         ).wait(timeout=30)).check()
        assert result.final_codes == {400: 1}, result.describe()
    assert await new_calls(db, since) == []
    written = log_since(log, offset)
    assert "Error parsing/validating SDP body" in written
    assert "Missing SDP connection info line" in written
    async with await citizen_call(SIP_TARGET, "96002", hold=30, log_dir=tmp_path) as good:
        await good.answered(1, timeout=10)
        await wait_until(db, WAITING_SINCE, since, 1, timeout=20)


async def test_a_key_sent_only_as_tones_in_the_audio_is_heard(
    stack: Stack, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """A carrier without RFC 4733: its offer has no telephone-event and the caller's key 2
    arrives as the two tones of "2" in the A-law audio. Asterisk answers without
    telephone-event, detects the tones itself (dtmf_mode auto), and 63160000's menu takes
    the key: a news tip."""
    since = time.time() - 1
    async with await inband_call(SIP_TARGET, "63160000", digits="2", digits_after=2.0,
                                 hold=30, caller="13900139000", log_dir=tmp_path) as calls:
        await wait_until(db, WAITING_SINCE, since, 1, timeout=40)
        [row] = await new_calls(db, since)
        assert row["dialled_number"] == "63160000" and row["trunk"] == "demo"
        assert row["service"] == "news_tip"  # the key, from the tones
        [record] = calls.progress().calls
        assert [kind for _, kind in record.events][:2] == ["ANSWERED", "TONES"]
        answer = _answer_sdp(calls.sipp.messages_file.read_text(errors="replace"))
        assert "m=audio" in answer and "telephone-event" not in answer, answer


def _answer_sdp(messages: str) -> str:
    """The SDP of the hotline's 200 OK to the INVITE, from SIPp's message trace (its
    messages are separated by lines of dashes)."""
    answer = messages.split("SIP/2.0 200 OK", 1)[1].split("\n-----", 1)[0]
    assert "CSeq: 1 INVITE" in answer and "v=0" in answer, answer
    return answer[answer.index("v=0"):]


async def _music_sent(ari: Any, channel_id: str, seconds: float = 2.0) -> int:
    """RTP packets Asterisk sent a channel in `seconds` (50 a second while music plays)."""
    before = (await ari.request("GET", f"/channels/{channel_id}/rtp_statistics"))["txcount"]
    await asyncio.sleep(seconds)
    after = (await ari.request("GET", f"/channels/{channel_id}/rtp_statistics"))["txcount"]
    return int(after - before)


async def test_the_next_caller_hears_music_after_the_queue_was_empty(
    stack: Stack, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """Asterisk's music-on-hold channel leaves a holding bridge with its last caller: the
    hotline puts the music back, so whoever waits next is not left in silence."""
    since = time.time() - 1
    first = await citizen_call(SIP_TARGET, "96002", hold=4, log_dir=tmp_path)
    await wait_until(db, WAITING_SINCE, since, 1, timeout=15)
    (await first.wait(timeout=30)).check()  # hung up: the holding bridge is empty
    await wait_until(db, "SELECT count(*) = 0 FROM calls WHERE state <> 'ended' "
                         "AND arrived_at >= to_timestamp($1)", since)
    since = time.time()
    async with await citizen_call(SIP_TARGET, "96002", hold=30, log_dir=tmp_path):
        await wait_until(db, WAITING_SINCE, since, 1, timeout=15)
        [row] = await new_calls(db, since)
        async with stack.ari() as ari:
            sent = await _music_sent(ari, row["channel_id"])
    assert sent >= 80, f"{sent} RTP packets in 2 s: the caller waits in silence"


async def test_re_invites_updates_and_session_timers_from_the_carrier_keep_the_call(
    stack: Stack, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """A waiting caller's carrier asks for session timers, then sends a re-INVITE with the
    same offer, one that moves its media to another port, and an UPDATE (a refresh). Each
    is answered 200, the caller keeps waiting, and the music keeps flowing (Asterisk's own
    RTP counters) to the new port. Their BYE then ends the call as a hang-up."""
    since = time.time() - 1
    calls = await reinvite_call(SIP_TARGET, "96002", session_expires=600, reinvite_at=4,
                                move_at=7, update_at=10, hold=14, log_dir=tmp_path)
    try:
        [answered] = await calls.answered(1, timeout=10)
        assert answered.answered_at is not None
        await wait_until(db, WAITING_SINCE, since, 1, timeout=15)
        [row] = await new_calls(db, since)
        sent: list[int] = []
        dests: list[str] = []
        async with stack.ari() as ari:
            caller = ari.channel(row["channel_id"])
            # Before the re-INVITE, and after each step: the call waits, music flows.
            for at in (2.5, 5.5, 8.5, 11.5):
                await asyncio.sleep(max(0.0, answered.answered_at + at - time.time()))
                assert await db.fetchval("SELECT state FROM calls WHERE id = $1",
                                         row["id"]) == "waiting"
                stats = await ari.request("GET", f"/channels/{caller.id}/rtp_statistics")
                sent.append(stats["txcount"])
                dests.append(await caller.get_var("CHANNEL(rtp,dest)"))
        print(f"music to the caller, RTP packets sent: {sent}; sent to: {dests}")
        assert all(b - a >= 50 for a, b in zip(sent, sent[1:], strict=False)), sent
        port = calls.sipp.media_port
        assert dests[0].endswith(f":{port}") and dests[-1].endswith(f":{port + 2}"), dests
        result = (await calls.wait(timeout=30)).check()
    finally:
        await calls.stop()
    [record] = result.calls
    assert record.accepted == ["reinvite", "move", "update"], result.describe()
    assert record.session_expires and record.session_expires.startswith("600"), record
    assert record.ended_by == "local"
    await wait_until(db, "SELECT state = 'ended' FROM calls WHERE id = $1", row["id"])
    assert await db.fetchval("SELECT end_reason FROM calls WHERE id = $1",
                             row["id"]) == "caller_hangup"


async def test_a_caller_whose_line_dies_without_a_bye_is_ended_and_called_back(
    stack: Stack, db: asyncpg.Connection, desk: Any, tmp_path: Path
) -> None:
    """The caller's SIPp is killed (SIGKILL) while waiting: no BYE, no more RTP. Within
    the trunk's rtp_timeout Asterisk ends the leg, the call ends as `rtp_timeout`, is never
    offered to an agent, and is a missed call on the worklist with the reason."""
    ivr_log, ast_log = VAR / "log" / "ivr.log", VAR / "asterisk.log"
    offsets = log_size(ivr_log), log_size(ast_log)
    since = time.time() - 1
    caller = "13700137001"
    calls = await citizen_call(SIP_TARGET, "96002", caller=caller, hold=120, log_dir=tmp_path)
    try:
        await wait_until(db, WAITING_SINCE, since, 1, timeout=20)
        [row] = await new_calls(db, since)
        calls.sipp.kill()
        killed = time.monotonic()
        await wait_until(db, "SELECT state = 'ended' FROM calls WHERE id = $1", row["id"],
                         timeout=RTP_TIMEOUT + 15)
        noticed = time.monotonic() - killed
    finally:
        await calls.stop()
    print(f"the dead line was ended {noticed:.1f} s after the caller's client died "
          f"(rtp_timeout {RTP_TIMEOUT} s)")
    # Asterisk counts whole seconds since the last packet it received.
    assert RTP_TIMEOUT - 1.5 <= noticed <= RTP_TIMEOUT + 6
    row = await db.fetchrow("SELECT * FROM calls WHERE id = $1", row["id"])
    assert row["end_reason"] == "rtp_timeout" and row["agent_id"] is None
    events = [r["event"] for r in await db.fetch(
        "SELECT event FROM queue_log WHERE call_id = $1 ORDER BY id", row["id"])]
    assert events == ["ENTERQUEUE", "ABANDON"], events
    item = await db.fetchrow("SELECT * FROM worklist WHERE call_id = $1", row["id"])
    assert item["kind"] == "abandoned" and item["reason"] == "rtp_timeout"

    # An agent who comes in now is not offered the dead call; the desk shows why it ended.
    agent = await desk("agent1")
    await agent.set_state("ready")
    await asyncio.sleep(2)
    assert await db.fetchval("SELECT state FROM agents WHERE login = 'agent1'") == "ready"
    assert await db.fetchval("SELECT count(*) FROM call_offers WHERE call_id = $1",
                             row["id"]) == 0
    status, body = await agent.request("GET", "/api/worklist")
    assert status == 200
    [shown] = [i for i in body["items"] if i["call_id"] == str(row["id"])]
    assert "线路中断" in shown["reason_text"]

    # Both logs say why, without the caller's number.
    ivr = log_since(ivr_log, offsets[0])
    assert f"call {row['id']}: the caller's line was lost without a hang-up (rtp_timeout)" \
        in ivr, ivr[-2000:]
    assert caller not in ivr
    assert re.search(r"Disconnecting channel 'PJSIP/trunk-demo-[0-9a-f]+' for lack of audio "
                     r"RTP activity", log_since(ast_log, offsets[1]))


async def _waits_for_a_callback(stack: Stack, db: asyncpg.Connection,
                                number: str) -> asyncpg.Record:
    """A caller on 96006 presses 1 and confirms with 1: their call keeps its place and
    they are called back on `number` when an agent is free."""
    before = [r["id"] for r in await db.fetch("SELECT id FROM calls")]
    delay = stack.prompt_seconds("t_hello") + 3
    stack.call("96006", number, "--dtmf-delay", f"{delay:.1f}", "--dtmf", "1wwwwww1",
               "--hold", "60")
    await wait_until(db, "SELECT count(*) = 1 FROM calls WHERE callback_at IS NOT NULL "
                         "AND NOT (id = ANY($1::uuid[]))", before, timeout=60)
    return await db.fetchrow("SELECT * FROM calls WHERE callback_at IS NOT NULL "
                             "AND NOT (id = ANY($1::uuid[]))", before)


async def test_a_trunk_that_is_down_fails_over_to_the_second_trunk(
    stack: Stack, db: asyncpg.Connection, desk: Any, tmp_path: Path
) -> None:
    """The demo carrier refuses the call back with 503 before anything rings: the backup
    trunk carries it, and the citizen is connected with the agent."""
    demo = await far_end(CARRIER_IP, CARRIER_PORT, answer_after=0, reject=503, ring=False,
                         log_dir=tmp_path / "demo")
    backup = await far_end(BACKUP_IP, BACKUP_PORT, answer_after=0.5, hold=60,
                           log_dir=tmp_path / "backup")
    ivr_log = VAR / "log" / "ivr.log"
    offset = log_size(ivr_log)
    try:
        number = mobile()
        row = await _waits_for_a_callback(stack, db, number)
        agent = await desk("agent1")
        await agent.set_state("ready")
        [refused] = await demo.wait_for_calls(1, timeout=40, outcome="rejected")
        [seen] = await backup.wait_for_calls(1, timeout=20, outcome="answered")
        assert refused.dialled == seen.dialled == number
        assert seen.caller_id == "96006"  # the number the citizen called
        await wait_until(db, "SELECT state = 'connected' FROM calls WHERE id = $1", row["id"])
        call = await db.fetchrow("SELECT * FROM calls WHERE id = $1", row["id"])
        async with stack.ari() as ari:
            callee = await ari.request("GET", f"/channels/{call['callback_channel_id']}")
        assert callee["name"].startswith("PJSIP/trunk-backup-")
        written = log_since(ivr_log, offset)
        assert f"call {row['id']}: the trunk failed (cause 34); trying the next one" in written
        assert f"call {row['id']}: calling the citizen back on trunk backup" in written
        assert number not in written
    finally:
        await demo.stop()
        await backup.stop()


async def test_with_every_trunk_down_the_callback_stays_on_the_worklist(
    stack: Stack, db: asyncpg.Connection, desk: Any, tmp_path: Path
) -> None:
    demo = await far_end(CARRIER_IP, CARRIER_PORT, answer_after=0, reject=503, ring=False,
                         log_dir=tmp_path / "demo")
    backup = await far_end(BACKUP_IP, BACKUP_PORT, answer_after=0, reject=503, ring=False,
                           log_dir=tmp_path / "backup")
    try:
        row = await _waits_for_a_callback(stack, db, mobile())
        agent = await desk("agent1")
        await agent.set_state("ready")
        await wait_until(db, "SELECT end_reason = 'callback_trunk_failed' FROM calls "
                             "WHERE id = $1", row["id"], timeout=40)
        assert len(await demo.wait_for_calls(1, outcome="rejected")) == 1
        assert len(await backup.wait_for_calls(1, outcome="rejected")) == 1
        item = await db.fetchrow("SELECT * FROM worklist WHERE call_id = $1", row["id"])
        assert item["kind"] == "callback" and item["reason"] == "callback_trunk_failed"
        status, body = await agent.request("GET", "/api/worklist")
        assert status == 200
        [shown] = [i for i in body["items"] if i["call_id"] == str(row["id"])]
        assert "外呼线路故障" in shown["reason_text"]
        # The agent is free for the next caller.
        await wait_until(db, "SELECT state IN ('ready', 'wrap_up') FROM agents "
                             "WHERE login = 'agent1'")
    finally:
        await demo.stop()
        await backup.stop()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (/proc/<pid>/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def test_a_flood_of_invites_from_an_unknown_address_is_shut_out(
    stack: Stack, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """200 INVITEs a second for 10 s from 127.0.0.3 (no trunk): the first are refused (401)
    until the SIP guard bans the address (sip_guard.failures); the rest get 403 from
    Asterisk's ACL before any endpoint lookup. None gets a channel, Asterisk's CPU stays
    low, and a carrier's call placed during the flood is answered at once and waits in the
    queue. `hotline sip-bans` lists the ban; lifting it lets the address be challenged
    again (401), as any unknown address is."""
    asterisk = AsteriskInstance(locate(), VAR)
    pid = int((asterisk.host_base / "run" / "asterisk.pid").read_text())
    log = VAR / "asterisk.log"
    offset = log_size(log)
    cpu0, t0 = _cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(2)
    idle = (_cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
    since = time.time() - 1
    rate, seconds = 200, 10
    flood = await citizen_call(SIP_TARGET, "12345", local_ip="127.0.0.3", refused=True,
                               calls=rate * seconds, rate=rate, answer_timeout=10,
                               log_dir=tmp_path / "flood")
    try:
        cpu0, t0 = _cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(3)  # the flood is under way
        placed = time.time()
        async with await citizen_call(SIP_TARGET, "96002", hold=30,
                                      log_dir=tmp_path / "carrier") as good:
            [record] = await good.answered(1, timeout=10)
            assert record.answered_at is not None
            answer = record.answered_at - placed
            await wait_until(db, WAITING_SINCE, since, 1, timeout=15)
            busiest = 0.0
            while flood.sipp.running and time.monotonic() - t0 < seconds + 5:
                c, t = _cpu_seconds(pid), time.monotonic()
                await asyncio.sleep(1)
                busiest = max(busiest, (_cpu_seconds(pid) - c) / (time.monotonic() - t))
            load = (_cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
            result = await flood.wait(timeout=40)
    finally:
        await flood.stop()
    refusals = len(re.findall(r"failed for '127\.0\.0\.3:\d+'.*No matching endpoint found",
                              log_since(log, offset)))
    codes = result.final_codes
    print(f"Asterisk CPU: idle {idle:.0%}, during {rate} INVITEs/s {load:.0%} "
          f"(busiest second {busiest:.0%}); the carrier's call answered in {answer:.2f} s; "
          f"{refusals} refusals logged; answers {dict(codes)}")
    assert set(codes) <= {401, 403} and sum(codes.values()) == rate * seconds, \
        result.describe()
    # Banned within the first second or two: most of the flood never reached the lookup.
    assert codes[403] >= rate * seconds * 0.7, result.describe()
    assert refusals == codes[401]
    assert [r["dialled_number"] for r in await new_calls(db, since)] == ["96002"]
    assert answer < 3
    assert load < 0.5 and busiest < 0.8  # of one core

    [ban] = await db.fetch("SELECT * FROM sip_bans WHERE host(address) = '127.0.0.3' "
                           "AND lifted_at IS NULL")
    assert ban["reason"] == "InvalidAccountID" and ban["failures"] >= 10
    listed = stack.cli("sip-bans").stdout
    assert "127.0.0.3" in listed and "banned until" in listed
    assert stack.cli("sip-bans", "lift", "127.0.0.3").returncode == 0
    assert "lifted by" in stack.cli("sip-bans").stdout

    async def challenged_again() -> bool:
        probe = await citizen_call(SIP_TARGET, "12345", local_ip="127.0.0.3", refused=True,
                                   log_dir=tmp_path / f"probe{time.monotonic_ns()}")
        return (await probe.wait(timeout=10)).final_codes == {401: 1}

    deadline = time.monotonic() + 10
    while not await challenged_again():
        assert time.monotonic() < deadline, "127.0.0.3 still refused after the ban was lifted"
        await asyncio.sleep(0.5)
