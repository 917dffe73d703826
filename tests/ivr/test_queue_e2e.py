"""The duty-room queue on the real Asterisk and PostgreSQL: strategies, priority that
ages, ring-no-answer, wrap-up, pauses with reasons, pending logout, supervisor actions."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from tests.conftest import Stack, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean")]


async def _connected_agent(db: asyncpg.Connection, call_id: uuid.UUID) -> str:
    await wait_until(db, "SELECT state = 'connected' FROM calls WHERE id = $1", call_id)
    return str(await db.fetchval(
        "SELECT a.login FROM calls c JOIN agents a ON a.id = c.agent_id WHERE c.id = $1",
        call_id))


async def _next_call(db: asyncpg.Connection, dialled: str, after: set[uuid.UUID]) -> uuid.UUID:
    await wait_until(db, "SELECT count(*) FROM calls WHERE dialled_number = $1 "
                         "AND NOT (id = ANY($2::uuid[]))", dialled, list(after))
    return await db.fetchval("SELECT id FROM calls WHERE dialled_number = $1 "
                             "AND NOT (id = ANY($2::uuid[])) ORDER BY arrived_at LIMIT 1",
                             dialled, list(after))


async def _ids(db: asyncpg.Connection) -> set[uuid.UUID]:
    return {r["id"] for r in await db.fetch("SELECT id FROM calls")}


async def _hang_up_caller(stack: Stack, db: asyncpg.Connection, call_id: uuid.UUID) -> None:
    channel = await db.fetchval("SELECT channel_id FROM calls WHERE id = $1", call_id)
    async with stack.ari() as ari:
        await ari.channel(channel).hangup()
    await wait_until(db, "SELECT state = 'ended' FROM calls WHERE id = $1", call_id)


async def test_ring_all_rings_every_ready_agent_and_the_first_to_answer_wins(
    stack: Stack, db: asyncpg.Connection, desk
) -> None:
    a1, a2 = await desk("agent1"), await desk("agent2")
    await a1.set_state("ready")
    await a2.set_state("ready")
    before = await _ids(db)
    stack.call("96001", "13500000001")
    call_id = await _next_call(db, "96001", before)
    winner = await _connected_agent(db, call_id)
    rung = {r["login"] for r in await db.fetch(
        "SELECT a.login FROM queue_log l JOIN agents a ON a.id = l.agent_id "
        "WHERE l.call_id = $1 AND l.event = 'RINGING'", call_id)}
    assert rung == {"agent1", "agent2"}
    assert await db.fetchval("SELECT count(*) FROM queue_log WHERE call_id = $1 "
                             "AND event = 'CONNECT'", call_id) == 1
    loser = "agent2" if winner == "agent1" else "agent1"
    # The other phone stops ringing and its agent is ready again, not paused.
    await wait_until(db, "SELECT state = 'ready' FROM agents WHERE login = $1", loser)
    leg = await db.fetchval("SELECT agent_channel_id FROM calls WHERE id = $1", call_id)
    async with stack.ari() as ari:
        agent_legs = [c for c in await ari.channels() if c["id"].startswith("hotline-agent-")]
    assert {c["id"].split(";")[0] for c in agent_legs} == {leg}  # ";2": its far end


async def test_round_robin_takes_turns(stack: Stack, db: asyncpg.Connection, desk) -> None:
    a1, a2 = await desk("agent1"), await desk("agent2")
    await a1.set_state("ready")
    await a2.set_state("ready")
    served = []
    for i in range(3):
        before = await _ids(db)
        stack.call("96002", f"1350000001{i}")
        call_id = await _next_call(db, "96002", before)
        served.append(await _connected_agent(db, call_id))
        await _hang_up_caller(stack, db, call_id)
        # wrap-up of the queue is 1 s: wait until both are ready again
        await wait_until(db, "SELECT count(*) = 2 FROM agents WHERE login IN "
                             "('agent1', 'agent2') AND state = 'ready'")
    assert served[0] != served[1] and served[1] != served[2], served


async def test_fewest_calls_goes_to_the_agent_with_fewest_answered_today(
    stack: Stack, db: asyncpg.Connection, desk
) -> None:
    a1, a2 = await desk("agent1"), await desk("agent2")
    await a1.set_state("ready")
    await a2.set_state("ready")
    counts = {r["login"]: r["n"] for r in await db.fetch(
        """SELECT a.login, (SELECT count(*) FROM queue_log l WHERE l.agent_id = a.id
             AND l.event = 'CONNECT' AND l.at >= date_trunc('day', now())) AS n
           FROM agents a WHERE a.login IN ('agent1', 'agent2')""")}
    before = await _ids(db)
    stack.call("96003", "13500000021")
    call_id = await _next_call(db, "96003", before)
    got = await _connected_agent(db, call_id)
    assert counts[got] == min(counts.values()), (got, counts)


async def test_priority_goes_first_but_ages_so_no_one_starves(
    stack: Stack, db: asyncpg.Connection, desk
) -> None:
    # Queue t_priority: one level of priority = 2 s of waiting; key 9 gives priority 3.
    before = await _ids(db)
    stack.call("96004", "13500000031", "--dtmf", "1")
    plain = await _next_call(db, "96004", before)
    await wait_until(db, "SELECT state = 'waiting' FROM calls WHERE id = $1", plain)
    stack.call("96004", "13500000032", "--dtmf", "9")
    urgent = await _next_call(db, "96004", before | {plain})
    await wait_until(db, "SELECT state = 'waiting' FROM calls WHERE id = $1", urgent)
    assert await db.fetchval("SELECT priority FROM calls WHERE id = $1", urgent) >= 3
    a1 = await desk("agent1")
    await a1.set_state("ready")
    # Waited about the same: the urgent caller goes first.
    assert await _connected_agent(db, urgent) == "agent1"
    code, _ = await a1.request("POST", "/api/agent/state", json={"state": "paused"})
    assert code == 202  # paused once this call ends, so the next part starts clean
    await _hang_up_caller(stack, db, urgent)
    await _hang_up_caller(stack, db, plain)

    # Now the plain caller has waited 10 s (worth 5 levels) when an urgent one arrives.
    before = await _ids(db)
    stack.call("96004", "13500000033", "--dtmf", "1")
    old = await _next_call(db, "96004", before)
    await wait_until(db, "SELECT state = 'waiting' FROM calls WHERE id = $1", old)
    await asyncio.sleep(10)
    stack.call("96004", "13500000034", "--dtmf", "9")
    new = await _next_call(db, "96004", before | {old})
    await wait_until(db, "SELECT state = 'waiting' FROM calls WHERE id = $1", new)
    await a1.set_state("ready")
    assert await _connected_agent(db, old) == "agent1"


async def test_wrap_up_is_extendable_and_pending_pause_waits_for_the_call_end(
    stack: Stack, db: asyncpg.Connection, desk
) -> None:
    a1 = await desk("agent1")
    await a1.set_state("ready")
    stack.call("12345", "13500000041")
    msg = await a1.expect("connected")
    call_id = uuid.UUID(msg["call"]["call_id"])
    # Pausing during the call is kept for its end.
    code, body = await a1.request("POST", "/api/agent/state",
                                  json={"state": "paused", "reason": "meal"})
    assert code == 202 and body["pending"] == "pause:meal"
    assert body["agent"]["state"] == "on_call"
    # Changed mind: ready cancels the pending pause.
    code, body = await a1.request("POST", "/api/agent/state", json={"state": "ready"})
    assert code == 200 and body["agent"]["after_call"] is None
    await _hang_up_caller(stack, db, call_id)
    pushed = await a1.expect("agent", agent__state="wrap_up")
    until = pushed["agent"]["wrap_up_until"]
    code, body = await a1.request("POST", "/api/agent/wrap_up", json={"seconds": 30})
    assert code == 200 and body["agent"]["wrap_up_until"] > until
    await asyncio.sleep(4)  # the queue's own wrap-up (3 s) is over, the extension is not
    assert await db.fetchval("SELECT state FROM agents WHERE login = 'agent1'") == "wrap_up"
    await a1.set_state("ready")  # done early
    assert await db.fetchval("SELECT state FROM agents WHERE login = 'agent1'") == "ready"


async def test_logout_during_a_call_takes_effect_when_it_ends(
    stack: Stack, db: asyncpg.Connection, desk
) -> None:
    a2 = await desk("agent2")
    await a2.set_state("ready")
    stack.call("12345", "13500000051")
    msg = await a2.expect("connected")
    code, body = await a2.request("POST", "/api/logout")
    assert code == 202 and body["pending"] == "logout"
    await _hang_up_caller(stack, db, uuid.UUID(msg["call"]["call_id"]))
    await a2.expect("agent", agent__state="logged_out")
    reasons = [r["state"] for r in await db.fetch(
        "SELECT state FROM agent_state_log WHERE agent_id = (SELECT id FROM agents "
        "WHERE login = 'agent2') ORDER BY id DESC LIMIT 2")]
    assert reasons == ["logged_out", "on_call"]  # no wrap-up, straight out


async def test_supervisor_pauses_and_logs_out_agents_agents_cannot(
    stack: Stack, db: asyncpg.Connection, desk
) -> None:
    a1, lead = await desk("agent1"), await desk("lead1")
    await a1.set_state("ready")
    agent1 = await db.fetchval("SELECT id FROM agents WHERE login = 'agent1'")
    code, _ = await a1.request("POST", f"/api/supervisor/agents/{agent1}/state",
                               json={"state": "paused"})
    assert code == 403
    code, body = await lead.request("POST", f"/api/supervisor/agents/{agent1}/state",
                                    json={"state": "paused", "reason": "training"})
    assert code == 200 and body["agent"]["state"] == "paused"
    # The push of this change (the login's own "paused, login" may still be queued).
    pushed = await a1.expect("agent", agent__state="paused", agent__reason="training")
    assert pushed["agent"]["reason"] == "training"
    code, body = await lead.request("POST", f"/api/supervisor/agents/{agent1}/state",
                                    json={"state": "logged_out"})
    assert code == 200 and body["agent"]["state"] == "logged_out"
    code, _ = await lead.request("POST", "/api/agent/state", json={"state": "paused",
                                                                   "reason": "nonsense"})
    assert code == 400
    logged = [r["state"] for r in await db.fetch(
        "SELECT state FROM agent_state_log WHERE agent_id = $1 ORDER BY id DESC LIMIT 3",
        agent1)]
    assert logged == ["logged_out", "paused", "ready"]


async def test_abandoned_call_goes_on_the_callback_worklist(
    stack: Stack, db: asyncpg.Connection, desk
) -> None:
    before = await _ids(db)
    stack.call("96002", "13500000061")
    call_id = await _next_call(db, "96002", before)
    await wait_until(db, "SELECT state = 'waiting' FROM calls WHERE id = $1", call_id)
    await _hang_up_caller(stack, db, call_id)
    a1 = await desk("agent1")
    code, body = await a1.request("GET", "/api/worklist")
    assert code == 200
    item = next(i for i in body["items"] if i["call_id"] == str(call_id))
    assert item["kind"] == "abandoned" and item["caller_masked"] == "135****0061"
    assert item["position"] >= 1 and item["waited_seconds"] is not None
    code, body = await a1.request("POST", f"/api/worklist/{call_id}/done",
                                  json={"outcome": "no_answer"})
    assert code == 200 and body["status"] == "open" and body["attempts"] == 1
    code, body = await a1.request("POST", f"/api/worklist/{call_id}/done",
                                  json={"outcome": "reached"})
    assert code == 200 and body["status"] == "done"
    code, body = await a1.request("GET", "/api/worklist")
    assert str(call_id) not in {i["call_id"] for i in body["items"]}
