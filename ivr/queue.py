"""The queue: callers wait in a holding bridge with music; a free agent's phone is rung;
on answer both are bridged.

The order of the queue and who is offered what live in PostgreSQL (db.calls), so a
restarted service finds every waiting caller in place; Asterisk's bridges hold the media.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from db import agents as agent_store
from db import calls as call_store
from db import cases as case_store
from db import pool as db_pool
from db.crypto import Keyring
from dialplan.config import HotlineConfig, Phone
from dialplan.render import VIRTUAL_PHONE_CONTEXT
from dialplan.speech import digits_words, number_words
from ivr import dialout, media
from ivr.ari import Ari, AriError, Event, NotFound
from ivr.calls import Arrival
from ivr.channels import LINE_LOST, ChannelGone, Inbox, Inboxes, hangup_reason
from ivr.voicemail import VoiceMessages

log = logging.getLogger(__name__)

# Seconds after a holding bridge emptied before its music is started again (left_bridge).
MUSIC_RESTART_DELAY = 0.5


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
    entered: float = field(default_factory=time.monotonic)  # when it joined the queue
    announced: float = field(default_factory=time.monotonic)
    playback: str | None = None  # an announcement playing to the caller
    announcing: bool = False  # busy with the caller (announcement, callback question)
    answering: bool = False  # an agent picked up; the caller is being bridged
    callback: bool = False  # the caller hung up to be called back; keeps its place
    callee_channel: str | None = None  # the call back to the caller, while it rings
    callee_routes: list[dialout.Route] = field(default_factory=list)  # trunks left to try
    callee_caller_id: str = ""  # the hotline number the citizen sees


class QueueService:
    """Matches waiting calls with ready agents and connects them."""

    def __init__(self, cfg: HotlineConfig, ari: Ari, pool: asyncpg.Pool, inboxes: Inboxes,
                 voicemail: VoiceMessages, keyring: Keyring):
        self.cfg = cfg
        self.ari = ari
        self.pool = pool
        self.inboxes = inboxes
        self.voicemail = voicemail
        self.keyring = keyring
        self.by_callee: dict[str, LiveCall] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.by_caller: dict[str, LiveCall] = {}
        self.by_agent_channel: dict[str, LiveCall] = {}
        self.by_call: dict[uuid.UUID, LiveCall] = {}
        # A queued caller's first ChannelHangupRequest: it says why the line ended (their
        # hang-up, or Asterisk's RTP timeout or session timer) before StasisEnd comes.
        self.hangup_requests: dict[str, Event] = {}
        self._wake = asyncio.Event()
        # The database going and coming back: one line each, counted for `hotline status`.
        self.outages = db_pool.Outages("dispatch", log, time.monotonic)

    # -- set-up ---------------------------------------------------------------------------

    async def ensure_bridges(self) -> None:
        """Create each queue's holding bridge (idempotent) with its music on hold."""
        for q in self.cfg.queues.values():
            bridge = await self.ari.create_bridge(holding_bridge_id(q.id), "holding",
                                                  name=f"queue {q.id}")
            await bridge.start_moh(q.music_on_hold)

    async def left_bridge(self, event: Event) -> None:
        """A channel left a bridge. Asterisk's music-on-hold channel of a holding bridge
        (POST /bridges/{id}/moh) is "lonely": it is put out of the bridge with the last
        caller, and a holding bridge without it plays nothing, so the next caller would
        wait in silence. When a queue's holding bridge is left empty, its music is started
        again, once the old music channel is gone (alone in a bridge, it stays)."""
        bridge = event.get("bridge")
        if not isinstance(bridge, dict):
            return
        # Asterisk lists a music channel it started again among the bridge's channels:
        # empty means no waiting caller left in it.
        remaining = bridge.get("channels")
        if isinstance(remaining, list) and any(
                isinstance(c, str) and c in self.by_caller for c in remaining):
            return
        for q in self.cfg.queues.values():
            if bridge.get("id") == holding_bridge_id(q.id):
                self._spawn(self._restart_music(q.id, q.music_on_hold))
                return

    async def _restart_music(self, queue: str, moh_class: str) -> None:
        # Started on the old channel while it is being put out, the music would go with it.
        await asyncio.sleep(MUSIC_RESTART_DELAY)
        try:
            await self.ari.bridge(holding_bridge_id(queue)).start_moh(moh_class)
        except AriError as e:
            log.error("queue %s: music on hold not restarted (%s)", queue, e)
            return
        log.info("queue %s: holding bridge empty, music on hold started again", queue)

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
        self.hangup_requests.pop(live.caller_channel, None)
        for leg in [*live.legs, live.agent_channel]:
            if leg:
                self.by_agent_channel.pop(leg, None)

    def caller_hangup_request(self, event: Event) -> None:
        """Asterisk is about to hang a queued caller up: keep the first request's cause."""
        channel = event.get("channel")
        channel_id = channel.get("id") if isinstance(channel, dict) else None
        if isinstance(channel_id, str) and channel_id in self.by_caller:
            self.hangup_requests.setdefault(channel_id, event)

    async def caller_gone(self, channel_id: str, reason: str | None = None) -> None:
        """The caller left (in the queue, while agents were rung, or talking). Without a
        reason: `caller_hangup`, or why Asterisk ended their line (hangup_reason)."""
        live = self.by_caller.get(channel_id)
        if live is None:
            return
        if reason is None:
            reason = hangup_reason(self.hangup_requests.get(channel_id))
        self._forget(live)
        async with self.pool.acquire() as conn:
            await call_store.end(conn, live.call_id, reason, wrap_up=self.wrap_up(live))
        if reason in LINE_LOST:
            # No BYE came: the caller's client or line died (a killed softphone, a cut
            # line). Not offered again; a missed call, so on the worklist.
            log.warning("call %s: the caller's line was lost without a hang-up (%s)",
                        live.call_id, reason)
        else:
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
        if live.callee_channel and channel_id == live.agent_channel:
            # The agent gave up while the citizen was being called back.
            callee = live.callee_channel
            live.callee_routes = []
            await self.ari.channel(callee).hangup()
            await self.callee_gone(callee)
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

    # -- while the caller waits: announcements and the overflow -------------------------

    def waiting_calls(self) -> list[LiveCall]:
        return [c for c in self.by_call.values()
                if not c.legs and c.bridge_id is None and not c.announcing and not c.callback]

    async def announcer(self) -> None:
        """Tell each waiting caller their place and the expected wait, in Mandarin, every
        announce_every seconds; past max_wait, offer the overflow (a voice message)."""
        while True:
            await asyncio.sleep(1)
            now = time.monotonic()
            for live in self.waiting_calls():
                q = self.cfg.queues.get(live.queue)
                if q is None:
                    continue
                try:
                    if q.max_wait and q.overflow != "none" and now - live.entered >= q.max_wait:
                        await self.overflow(live)
                    elif q.announce_every and now - live.announced >= q.announce_every:
                        live.announced = now
                        await self.announce(live)
                except Exception:
                    log.exception("call %s: announcement failed", live.call_id)

    async def announce(self, live: LiveCall) -> None:
        q = self.cfg.queues[live.queue]
        parts: list[str] = []
        async with self.pool.acquire() as conn:
            place = await call_store.position(conn, live.call_id, q.priority_weight)
            if place is None:
                return
            if q.announce_position:
                parts += ["position_before", *number_words(place, counting=True),
                          "position_after"]
            if q.announce_wait:
                minutes = math.ceil(await call_store.expected_wait(conn, q.id, place) / 60)
                parts += ["wait_before", *number_words(minutes, counting=True), "wait_after"]
        if q.periodic_prompt:
            parts.append(q.periodic_prompt)
        if parts:
            live.announcing = True
            self._spawn(self._announce(live, media.prompt_media(*parts)))

    async def _step_out_of_hold(self, live: LiveCall, inbox: Inbox) -> None:
        """Take a caller out of the holding bridge to talk to them alone, and wait until
        they are out: leaving is asynchronous, and a playback started before it hangs."""
        await self.ari.bridge(holding_bridge_id(live.queue)).remove(live.caller_channel)
        while True:
            event = await inbox.next(timeout=3)
            if event is None or event.get("type") == "ChannelLeftBridge":
                return

    async def _announce(self, live: LiveCall, items: list[str]) -> None:
        # A playback to a channel in a holding bridge does not advance, so the caller steps
        # out of the bridge for the announcement and back in (to the music) after it.
        channel = self.ari.channel(live.caller_channel)
        inbox = self.inboxes.open(live.caller_channel)
        try:
            await self._step_out_of_hold(live, inbox)
            live.playback = await media.start(channel, items)
            while live.playback:
                event = await inbox.next(timeout=120)
                if event is None or (event.get("type") == "PlaybackFinished"
                                     and event["playback"]["id"] == live.playback):
                    break
        except (ChannelGone, AriError):
            pass  # gone, or just answered: nothing to put back
        finally:
            live.playback = None
            live.announcing = False
            self.inboxes.close(live.caller_channel)
            if live.call_id in self.by_call and not live.answering and live.bridge_id is None:
                await self.back_to_hold(live)

    # -- callback that keeps the caller's place ---------------------------------------

    async def caller_key(self, channel_id: str, digit: str) -> None:
        """A key pressed by a waiting caller: the queue's callback key offers a callback."""
        live = self.by_caller.get(channel_id)
        if live is None or live.legs or live.bridge_id or live.announcing or live.callback:
            return
        q = self.cfg.queues.get(live.queue)
        if q is None or not q.callback_key or digit != q.callback_key:
            return
        live.announcing = True
        self._spawn(self._offer_callback(live))

    async def _caller_number(self, live: LiveCall) -> str | None:
        async with self.pool.acquire() as conn:
            case_id = await conn.fetchval("SELECT case_id FROM calls WHERE id = $1",
                                          live.call_id)
            case = await case_store.get(conn, self.keyring, case_id) if case_id else None
        if case is None:
            return None
        return case["callback_number"] or case["caller_number"]

    async def _offer_callback(self, live: LiveCall) -> None:
        channel = self.ari.channel(live.caller_channel)
        inbox = self.inboxes.open(live.caller_channel)
        try:
            await self._step_out_of_hold(live, inbox)
            number = await self._caller_number(live)
            if not number:
                await media.play(channel, inbox, media.prompt_media("callback_no_number"))
                return
            inbox.take_digits()
            items = media.prompt_media("callback_confirm", *digits_words(number),
                                       "callback_keys")
            await media.play(channel, inbox, items, barge_in=True)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 6
            while not inbox.digits and loop.time() < deadline:
                await inbox.next(timeout=deadline - loop.time())
            if inbox.take_digits()[:1] != "1" or live.legs or live.answering:
                return  # back to the queue (an agent may even be ringing already)
            async with self.pool.acquire() as conn:
                if not await call_store.request_callback(conn, live.call_id):
                    return
            live.callback = True
            self.by_caller.pop(live.caller_channel, None)
            log.info("call %s: the caller will be called back; place kept", live.call_id)
            await media.play(channel, inbox, media.prompt_media("callback_ok"))
            await channel.hangup()
        except (ChannelGone, AriError):
            pass
        finally:
            live.announcing = False
            self.inboxes.close(live.caller_channel)
            if live.call_id in self.by_call and not live.callback and not live.answering \
                    and live.bridge_id is None:
                await self.back_to_hold(live)

    async def _call_back(self, live: LiveCall, agent_channel: str, agent_id: int) -> None:
        """The agent is on the line: now call the citizen back, into the same bridge."""
        bridge_id = call_bridge_id(live.call_id)
        bridge = await self.ari.create_bridge(bridge_id, "mixing", name=f"call {live.call_id}")
        try:
            await bridge.add(agent_channel)
        except NotFound:
            await bridge.destroy()
            self.by_agent_channel.pop(agent_channel, None)
            live.legs.pop(agent_channel, None)
            live.answering = False
            await self._leg_failed(live, agent_id, "agent_dropped", pause=False)
            return
        live.agent_channel, live.agent_id = agent_channel, agent_id
        await media.start(self.ari.channel(agent_channel), media.prompt_media("callback_agent"))
        number = await self._caller_number(live)
        dialled = await self._dialled(live.call_id)
        async with self.pool.acquire() as conn:
            plan = await dialout.prepare(conn, self.cfg, self.keyring, number or "",
                                         purpose="queue_callback", now=datetime.now(UTC),
                                         hotline_number=dialled, call_id=live.call_id,
                                         agent_id=agent_id)
        if not plan.allowed:
            # The number is refused (the plan, the caps) or there is no trunk: the agent is
            # freed and the call stays on the worklist with the reason.
            log.warning("call %s: the caller cannot be called back (%s: %s)", live.call_id,
                        plan.decision.masked, plan.decision.code if not plan.decision.allowed
                        else "no trunk")
            await self._callback_failed(live, dialout.REFUSED if not plan.decision.allowed
                                        else dialout.NO_ROUTE)
            return
        live.callee_routes = list(plan.routes)
        live.callee_caller_id = plan.caller_id
        await self._dial_callee(live)

    async def _dial_callee(self, live: LiveCall) -> None:
        """Call the citizen on the next trunk left (its failure tries the one after)."""
        route = live.callee_routes.pop(0)
        callee = f"hotline-callee-{uuid.uuid4()}"
        live.callee_channel = callee
        self.by_callee[callee] = live
        shown = live.callee_caller_id
        try:
            async with self.pool.acquire() as conn:
                await call_store.set_callback_channel(conn, live.call_id, callee)
            await self.ari.originate(
                route.endpoint, app_args=f"callee,{live.call_id}",
                timeout=self.cfg.dial_out.ring_seconds, caller_id=f'"{shown}" <{shown}>',
                channel_id=callee)
            log.info("call %s: calling the citizen back on trunk %s", live.call_id,
                     route.trunk)
        except Exception as e:
            log.error("call %s: trunk %s could not place the call back (%s)", live.call_id,
                      route.trunk, e)
            self.by_callee.pop(callee, None)
            if live.callee_routes:
                await self._dial_callee(live)
            else:
                await self._callback_failed(live, "callback_trunk_failed")

    async def callee_answered(self, channel_id: str) -> None:
        """The citizen picked up the call back: bridge them with the waiting agent."""
        live = self.by_callee.pop(channel_id, None)
        if live is None or live.agent_channel is None or live.agent_id is None:
            await self.ari.channel(channel_id).hangup()
            return
        bridge_id = call_bridge_id(live.call_id)
        try:
            await self.ari.bridge(bridge_id).add(channel_id)
        except NotFound:
            await self.agent_channel_gone(live.agent_channel)
            return
        async with self.pool.acquire() as conn:
            ok = await call_store.connect(conn, live.call_id, live.queue, live.agent_id,
                                          live.agent_channel, bridge_id)
        if not ok:
            await self.ari.channel(channel_id).hangup()
            return
        live.callee_channel = None
        live.caller_channel = channel_id
        self.by_caller[channel_id] = live
        live.bridge_id = bridge_id
        others = [leg for leg in live.legs if leg != live.agent_channel]
        live.legs = {}
        for leg in others:
            self.by_agent_channel.pop(leg, None)
            await self.ari.channel(leg).hangup()
        log.info("call %s: called back and connected to agent %d", live.call_id, live.agent_id)

    async def callee_gone(self, channel_id: str, event: Event | None = None) -> None:
        """The call back ended before it was answered: on a trunk's fault the next trunk
        is tried; otherwise the agent is released and the call goes on the worklist (kind
        callback) with the reason, for another try by hand."""
        live = self.by_callee.pop(channel_id, None)
        if live is None:
            return
        if event is not None and live.callee_routes and dialout.fails_over(event):
            log.warning("call %s: the trunk failed (cause %s); trying the next one",
                        live.call_id, event.get("cause"))
            await self._dial_callee(live)
            return
        reason = dialout.end_reason(event)
        log.info("call %s: the caller was not reached on the call back (%s)", live.call_id,
                 reason)
        await self._callback_failed(live, reason)

    async def _callback_failed(self, live: LiveCall, reason: str) -> None:
        self._forget(live)
        live.callee_channel = None
        async with self.pool.acquire() as conn:
            await call_store.end(conn, live.call_id, reason)
        for leg in [*live.legs, live.agent_channel]:
            if leg:
                await self.ari.channel(leg).hangup()
        await self.ari.bridge(call_bridge_id(live.call_id)).destroy()
        self.kick()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def overflow(self, live: LiveCall) -> None:
        """The caller waited max_wait: they leave the queue and may leave a voice message."""
        log.info("call %s: waited too long; taking a voice message", live.call_id)
        self._forget(live)
        async with self.pool.acquire() as conn:
            row = await call_store.get(conn, live.call_id)
            await call_store.end(conn, live.call_id, "overflow_voice_message")
        try:
            await self.ari.bridge(holding_bridge_id(live.queue)).remove(live.caller_channel)
        except AriError:
            pass
        channel = self.ari.channel(live.caller_channel)
        inbox = self.inboxes.open(live.caller_channel)

        async def run() -> None:
            try:
                await self.voicemail.take(channel, inbox, live.call_id,
                                          row["case_id"] if row else None)
            finally:
                self.inboxes.close(live.caller_channel)

        self._spawn(run())
        self.kick()

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
            if not self.ari.connected.is_set():
                # Events are being missed: offering now could ring an agent for a caller
                # who is gone. The reconcile after the reconnect comes first.
                continue
            try:
                async with self.pool.acquire() as conn:
                    await agent_store.finish_wrap_ups(conn)
                await self.dispatch_once()
            except Exception as e:
                if db_pool.unreachable(e):
                    self.outages.failed(e)
                else:
                    log.exception("dispatch failed; retrying in 1 s")
                await asyncio.sleep(1)
                self.kick()
            else:
                self.outages.succeeded()

    async def dispatch_once(self) -> None:
        for q in self.cfg.queues.values():
            while True:
                async with self.pool.acquire() as conn:
                    offer = await call_store.claim_next(conn, q.id, q.strategy,
                                                        q.priority_weight)
                if offer is None:
                    break
                if not await self._ring(offer):
                    break  # no phone could be dialled: try again on the next tick, not now

    async def _ring(self, offer: call_store.Offer) -> bool:
        """Ring the offer's agents; False when not one phone could be dialled."""
        live = self.by_call.get(offer.call_id)
        if live is None:  # waiting from before a restart
            live = LiveCall(offer.call_id, offer.channel_id, offer.queue)
            self.track(live)
        queue_cfg = self.cfg.queues[offer.queue]
        dialled = offer.dialled  # read by the claim itself: no extra round trip here
        dialled_any = False
        for leg in offer.legs:
            agent_channel = leg.channel_id
            live.legs[agent_channel] = leg.agent_id
            self.by_agent_channel[agent_channel] = live
            try:
                phone = self.cfg.phones.get(leg.phone or "")
                if phone is None:
                    raise LookupError(f"phone {leg.phone} is not in the YAML")
                endpoint, formats = phone_endpoint(phone)
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
            dialled_any = True
            if self.by_agent_channel.get(agent_channel) is not live:
                # The caller hung up (or another agent answered) while this was dialled.
                await self.ari.channel(agent_channel).hangup()
        return dialled_any

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
        live.answering = True
        if live.callback:
            await self._call_back(live, channel_id, agent_id)
            return
        if live.playback:  # an announcement must not talk over the agent
            await media.stop(self.ari.channel(live.caller_channel), live.playback)
            live.playback = None
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
            live.answering = False
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
