"""The queue: callers wait in a holding bridge with music; a free agent's phone is rung;
on answer both are bridged.

The order of the queue and who is offered what live in PostgreSQL (db.calls), so a
restarted service finds every waiting caller in place; Asterisk's bridges hold the media.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field

import asyncpg

from db import agents as agent_store
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
    legs: dict[str, int] = field(default_factory=dict)  # ringing agent leg -> agent id
    agent_channel: str | None = None  # the leg that answered
    agent_id: int | None = None
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

    def wrap_up(self, live: LiveCall) -> int:
        q = self.cfg.queues.get(live.queue)
        return q.wrap_up if q else 0

    # -- arrivals and departures ---------------------------------------------------------

    async def enqueue(self, arrival: Arrival) -> None:
        """A caller finished the IVR: hold them in the queue's bridge and record their place."""
        live = LiveCall(arrival.call_id, arrival.channel_id, arrival.queue)
        self.track(live)
        try:
            await self.ari.bridge(holding_bridge_id(arrival.queue)).add(arrival.channel_id,
                                                                           role="participant")
        except NotFound:
            await self.caller_gone(arrival.channel_id)
            return
        async with self.pool.acquire() as conn:
            await call_store.enqueue(conn, arrival.call_id, arrival.service, arrival.case_id,
                                     arrival.priority)
        self.kick()

    def track(self, live: LiveCall) -> None:
        self.by_call[live.call_id] = live
        self.by_caller[live.caller_channel] = live

    def _forget(self, live: LiveCall) -> None:
        self.by_call.pop(live.call_id, None)
        self.by_caller.pop(live.caller_channel, None)
        for leg in [*live.legs, live.agent_channel]:
            if leg:
                self.by_agent_channel.pop(leg, None)

    async def caller_gone(self, channel_id: str, reason: str = "caller_hangup") -> None:
        """The caller left (in the queue, while agents were rung, or talking)."""
        live = self.by_caller.get(channel_id)
        if live is None:
            return
        self._forget(live)
        async with self.pool.acquire() as conn:
            await call_store.end(conn, live.call_id, reason, wrap_up=self.wrap_up(live))
        log.info("call %s: caller left (%s)", live.call_id, reason)
        for leg in [*live.legs, live.agent_channel]:
            if leg:
                await self.ari.channel(leg).hangup()
        await self._drop_bridge(live)
        self.kick()

    async def agent_channel_gone(self, channel_id: str) -> None:
        """An agent leg ended: before answering (no answer) or after (the call is over)."""
        live = self.by_agent_channel.pop(channel_id, None)
        if live is None:
            return
        if channel_id == live.agent_channel and live.bridge_id:
            self._forget(live)
            async with self.pool.acquire() as conn:
                await call_store.end(conn, live.call_id, "agent_hangup",
                                     wrap_up=self.wrap_up(live))
            log.info("call %s: agent hung up", live.call_id)
            await self.ari.channel(live.caller_channel).hangup()
            await self._drop_bridge(live)
            self.kick()
            return
        agent_id = live.legs.pop(channel_id, None)
        if agent_id is None:
            return
        q = self.cfg.queues.get(live.queue)
        # With ring_all a silent phone among many is normal: pause only one rung alone.
        pause = bool(q and q.autopause and q.strategy != "ring_all")
        log.info("call %s: agent %d did not answer%s", live.call_id, agent_id,
                 "; agent paused" if pause else "")
        await self._leg_failed(live, agent_id, "no_answer", pause)

    async def _leg_failed(self, live: LiveCall, agent_id: int, reason: str, pause: bool) -> None:
        async with self.pool.acquire() as conn:
            back = await call_store.leg_failed(conn, live.call_id, live.queue, agent_id, reason,
                                               pause)
        if back:
            log.info("call %s: back to its place in the queue", live.call_id)
        self.kick()

    async def _drop_bridge(self, live: LiveCall) -> None:
        if live.bridge_id:
            await self.ari.bridge(live.bridge_id).destroy()

    # -- dispatch ---------------------------------------------------------------------------

    def kick(self) -> None:
        """Something changed (a caller, an agent): look for matches again."""
        self._wake.set()

    async def run(self) -> None:
        """Dispatch forever: whenever something changes, and every second regardless (a
        missed notice must not leave a caller waiting beside a ready agent; wrap-ups end)."""
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                async with self.pool.acquire() as conn:
                    await agent_store.finish_wrap_ups(conn)
                await self.dispatch_once()
            except Exception:
                log.exception("dispatch failed; retrying in 1 s")
                await asyncio.sleep(1)
                self.kick()

    async def dispatch_once(self) -> None:
        for q in self.cfg.queues.values():
            while True:
                async with self.pool.acquire() as conn:
                    offer = await call_store.claim_next(conn, q.id, q.strategy,
                                                        q.priority_weight)
                if offer is None:
                    break
                await self._ring(offer)

    async def _ring(self, offer: call_store.Offer) -> None:
        live = self.by_call.get(offer.call_id)
        if live is None:  # waiting from before a restart
            live = LiveCall(offer.call_id, offer.channel_id, offer.queue)
            self.track(live)
        queue_cfg = self.cfg.queues[offer.queue]
        try:
            dialled = await self._dialled(offer.call_id)
        except Exception as e:
            log.error("call %s: could not be read back (%s)", offer.call_id, e)
            dialled = ""
        for leg in offer.legs:
            agent_channel = f"hotline-agent-{uuid.uuid4()}"
            live.legs[agent_channel] = leg.agent_id
            self.by_agent_channel[agent_channel] = live
            try:
                phone = self.cfg.phones.get(leg.phone or "")
                if phone is None:
                    raise LookupError(f"phone {leg.phone} is not in the YAML")
                endpoint, formats = phone_endpoint(phone)
                async with self.pool.acquire() as conn:
                    await call_store.set_leg_channel(conn, offer.call_id, leg.agent_id,
                                                     agent_channel)
                log.info("call %s: ringing agent %d on %s", offer.call_id, leg.agent_id,
                         endpoint)
                await self.ari.originate(
                    endpoint, app_args=f"agent,{offer.call_id}",
                    timeout=queue_cfg.ring_timeout, caller_id=f'"{dialled}" <{dialled}>',
                    formats=formats, channel_id=agent_channel,
                )
            except Exception as e:
                # Whatever failed, the reservation must not stay: the agent is freed and,
                # with no leg left, the call goes back in line.
                log.error("call %s: agent %d's phone could not be dialled (%s)",
                          offer.call_id, leg.agent_id, e)
                if self.by_agent_channel.pop(agent_channel, None) is live:
                    live.legs.pop(agent_channel, None)
                    await self._leg_failed(live, leg.agent_id, "dial_failed", pause=False)
                continue
            if self.by_agent_channel.get(agent_channel) is not live:
                # The caller hung up (or another agent answered) while this was dialled.
                await self.ari.channel(agent_channel).hangup()

    async def _dialled(self, call_id: uuid.UUID) -> str:
        async with self.pool.acquire() as conn:
            row = await call_store.get(conn, call_id)
        return row["dialled_number"] if row else ""

    async def agent_answered(self, channel_id: str) -> None:
        """An agent picked up: take the caller out of the queue and bridge the two."""
        live = self.by_agent_channel.get(channel_id)
        if live is None or channel_id not in live.legs or live.bridge_id:
            # Too late: the caller left, or another agent (ring_all) answered first.
            log.info("agent leg %s answered a call no longer offered; hanging it up",
                     channel_id)
            self.by_agent_channel.pop(channel_id, None)
            await self.ari.channel(channel_id).hangup()
            return
        agent_id = live.legs[channel_id]
        bridge_id = call_bridge_id(live.call_id)
        bridge = await self.ari.create_bridge(bridge_id, "mixing", name=f"call {live.call_id}")
        holding = self.ari.bridge(holding_bridge_id(live.queue))
        try:
            await holding.remove(live.caller_channel)
        except AriError:
            pass  # not in it, or gone: adding it below tells which
        try:
            await bridge.add(live.caller_channel)
        except NotFound:
            await bridge.destroy()
            await self.caller_gone(live.caller_channel)  # also hangs the agent legs up
            return
        try:
            await bridge.add(channel_id)
        except NotFound:
            # The agent dropped right after answering: the caller goes back in line.
            log.info("call %s: agent leg gone right after answer", live.call_id)
            await bridge.destroy()
            await self.back_to_hold(live)
            self.by_agent_channel.pop(channel_id, None)
            live.legs.pop(channel_id, None)
            await self._leg_failed(live, agent_id, "agent_dropped", pause=False)
            return
        async with self.pool.acquire() as conn:
            ok = await call_store.connect(conn, live.call_id, live.queue, agent_id, channel_id,
                                          bridge_id)
        if not ok:
            await bridge.destroy()
            await self.caller_gone(live.caller_channel)
            return
        others = [leg for leg in live.legs if leg != channel_id]
        live.legs = {}
        live.agent_channel, live.agent_id, live.bridge_id = channel_id, agent_id, bridge_id
        for leg in others:
            self.by_agent_channel.pop(leg, None)
            await self.ari.channel(leg).hangup()
        log.info("call %s: connected to agent %d in bridge %s", live.call_id, agent_id,
                 bridge_id)

    async def back_to_hold(self, live: LiveCall) -> None:
        """Put a caller (back) in its queue's holding bridge."""
        try:
            await self.ari.bridge(holding_bridge_id(live.queue)).add(live.caller_channel,
                                                                     role="participant")
        except NotFound:
            await self.caller_gone(live.caller_channel)
        except AriError as e:
            if e.status != 409:  # 409: it is in the bridge already
                raise
