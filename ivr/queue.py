"""The queue: callers wait in a holding bridge with music; a free agent's phone is rung;
on answer both are bridged.

The order of the queue and who is offered what live in PostgreSQL (db.calls), so a
restarted service finds every waiting caller in place; Asterisk's bridges hold the media.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

import asyncpg

from db import calls as call_store
from dialplan.config import HotlineConfig, Phone
from dialplan.render import VIRTUAL_PHONE_CONTEXT
from ivr.ari import Ari, AriError, NotFound
from ivr.calls import Arrival

log = logging.getLogger(__name__)


def holding_bridge_id(queue: str) -> str:
    """The fixed id of a queue's holding bridge (found again after a restart)."""
    return f"hotline-queue-{queue}"


def call_bridge_id(call_id: uuid.UUID) -> str:
    return f"hotline-call-{call_id}"


def phone_endpoint(phone: Phone) -> tuple[str, str | None]:
    """The endpoint to dial for an agent's phone, and the media formats to ask for."""
    if phone.type == "virtual":
        # Always name formats on Local channels: otherwise they negotiate a very high
        # sample rate and burn CPU (a known ARI pitfall).
        return f"Local/{phone.id}@{VIRTUAL_PHONE_CONTEXT}/n", "ulaw"
    return f"PJSIP/{phone.id}", None


@dataclass
class LiveCall:
    """What this process knows of a call it is serving (rebuilt from the DB on restart)."""

    call_id: uuid.UUID
    caller_channel: str
    queue: str
    offer: call_store.Offer | None = None
    agent_channel: str | None = None
    bridge_id: str | None = None


class QueueService:
    """Matches waiting calls with ready agents and connects them."""

    def __init__(self, cfg: HotlineConfig, ari: Ari, pool: asyncpg.Pool):
        self.cfg = cfg
        self.ari = ari
        self.pool = pool
        self.by_caller: dict[str, LiveCall] = {}
        self.by_agent_channel: dict[str, LiveCall] = {}
        self.by_call: dict[uuid.UUID, LiveCall] = {}
        self._wake = asyncio.Event()

    # -- set-up ---------------------------------------------------------------------------

    async def ensure_bridges(self) -> None:
        """Create each queue's holding bridge (idempotent) with its music on hold."""
        for q in self.cfg.queues.values():
            bridge = await self.ari.create_bridge(holding_bridge_id(q.id), "holding",
                                                  name=f"queue {q.id}")
            await bridge.start_moh(q.music_on_hold)

    # -- arrivals and departures ---------------------------------------------------------

    async def enqueue(self, arrival: Arrival) -> None:
        """A caller finished the IVR: hold them in the queue's bridge and record their place."""
        live = LiveCall(arrival.call_id, arrival.channel_id, arrival.queue)
        self._track(live)
        await self.ari.bridge(holding_bridge_id(arrival.queue)).add(arrival.channel_id,
                                                                       role="participant")
        async with self.pool.acquire() as conn:
            await call_store.enqueue(conn, arrival.call_id, arrival.service, arrival.case_id)
        self.kick()

    def _track(self, live: LiveCall) -> None:
        self.by_call[live.call_id] = live
        self.by_caller[live.caller_channel] = live

    def _forget(self, live: LiveCall) -> None:
        self.by_call.pop(live.call_id, None)
        self.by_caller.pop(live.caller_channel, None)
        if live.agent_channel:
            self.by_agent_channel.pop(live.agent_channel, None)

    async def caller_gone(self, channel_id: str) -> None:
        """The caller hung up (in the queue, while ringing an agent, or talking)."""
        live = self.by_caller.get(channel_id)
        if live is None:
            return
        self._forget(live)
        async with self.pool.acquire() as conn:
            await call_store.end(conn, live.call_id, "caller_hangup")
        log.info("call %s: caller hung up", live.call_id)
        if live.agent_channel:
            await self.ari.channel(live.agent_channel).hangup()
        await self._drop_bridge(live)
        self.kick()

    async def agent_channel_gone(self, channel_id: str, answered: bool) -> None:
        """The agent's leg ended: not answered (back to the queue) or hung up (call over)."""
        live = self.by_agent_channel.pop(channel_id, None)
        if live is None or live.offer is None:
            return
        if live.bridge_id is None:
            log.info("call %s: agent %d did not answer; back to its place in the queue",
                     live.call_id, live.offer.agent_id)
            async with self.pool.acquire() as conn:
                await call_store.offer_failed(conn, live.offer, "no_answer")
            live.offer = None
            live.agent_channel = None
            self.kick()
            return
        self._forget(live)
        async with self.pool.acquire() as conn:
            await call_store.end(conn, live.call_id, "agent_hangup")
        log.info("call %s: agent hung up", live.call_id)
        await self.ari.channel(live.caller_channel).hangup()
        await self._drop_bridge(live)
        self.kick()

    async def _drop_bridge(self, live: LiveCall) -> None:
        if live.bridge_id:
            await self.ari.bridge(live.bridge_id).destroy()

    # -- dispatch ---------------------------------------------------------------------------

    def kick(self) -> None:
        """Something changed (a caller, an agent): look for matches again."""
        self._wake.set()

    async def run(self) -> None:
        """Dispatch forever: every time something changes, match all that can be matched."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.dispatch_once()
            except (OSError, asyncpg.PostgresError, AriError) as e:
                log.error("dispatch failed (%s); retrying in 1 s", e)
                await asyncio.sleep(1)
                self.kick()

    async def dispatch_once(self) -> None:
        for queue in self.cfg.queues:
            while True:
                async with self.pool.acquire() as conn:
                    offer = await call_store.claim_next(conn, queue)
                if offer is None:
                    break
                await self._ring(offer)

    async def _ring(self, offer: call_store.Offer) -> None:
        live = self.by_call.get(offer.call_id)
        if live is None:  # waiting from before a restart
            live = LiveCall(offer.call_id, offer.channel_id, offer.queue)
            self._track(live)
        live.offer = offer
        phone = self.cfg.phones.get(offer.agent_phone)
        agent_channel = f"hotline-agent-{uuid.uuid4()}"
        live.agent_channel = agent_channel
        self.by_agent_channel[agent_channel] = live
        async with self.pool.acquire() as conn:
            await call_store.set_agent_channel(conn, offer.call_id, agent_channel)
        if phone is None:
            log.error("agent %d has phone %s, which is not in the YAML", offer.agent_id,
                      offer.agent_phone)
            await self.agent_channel_gone(agent_channel, answered=False)
            return
        endpoint, formats = phone_endpoint(phone)
        queue_cfg = self.cfg.queues[offer.queue]
        dialled = await self._dialled(offer.call_id)
        log.info("call %s: ringing agent %d on %s", offer.call_id, offer.agent_id, endpoint)
        try:
            await self.ari.originate(
                endpoint, app_args=f"agent,{offer.call_id}", timeout=queue_cfg.ring_timeout,
                caller_id=f'"{dialled}" <{dialled}>', formats=formats, channel_id=agent_channel,
            )
        except AriError as e:
            log.error("call %s: agent %d's phone could not be dialled (%s)", offer.call_id,
                      offer.agent_id, e)
            await self.agent_channel_gone(agent_channel, answered=False)

    async def _dialled(self, call_id: uuid.UUID) -> str:
        async with self.pool.acquire() as conn:
            row = await call_store.get(conn, call_id)
        return row["dialled_number"] if row else ""

    async def agent_answered(self, channel_id: str) -> None:
        """The agent picked up: take the caller out of the queue and bridge the two."""
        live = self.by_agent_channel.get(channel_id)
        if live is None or live.offer is None:
            log.warning("an agent leg %s answered for no call; hanging it up", channel_id)
            await self.ari.channel(channel_id).hangup()
            return
        bridge_id = call_bridge_id(live.call_id)
        bridge = await self.ari.create_bridge(bridge_id, "mixing", name=f"call {live.call_id}")
        live.bridge_id = bridge_id
        try:
            await self.ari.bridge(holding_bridge_id(live.queue)).remove(live.caller_channel)
        except (NotFound, AriError):
            pass  # not in it (e.g. already moved), or gone: checked just below
        try:
            await bridge.add(live.caller_channel)
            await bridge.add(channel_id)
        except NotFound:
            await self.caller_gone(live.caller_channel)
            return
        async with self.pool.acquire() as conn:
            ok = await call_store.connect(conn, live.offer, bridge_id)
        if not ok:
            await self.caller_gone(live.caller_channel)
            return
        log.info("call %s: connected to agent %d in bridge %s", live.call_id,
                 live.offer.agent_id, bridge_id)
