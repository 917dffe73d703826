"""The hotline on the telephone network: citizens' calls arrive from the carrier's SIP trunk
(SIPp on 127.0.0.2, the shipped demo trunk, real RTP and RFC 4733 digits), anyone else is
refused, and calls back leave through the trunk to the carrier's far end (SIPp again)."""

from __future__ import annotations

import asyncio
import random
import re
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from db import cases as case_store
from tests.conftest import SIP_TARGET, VAR, Stack, wait_until
from tests.sip import FarEnd, citizen_call, desk_phone

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean")]


async def new_calls(db: asyncpg.Connection, since: float) -> list[asyncpg.Record]:
    return list(await db.fetch(
        "SELECT * FROM calls WHERE arrived_at >= to_timestamp($1) ORDER BY arrived_at", since))


async def test_carrier_calls_to_both_numbers_wait_in_the_one_queue(
    stack: Stack, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """12345, and 63160000 with the menu key 2, in the forms carriers send them: both wait
    in the queue with the number dialled, the trunk, and the caller's number from PAI."""
    since = time.time() - 1
    a = await citizen_call(SIP_TARGET, "037712345", caller="01088886666", pai="13800138000",
                           hold=40, log_dir=tmp_path / "a")
    b = await citizen_call(SIP_TARGET, "+8637763160000", caller="13900139000", digits="2",
                           digits_after=2.0, hold=40, log_dir=tmp_path / "b")
    try:
        await wait_until(db, "SELECT count(*) = 2 FROM calls WHERE state = 'waiting' "
                             "AND arrived_at >= to_timestamp($1)", since, timeout=40)
        waiting = {w["dialled_number"]: w for w in stack.status()["queue"]["waiting"]}
        assert set(waiting) == {"12345", "63160000"}
        assert {w["trunk"] for w in waiting.values()} == {"demo"}
        rows = {r["dialled_number"]: r for r in await new_calls(db, since)}
        assert rows["63160000"]["service"] == "news_tip"  # the key went through as RFC 4733
        assert rows["12345"]["service"] == "hotline"
        keys = stack.keyring()
        case = await case_store.get(db, keys, rows["12345"]["case_id"])
        assert case is not None and case["caller_number"] == "13800138000"  # PAI, not From
        # Media flows both ways on the carrier's leg: Asterisk's own RTP statistics.
        async with stack.ari() as ari:
            stats = await ari.request(
                "GET", f"/channels/{rows['12345']['channel_id']}/rtp_statistics")
        assert stats["rxcount"] > 50 and stats["txcount"] > 50, stats
    finally:
        await a.stop()
        await b.stop()


async def test_an_invite_from_any_other_address_is_refused_before_the_dialplan(
    stack: Stack, db: asyncpg.Connection, tmp_path: Path
) -> None:
    since = time.time() - 1
    calls = await citizen_call(SIP_TARGET, "12345", local_ip="127.0.0.3", refused=True,
                               log_dir=tmp_path)
    result = await calls.wait(timeout=40)
    assert result.final_codes and set(result.final_codes) <= {401, 403}, result.describe()
    assert await new_calls(db, since) == []
    log = (VAR / "asterisk.log").read_text(errors="replace")
    assert re.search(r"Request 'INVITE' from .* failed for '127\.0\.0\.3:\d+'.*"
                     r"No matching endpoint found", log)


async def test_a_caller_id_that_is_not_a_number_counts_as_withheld(
    stack: Stack, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """Letters and dial-string characters in the caller ID are no number: the caller is
    asked for one, and nothing of the header is kept on the case."""
    since = time.time() - 1
    greeting = stack.prompt_seconds("welcome_12345")
    calls = await citizen_call(SIP_TARGET, "12345", caller="138&0013/8000", hold=30,
                               digits="13700137000#", digits_after=greeting + 2.5,
                               log_dir=tmp_path)
    try:
        await wait_until(db, "SELECT count(*) = 1 FROM calls WHERE state = 'waiting' "
                             "AND arrived_at >= to_timestamp($1)", since, timeout=40)
        [row] = await new_calls(db, since)
        case = await case_store.get(db, stack.keyring(), row["case_id"])
        assert case is not None
        assert case["caller_number"] is None
        assert case["callback_number"] == "13700137000"
    finally:
        await calls.stop()


async def _ask_for_a_callback(stack: Stack, number: str, log_dir: Path) -> Any:
    """A caller with Privacy: id keys a callback number, waits, presses 1 (the callback
    key), confirms with 1 and hangs up when told their place is kept."""
    greeting = stack.prompt_seconds("welcome_12345")
    keys = f"{number}#,,,1,,,,1"  # "," is a one-second pause
    return await citizen_call(SIP_TARGET, "12345", caller="13800138000", pai="13800138000",
                              privacy=True, digits=keys, digits_after=greeting + 2.5,
                              hold=greeting + 60, log_dir=log_dir)


async def test_withheld_callers_are_called_back_through_the_trunk_or_refused_with_a_reason(
    stack: Stack, db: asyncpg.Connection, desk: Any, carrier: FarEnd, tmp_path: Path
) -> None:
    """Two withheld callers ask to be called back, the first at an international number:
    it is refused with its reason on the worklist and never reaches the carrier; the second
    is called on the demo trunk and sees the hotline's number."""
    since = time.time() - 1
    first = await _ask_for_a_callback(stack, "0044207946000", tmp_path / "first")
    # So they wait in this order whatever the machine's speed: the second caller rings
    # once the first is in the queue.
    await wait_until(db, "SELECT count(*) = 1 FROM calls WHERE entered_queue_at IS NOT NULL "
                         "AND arrived_at >= to_timestamp($1)", since, timeout=40)
    # A number no earlier test or run used: a caller with an open case would be served
    # first (returning_caller_priority), before the refused one.
    number = f"136{random.randrange(10**8):08d}"
    second = await _ask_for_a_callback(stack, number, tmp_path / "second")
    await wait_until(db, "SELECT count(*) = 2 FROM calls WHERE callback_at IS NOT NULL "
                         "AND arrived_at >= to_timestamp($1)", since, timeout=60)
    for calls in (first, second):  # the hotline hung up after "callback_ok"
        result = await calls.wait(timeout=30)
        assert [c.ended_by for c in result.calls] == ["remote"], result.describe()
    refused, called = await new_calls(db, since)
    for row in (refused, called):
        case = await case_store.get(db, stack.keyring(), row["case_id"])
        assert case is not None and case["caller_number"] is None  # Privacy: id respected

    agent = await desk("agent1")
    await agent.set_state("ready")
    # The first: refused by the dial guard, on the worklist with the reason in words.
    await wait_until(db, "SELECT end_reason = 'callback_refused' FROM calls WHERE id = $1",
                     refused["id"], timeout=40)
    item = await db.fetchrow("SELECT * FROM worklist WHERE call_id = $1", refused["id"])
    assert item["kind"] == "callback" and item["reason"] == "callback_refused"
    status, body = await agent.request("GET", "/api/worklist")
    assert status == 200
    [shown] = [i for i in body["items"] if i["call_id"] == str(refused["id"])]
    assert "外呼检查" in shown["reason_text"]
    attempt = await db.fetchrow("SELECT * FROM dial_attempts WHERE call_id = $1", refused["id"])
    assert attempt["outcome"] == "refused" and attempt["reason"] == "international"

    # The second: the agent is free again, and the citizen is called through the trunk.
    [seen] = await carrier.wait_for_calls(1, timeout=40, outcome="answered")
    assert seen.dialled == number
    assert seen.caller_id == "12345" and seen.pai == "12345"  # the citizen sees 12345
    assert len(carrier.calls()) == 1  # nothing was ever dialled for the refused number
    await wait_until(db, "SELECT state = 'connected' FROM calls WHERE id = $1", called["id"])
    call = await db.fetchrow("SELECT * FROM calls WHERE id = $1", called["id"])
    async with stack.ari() as ari:
        bridge = {b["id"]: b for b in await ari.bridges()}[call["bridge_id"]]
        callee = await ari.request("GET", f"/channels/{call['callback_channel_id']}")
    assert sorted(bridge["channels"]) == sorted([call["agent_channel_id"],
                                                 call["callback_channel_id"]])
    assert callee["name"].startswith("PJSIP/trunk-demo-")
    attempt = await db.fetchrow("SELECT * FROM dial_attempts WHERE call_id = $1", called["id"])
    assert attempt["outcome"] == "dialled" and attempt["purpose"] == "queue_callback"
    # The attempt is kept under the number's blind index, never the number.
    assert await db.fetchval("SELECT count(*) FROM dial_attempts d "
                             "WHERE row_to_json(d)::text LIKE '%' || $1 || '%'", number) == 0


async def test_click_to_dial_from_the_worklist_rings_the_agent_then_the_citizen(
    stack: Stack, db: asyncpg.Connection, desk: Any, carrier: FarEnd, tmp_path: Path
) -> None:
    """回拨 on a missed call: the agent's phone rings first, then the citizen through the
    trunk, who sees 12345; the number never reaches the browser; the outcome is on the
    worklist item and the case's audit trail."""
    since = time.time() - 1
    hold = stack.prompt_seconds("welcome_12345") + 3
    missed = await citizen_call(SIP_TARGET, "12345", caller="13500135001", hold=hold,
                                log_dir=tmp_path / "missed")
    await missed.wait(timeout=hold + 20)
    await wait_until(db, "SELECT count(*) = 1 FROM worklist w JOIN calls c ON c.id = w.call_id"
                         " WHERE c.arrived_at >= to_timestamp($1) AND w.status = 'open'", since)
    [row] = await new_calls(db, since)
    agent = await desk("agent1")
    await agent.set_state("paused")
    status, body = await agent.request("POST", f"/api/worklist/{row['id']}/dial")
    assert status == 202, body
    assert "13500135001" not in str(body) and body["number"].startswith("135")
    await agent.expect("outbound", state="connected", timeout=40)
    [seen] = await carrier.wait_for_calls(1, outcome="answered")
    assert (seen.dialled, seen.caller_id) == ("13500135001", "12345")
    out = await db.fetchrow("SELECT * FROM outbound_calls WHERE id = $1", body["outbound_id"])
    assert out["state"] == "connected" and out["trunk"] == "demo"
    assert await db.fetchval("SELECT state FROM agents WHERE login = 'agent1'") == "on_call"
    async with stack.ari() as ari:
        bridge = {b["id"]: b for b in await ari.bridges()}[f"hotline-out-{out['id']}"]
        assert sorted(bridge["channels"]) == sorted([out["agent_channel_id"],
                                                     out["citizen_channel_id"]])
        await ari.channel(out["agent_channel_id"]).hangup()  # the agent hangs up
    ended = await agent.expect("outbound", state="ended", timeout=20)
    assert ended["outcome"] == "reached"
    assert await db.fetchval("SELECT status FROM worklist WHERE call_id = $1",
                             row["id"]) == "done"
    trail = await db.fetchval("SELECT detail->>'outcome' FROM case_events WHERE case_id = $1 "
                              "AND action = 'callback_attempt'", row["case_id"])
    assert trail == "reached"
    # Back to the pause the agent was in before the call out.
    await wait_until(db, "SELECT state = 'paused' FROM agents WHERE login = 'agent1'")
    assert "13500135001" not in str(agent.messages)


async def test_click_to_dial_refuses_a_number_outside_the_plan_in_plain_words(
    stack: Stack, db: asyncpg.Connection, desk: Any
) -> None:
    case = await case_store.create(db, stack.keyring(), call_id=None, dialled_number="12345",
                                   service="hotline", caller_number="0044207946000")
    agent = await desk("agent1")
    await agent.set_state("paused")
    status, body = await agent.request("POST", f"/api/cases/{case['id']}/dial",
                                       json={"purpose": "case"})
    assert status == 422 and body["code"] == "international", body
    assert "国际" in body["error"]
    assert await db.fetchval("SELECT count(*) FROM outbound_calls WHERE case_id = $1",
                             case["id"]) == 0
    assert await db.fetchval("SELECT state FROM agents WHERE login = 'agent1'") == "paused"


def _phone_password(stack: Stack, phone: str) -> str:
    """What `hotline phones ID` tells the admin to set on the phone (generated secret)."""
    found = re.search(r"password:\s+(\S+)", stack.cli("phones", phone).stdout)
    assert found, "hotline phones shows no password"
    return found[1]


async def test_an_agents_sip_desk_phone_registers_and_answers_a_carrier_call(
    stack: Stack, db: asyncpg.Connection, desk: Any, tmp_path: Path
) -> None:
    phone = await desk_phone(SIP_TARGET, "8101", _phone_password(stack, "8101"),
                             local_ip="127.0.0.4", log_dir=tmp_path)
    since = time.time() - 1
    calls = None
    try:
        assert await phone.wait_registered() == [401, 200]
        agent = await desk("agent_sip")
        await agent.set_state("ready")
        calls = await citizen_call(SIP_TARGET, "12345", caller="13800138000", hold=40,
                                   log_dir=tmp_path / "citizen")
        [seen] = await phone.wait_for_calls(1, timeout=40, outcome="answered")
        assert seen.caller_id == "12345"  # the desk phone shows the number dialled
        await wait_until(db, "SELECT count(*) = 1 FROM calls WHERE state = 'connected' "
                             "AND arrived_at >= to_timestamp($1)", since)
        [row] = await new_calls(db, since)
        async with stack.ari() as ari:
            bridge = {b["id"]: b for b in await ari.bridges()}[row["bridge_id"]]
            assert sorted(bridge["channels"]) == sorted([row["channel_id"],
                                                         row["agent_channel_id"]])
            leg = await ari.request("GET", f"/channels/{row['agent_channel_id']}")
            assert leg["name"].startswith("PJSIP/8101-")
            await asyncio.sleep(2)
            stats = await ari.request("GET",
                                      f"/channels/{row['agent_channel_id']}/rtp_statistics")
        assert stats["rxcount"] > 20 and stats["txcount"] > 20, stats  # audio both ways
    finally:
        if calls is not None:
            await calls.stop()
        await phone.stop()


async def test_a_phone_outside_the_duty_rooms_network_or_with_a_wrong_password_is_refused(
    stack: Stack, tmp_path: Path
) -> None:
    wrong = await desk_phone(SIP_TARGET, "8101", "Wrong-Password-7xQ", local_ip="127.0.0.4",
                             log_dir=tmp_path / "wrong")
    outside = await desk_phone(SIP_TARGET, "8101", _phone_password(stack, "8101"),
                               local_ip="127.0.0.5", log_dir=tmp_path / "outside")
    try:
        assert 200 not in await wrong.wait_registered()
        # Refused by the endpoint's ACL; Asterisk answers 401 all the same (a scanner is
        # not told why) and logs the reason.
        assert 200 not in await outside.wait_registered()
        log = (VAR / "asterisk.log").read_text(errors="replace")
        assert re.search(r"Request 'REGISTER' from .* failed for '127\.0\.0\.5:\d+'.*"
                         r"Not match Endpoint ACL", log)
    finally:
        await wrong.stop()
        await outside.stop()
