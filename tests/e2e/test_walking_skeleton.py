"""The thin path through every part, on the real Asterisk and PostgreSQL."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from db import cases as case_store
from db.crypto import normalise_phone
from hotline.postgres import pg_dump
from tests.conftest import Stack, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean")]


async def _waiting_call(db: asyncpg.Connection, dialled: str) -> asyncpg.Record:
    await wait_until(db, "SELECT count(*) FROM calls WHERE state = 'waiting' "
                         "AND dialled_number = $1", dialled)
    return await db.fetchrow("SELECT * FROM calls WHERE state = 'waiting' AND dialled_number = $1"
                             " ORDER BY entered_queue_at DESC LIMIT 1", dialled)


async def test_both_numbers_wait_in_one_queue_and_reach_ready_agents(
    stack: Stack, db: asyncpg.Connection, desk
) -> None:
    stack.call("12345", "13800138001")
    first = await _waiting_call(db, "12345")
    stack.call("63160000", "13900139002", "--dtmf", "2")
    second = await _waiting_call(db, "63160000")

    # With no agent ready, both wait in the same queue, in arrival order.
    status = stack.status()
    waiting = status["queue"]["waiting"]
    assert [w["dialled_number"] for w in waiting] == ["12345", "63160000"]
    assert {w["queue"] for w in waiting} == {"duty"}
    assert waiting[1]["service"] == "news_tip"

    # An agent who goes ready on the desk gets the first of them.
    a1 = await desk("agent1")
    await a1.expect("snapshot")
    await a1.set_state("ready")
    offer = await a1.expect("offer", call__call_id=str(first["id"]))
    assert offer["case"]["caller_number"] == "13800138001"
    assert offer["case"]["dialled_number"] == "12345"
    connected = await a1.expect("connected", call__call_id=str(first["id"]))
    assert connected["case"]["id"] == offer["case"]["id"]

    # Asterisk really bridged the caller with the agent's phone.
    row = await db.fetchrow("SELECT * FROM calls WHERE id = $1", first["id"])
    assert row["state"] == "connected"
    async with stack.ari() as ari:
        bridges = {b["id"]: b for b in await ari.bridges()}
    bridge = bridges[row["bridge_id"]]
    assert sorted(bridge["channels"]) == sorted([row["channel_id"], row["agent_channel_id"]])
    assert bridge["bridge_type"] == "mixing"
    holding = bridges["hotline-queue-duty"]
    assert second["channel_id"] in holding["channels"]
    assert row["channel_id"] not in holding["channels"]

    # A second agent gets the 63160000 caller.
    a2 = await desk("agent2")
    await a2.set_state("ready")
    offer2 = await a2.expect("connected", call__call_id=str(second["id"]))
    assert offer2["case"]["service"] == "news_tip"
    assert offer2["case"]["caller_number"] == "13900139002"
    assert stack.status()["queue"]["waiting"] == []

    # The agent fills in the case; it is stored, personal fields encrypted.
    case_id = offer["case"]["id"]
    status_code, body = await a1.request("PUT", f"/api/cases/{case_id}", json={
        "name": "赵先生", "address": "卧龙区建设路12号", "category": "04",
        "content": "小区电压从220伏降到125伏，电器无法使用。", "work_unit": "",
        "callback_number": "",
    })
    assert status_code == 200, body
    assert body["case"]["name"] == "赵先生"
    fields = await db.fetch("SELECT field, key_id, ciphertext FROM case_personal "
                            "WHERE case_id = $1 ORDER BY field", case_id)
    assert [f["field"] for f in fields] == ["address", "caller_number", "name"]
    for f in fields:
        assert "赵先生".encode() not in f["ciphertext"]
        assert b"13800138001" not in f["ciphertext"]
        assert f["key_id"]
    # Another agent cannot read it.
    code, _ = await a2.request("GET", f"/api/cases/{case_id}")
    assert code == 404

    # The desk pushed the queue as it changed: a snapshot listing both waiting calls.
    both = [m for m in a1.messages if m["type"] == "snapshot"
            and len(m["queue"]["waiting"]) >= 1]
    assert both, "the desk never saw a waiting call"
    assert all(w["caller_masked"] is None or "*" in w["caller_masked"]
               for m in both for w in m["queue"]["waiting"])


async def test_repeat_caller_found_by_blind_index(stack: Stack, db: asyncpg.Connection) -> None:
    number = "1370000" + str(uuid.uuid4().int)[:4]
    for _ in range(2):
        stack.call("12345", number, "--hold", "20")
        await wait_until(db, "SELECT count(*) FROM calls c JOIN cases k ON k.call_id = c.id "
                             "WHERE c.state = 'waiting'")
        async with stack.ari() as ari:
            for ch in await ari.channels():
                await ari.channel(ch["id"]).hangup()
        await wait_until(db, "SELECT count(*) = 0 FROM calls WHERE state <> 'ended'")
    found = await case_store.find_by_phone(db, stack.keyring(), "+86 " + number)
    assert len(found) == 2
    assert normalise_phone("+86 " + number) == number


async def test_database_dump_holds_no_caller_number_in_clear(
    stack: Stack, db: asyncpg.Connection
) -> None:
    number = "1590000" + str(uuid.uuid4().int)[:4]
    stack.call("63160000", number, "--dtmf", "1", "--hold", "30")
    call = await _waiting_call(db, "63160000")
    assert call["case_id"] is not None
    dump = pg_dump(stack.dsn)
    assert "case_personal" in dump and len(dump) > 1000
    assert number not in dump
    assert number[-8:] not in dump


async def test_withheld_caller_keys_a_callback_number(
    stack: Stack, db: asyncpg.Connection
) -> None:
    # The greeting plays first, then the callback question; keys typed during the
    # question are taken (barge-in).
    delay = stack.prompt_seconds("welcome_12345") + 1.5
    stack.call("12345", "withheld", "--dtmf", "13612345678#", "--dtmf-delay", f"{delay:.1f}")
    call = await _waiting_call(db, "12345")
    case = await case_store.get(db, stack.keyring(), call["case_id"])
    assert case is not None
    assert case["caller_withheld"] is True
    assert case["caller_number"] is None
    assert case["callback_number"] == "13612345678"


@pytest.mark.parametrize("keys, service", [("9", "hotline"), ("", "hotline"), ("3", "info_query")])
async def test_menu_bad_key_or_timeout_is_a_hotline_matter(
    stack: Stack, db: asyncpg.Connection, keys: str, service: str
) -> None:
    extra = ["--dtmf", keys] if keys else []
    stack.call("63160000", "13500135000", *extra)
    call = await _waiting_call(db, "63160000")
    assert call["service"] == service


async def test_caller_hangs_up_while_waiting(stack: Stack, db: asyncpg.Connection) -> None:
    hold = stack.prompt_seconds("welcome_12345") + 4
    stack.call("12345", "13700137000", "--hold", f"{hold:.1f}")
    call = await _waiting_call(db, "12345")
    await wait_until(db, "SELECT state = 'ended' FROM calls WHERE id = $1", call["id"])
    row = await db.fetchrow("SELECT * FROM calls WHERE id = $1", call["id"])
    assert row["end_reason"] == "caller_hangup"
    abandon = await db.fetchrow("SELECT * FROM queue_log WHERE call_id = $1 AND event = 'ABANDON'",
                                call["id"])
    assert abandon is not None
    assert stack.status()["queue"]["waiting"] == []
    # The case stays: a caller who gave up is still on record.
    assert await db.fetchval("SELECT count(*) FROM cases WHERE id = $1", row["case_id"]) == 1


async def test_agent_phone_not_answered_goes_back_to_queue(
    stack: Stack, db: asyncpg.Connection, desk
) -> None:
    a3 = await desk("agent3")  # phone 8009 never answers; ring_timeout is 6 s
    stack.call("12345", "13600136000")
    call = await _waiting_call(db, "12345")
    await a3.set_state("ready")
    await a3.expect("offer", call__call_id=str(call["id"]))
    # (The push of the login's own pause may come first: wait for the no-answer one.)
    pushed = await a3.expect("agent", timeout=20, agent__state="paused",
                             agent__reason="no_answer")
    assert pushed["agent"]["reason"] == "no_answer"
    row = await db.fetchrow("SELECT * FROM calls WHERE id = $1", call["id"])
    assert row["state"] == "waiting"
    assert row["entered_queue_at"] == call["entered_queue_at"]  # keeps its place
    assert await db.fetchval("SELECT count(*) FROM queue_log WHERE call_id = $1 "
                             "AND event = 'RINGNOANSWER'", call["id"]) == 1
    # The next agent who is ready gets it.
    a1 = await desk("agent1")
    await a1.set_state("ready")
    await a1.expect("connected", call__call_id=str(call["id"]))


async def test_agent_hangs_up_and_caller_is_released(
    stack: Stack, db: asyncpg.Connection, desk
) -> None:
    a1 = await desk("agent1")
    await a1.set_state("ready")
    stack.call("12345", "13300133000")
    msg = await a1.expect("connected")
    call_id = uuid.UUID(msg["call"]["call_id"])
    row = await db.fetchrow("SELECT * FROM calls WHERE id = $1", call_id)
    async with stack.ari() as ari:
        await ari.channel(row["agent_channel_id"]).hangup()
        await wait_until(db, "SELECT state = 'ended' FROM calls WHERE id = $1", call_id)
        names = {c["id"] for c in await ari.channels()}
    assert row["channel_id"] not in names
    row = await db.fetchrow("SELECT * FROM calls WHERE id = $1", call_id)
    assert row["end_reason"] == "agent_hangup"
    ended = await a1.expect("call_ended", call_id=str(call_id))
    assert ended["reason"] == "agent_hangup"
    # Wrap-up first (the test queue's is 3 s), then ready for the next call.
    assert await db.fetchval("SELECT state FROM agents WHERE login = 'agent1'") == "wrap_up"
    await wait_until(db, "SELECT state = 'ready' FROM agents WHERE login = 'agent1'")
    assert await db.fetchval("SELECT count(*) FROM queue_log WHERE call_id = $1 "
                             "AND event = 'COMPLETEAGENT'", call_id) == 1


async def test_caller_hangs_up_during_the_conversation(
    stack: Stack, db: asyncpg.Connection, desk
) -> None:
    a2 = await desk("agent2")
    await a2.set_state("ready")
    hold = stack.prompt_seconds("welcome_63160000") + 8
    stack.call("63160000", "13200132000", "--dtmf", "1", "--hold", f"{hold:.1f}")
    msg = await a2.expect("connected")
    call_id = uuid.UUID(msg["call"]["call_id"])
    await wait_until(db, "SELECT state = 'ended' FROM calls WHERE id = $1", call_id, timeout=30)
    assert await db.fetchval("SELECT end_reason FROM calls WHERE id = $1", call_id) \
        == "caller_hangup"
    await a2.expect("call_ended", call_id=str(call_id))
    row = await db.fetchrow("SELECT * FROM calls WHERE id = $1", call_id)
    async with stack.ari() as ari:
        assert row["agent_channel_id"] not in {c["id"] for c in await ari.channels()}


async def test_caller_hangs_up_during_the_greeting(stack: Stack, db: asyncpg.Connection) -> None:
    stack.call("12345", "13100131000", "--hold", "2")
    await wait_until(db, "SELECT count(*) FROM calls WHERE state = 'ended' "
                         "AND end_reason = 'caller_hangup' AND entered_queue_at IS NULL "
                         "AND arrived_at > now() - interval '30 seconds'")
    call_id = await db.fetchval("SELECT id FROM calls WHERE entered_queue_at IS NULL "
                                "ORDER BY arrived_at DESC LIMIT 1")
    assert await db.fetchval("SELECT event FROM queue_log WHERE call_id = $1", call_id) \
        == "IVRHANGUP"
    assert stack.status()["queue"]["waiting"] == []


async def test_sip_phones_from_the_yaml_are_asterisk_endpoints(stack: Stack) -> None:
    async with stack.ari() as ari:
        endpoints = await ari.request("GET", "/endpoints/PJSIP")
    assert "8101" in {e["resource"] for e in endpoints}
