"""The two queues under test, behind one interface: how a caller reaches each, how an
agent is made free or paused in each, and how many callers wait in each."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import asyncpg

from bench.ami import Ami, Message
from bench.ari import Observer
from bench.stack import APPQ, APPQ_CONTEXT, APPQ_NUMBER, HOTLINE_NUMBER, QUEUE, Agent
from db import agents as agent_store
from dialplan.render import INBOUND_CONTEXT


class QueueUnderTest(Protocol):
    key: str
    label: str
    endpoint: str

    async def pause_all(self) -> None: ...

    async def make_ready(self, agent: Agent) -> None: ...

    async def pend_pause(self, agent: Agent) -> None: ...

    async def wait_paused(self, agent: Agent, timeout: float) -> bool: ...

    async def waiting(self) -> int: ...

    async def admitted(self, ids: list[str]) -> dict[str, float]: ...


class Hotline:
    """This project's queue (ivr/ + db/): agents' states are rows, changed as the desk does."""

    key = "hotline"
    label = "hotline (ivr/ + PostgreSQL)"
    endpoint = f"Local/{HOTLINE_NUMBER}@{INBOUND_CONTEXT}/n"

    def __init__(self, pool: asyncpg.Pool, agent_ids: dict[str, int]):
        self.pool = pool
        self.ids = agent_ids

    async def pause_all(self) -> None:
        async with self.pool.acquire() as conn:
            for agent_id in self.ids.values():
                row = await conn.fetchrow("SELECT state FROM agents WHERE id = $1", agent_id)
                if row and row["state"] != "paused":
                    await agent_store.request_state(conn, agent_id, "paused", "break")

    async def make_ready(self, agent: Agent) -> None:
        # What the desk's 就绪 button does (agent_desk -> db.agents.request_state); the
        # commit sends the notice the call-control service dispatches on.
        async with self.pool.acquire() as conn:
            await agent_store.request_state(conn, self.ids[agent.login], "ready")

    async def pend_pause(self, agent: Agent) -> None:
        async with self.pool.acquire() as conn:
            await agent_store.request_state(conn, self.ids[agent.login], "paused", "break")

    async def wait_paused(self, agent: Agent, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            async with self.pool.acquire() as conn:
                state = await conn.fetchval("SELECT state FROM agents WHERE id = $1",
                                            self.ids[agent.login])
            if state == "paused":
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)

    async def waiting(self) -> int:
        async with self.pool.acquire() as conn:
            return int(await conn.fetchval(
                "SELECT count(*) FROM calls WHERE queue = $1 AND state = 'waiting'", QUEUE))

    async def admitted(self, ids: list[str]) -> dict[str, float]:
        """Calls (by the id of their Stasis channel) that reached the queue, and when."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT channel_id, extract(epoch FROM entered_queue_at) AS at FROM calls
                   WHERE channel_id = ANY($1) AND entered_queue_at IS NOT NULL""", ids)
        return {r["channel_id"]: float(r["at"]) for r in rows}


class AppQueue:
    """Asterisk's app_queue on the same phones: members paused and unpaused over AMI."""

    key = "app_queue"
    label = "app_queue (Asterisk)"
    endpoint = f"Local/{APPQ_NUMBER}@{APPQ_CONTEXT}/n"

    def __init__(self, ami: Ami, observer: Observer, agents: list[Agent]):
        self.ami = ami
        self.observer = observer
        self.agents = agents
        self.in_queue: set[str] = set()
        self.ever_joined: set[str] = set()
        ami.handlers.append(self._on_event)

    def _on_event(self, msg: Message, _at: float) -> None:
        if msg.get("Queue") != APPQ:
            return
        kind = msg.get("Event")
        if kind == "QueueCallerJoin":
            self.in_queue.add(msg.get("Uniqueid", ""))
            self.ever_joined.add(msg.get("Uniqueid", ""))
        elif kind in ("QueueCallerLeave", "QueueCallerAbandon"):
            self.in_queue.discard(msg.get("Uniqueid", ""))

    async def _pause(self, agent: Agent, paused: bool) -> None:
        r = await self.ami.action("QueuePause", Interface=agent.member, Queue=APPQ,
                                  Paused="true" if paused else "false")
        if r.get("Response") != "Success":
            raise RuntimeError(f"QueuePause {agent.member}: {r.get('Message')}")

    async def pause_all(self) -> None:
        for agent in self.agents:
            await self._pause(agent, True)

    async def make_ready(self, agent: Agent) -> None:
        await self._pause(agent, False)

    async def pend_pause(self, agent: Agent) -> None:
        await self._pause(agent, True)

    async def wait_paused(self, agent: Agent, timeout: float) -> bool:
        return True  # paused at once (QueuePause is answered after it is done)

    async def waiting(self) -> int:
        return len(self.in_queue)

    async def admitted(self, ids: list[str]) -> dict[str, float]:
        """Callers app_queue took in (QueueCallerJoin), with Asterisk's timestamp of their
        entering Queue() (ChannelDialplan)."""
        joined = self.observer.queue_joined
        return {i: joined[i] for i in ids if i in joined and i in self.ever_joined}
