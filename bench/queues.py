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
    sip_number: str  # the number a SIP caller from the demo trunk dials

    async def sip_calls(self, since: float, until: float) -> dict[str, int]: ...

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
    sip_number = HOTLINE_NUMBER

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

    async def sip_calls(self, since: float, until: float) -> dict[str, int]:
        """The calls that arrived from the trunk between since and until (epoch s): how many,
        how many reached the queue, how many ended without reaching an agent (lost, unless
        the caller hung up), how many were served, how many still wait."""
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                """SELECT count(*) AS arrived,
                          count(*) FILTER (WHERE entered_queue_at IS NOT NULL) AS reached,
                          count(*) FILTER (WHERE state = 'ended' AND answered_at IS NULL)
                              AS ended_unserved,
                          count(*) FILTER (WHERE answered_at IS NOT NULL) AS served,
                          count(*) FILTER (WHERE state = 'waiting') AS waiting
                   FROM calls WHERE queue = $3 AND channel_id NOT LIKE 'bench-%'
                     AND arrived_at >= to_timestamp($1) AND arrived_at < to_timestamp($2)""",
                since, until, QUEUE)
        return {k: int(row[k]) for k in ("arrived", "reached", "ended_unserved", "served",
                                         "waiting")}


class AppQueue:
    """Asterisk's app_queue on the same phones: members paused and unpaused over AMI."""

    key = "app_queue"
    label = "app_queue (Asterisk)"
    endpoint = f"Local/{APPQ_NUMBER}@{APPQ_CONTEXT}/n"
    sip_number = APPQ_NUMBER

    def __init__(self, ami: Ami, observer: Observer, agents: list[Agent]):
        self.ami = ami
        self.observer = observer
        self.agents = agents
        self.in_queue: set[str] = set()
        self.ever_joined: set[str] = set()
        # Callers by Uniqueid, with the harness's clock at each event: joined the queue,
        # connected to an agent, left it without one (QueueCallerAbandon).
        self.joined_at: dict[str, float] = {}
        self.connected: set[str] = set()
        self.abandoned: set[str] = set()
        ami.handlers.append(self._on_event)

    def _on_event(self, msg: Message, at: float) -> None:
        kind = msg.get("Event")
        if kind == "AgentConnect" and msg.get("Queue") == APPQ:
            self.connected.add(msg.get("Uniqueid", ""))
            return
        if msg.get("Queue") != APPQ:
            return
        uid = msg.get("Uniqueid", "")
        if kind == "QueueCallerJoin":
            self.in_queue.add(uid)
            self.ever_joined.add(uid)
            self.joined_at.setdefault(uid, at)
        elif kind == "QueueCallerLeave":
            self.in_queue.discard(uid)
        elif kind == "QueueCallerAbandon":
            self.in_queue.discard(uid)
            self.abandoned.add(uid)

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

    async def sip_calls(self, since: float, until: float) -> dict[str, int]:
        """The SIP callers whose channel reached Queue() between since and until (by
        Asterisk's clock, observer) -- the same figures as the hotline's, from app_queue's
        AMI events (callers who never reached Queue() are not seen here)."""
        joined = self.observer.queue_joined
        ids = [i for i, t in joined.items()
               if since <= t < until and not i.startswith("bench-")]
        reached = [i for i in ids if i in self.ever_joined]
        return {"arrived": len(ids), "reached": len(reached),
                "ended_unserved": sum(1 for i in reached if i in self.abandoned),
                "served": sum(1 for i in reached if i in self.connected),
                "waiting": sum(1 for i in reached if i in self.in_queue)}
