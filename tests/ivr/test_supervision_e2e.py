"""A duty supervisor listens to, whispers into and barges in on an agent's call (real
Asterisk: snoop channels and bridges checked in Asterisk itself)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from tests.conftest import Stack, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean")]


async def _bridges(stack: Stack) -> dict[str, Any]:
    async with stack.ari() as ari:
        return {b["id"]: b for b in await ari.bridges()}


async def _until(check: Any, what: str, timeout: float = 20) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert loop.time() < deadline, f"never saw: {what}"
        await asyncio.sleep(0.3)


async def test_listen_then_barge_on_a_live_call(stack: Stack, db: asyncpg.Connection,
                                                desk) -> None:
    agent, lead = await desk("agent1"), await desk("lead1")
    await agent.set_state("ready")
    stack.call("12345", "13700000001", "--hold", "60")
    msg = await agent.expect("connected")
    call_id = uuid.UUID(msg["call"]["call_id"])
    row = await db.fetchrow("SELECT * FROM calls WHERE id = $1", call_id)

    code, _ = await agent.request("POST", f"/api/supervisor/calls/{call_id}/monitor",
                                  json={"mode": "listen"})
    assert code == 403  # agents cannot
    code, body = await lead.request("POST", f"/api/supervisor/calls/{call_id}/monitor",
                                    json={"mode": "listen"})
    assert code == 202, body

    async def spy_bridge() -> Any:
        return next((b for i, b in (await _bridges(stack)).items()
                     if i.startswith("hotline-spy-") and len(b["channels"]) == 2), None)

    spy = await _until(spy_bridge, "a snoop bridge with the supervisor")
    assert any(c.startswith("hotline-snoop-") for c in spy["channels"])
    assert any(c.startswith("hotline-sup-") for c in spy["channels"])
    # Listening does not join the call itself.
    assert len((await _bridges(stack))[row["bridge_id"]]["channels"]) == 2
    assert await wait_until(db, "SELECT data->>'mode' FROM queue_log WHERE call_id = $1 "
                                "AND event = 'SPY'", call_id) == "listen"

    code, _ = await lead.request("POST", f"/api/supervisor/calls/{call_id}/monitor",
                                 json={"mode": "barge"})
    assert code == 202

    async def three_in_call() -> bool:
        return len((await _bridges(stack))[row["bridge_id"]]["channels"]) == 3

    await _until(three_in_call, "the supervisor in the call's bridge")

    # The call ends: the supervisor's legs and the snoop go with it.
    async with stack.ari() as ari:
        await ari.channel(row["channel_id"]).hangup()

        async def no_supervisor_legs() -> bool:
            names = [c["id"] for c in await ari.channels()]
            return not any(n.startswith(("hotline-sup-", "hotline-snoop-")) for n in names)

        await _until(no_supervisor_legs, "supervisor legs hung up with the call")
