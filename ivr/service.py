"""The call-control service: wires ARI events to the caller flow and the queue.

Event handlers (ARI events, database notices) -> services (CallerFlow, QueueService)
-> stores (db.*) -> notices to the desk (db.events).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import time
import uuid
from datetime import datetime
from typing import Any

import asyncpg

from db import agents as agent_store
from db import announcement, events, keys, service_status
from db import calls as call_store
from db import cases as case_store
from db.crypto import Keyring
from dialplan import config, prompts
from dialplan.config import HotlineConfig
from dialplan.render import ARI_APP
from ivr.ari import Ari, AriError, Event
from ivr.calls import Announcement, Arrival, CallerFlow, caller_number
from ivr.channels import Inboxes
from ivr.outbound import Outbound
from ivr.queue import LiveCall, QueueService, call_bridge_id
from ivr.supervision import Supervision
from ivr.voicemail import VoiceMessages

log = logging.getLogger(__name__)
# How often voice messages the fallback took are looked for (a folder listing: cheap).
IMPORT_EVERY = 5.0
HEARTBEAT_SECONDS = 2.0


class CallControl:
    """Everything the ivr process does, given its configuration and connections."""

    def __init__(self, cfg: HotlineConfig, ari: Ari, pool: asyncpg.Pool, keyring: Keyring,
                 dsn: str, voicemail: VoiceMessages, config_path: str | None = None):
        self.cfg = cfg
        self.config_path = config_path
        self.dsn = dsn
        self.ari = ari
        self.pool = pool
        self.inboxes = Inboxes()
        self.voicemail = voicemail
        self.queue = QueueService(cfg, ari, pool, self.inboxes, voicemail, keyring)
        self.supervision = Supervision(ari, pool, self.queue)
        self.outbound = Outbound(pool, self.queue)
        self.flow = CallerFlow(cfg, pool, keyring, self.queue.enqueue, self._ended_in_ivr)
        self.flow.voicemail = voicemail
        self._tasks: set[asyncio.Task[None]] = set()
        ari.on("StasisStart", self.on_stasis_start)
        ari.on("StasisEnd", self.on_channel_left)
        ari.on("ChannelDestroyed", self.on_channel_left)
        ari.on("*", self.on_any)
        ari.on_connect(self.reconcile)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)

    # -- ARI event handlers ---------------------------------------------------------------

    async def on_any(self, event: Event) -> None:
        self.inboxes.route(event)
        if event.get("type") == "ChannelHangupRequest":
            self.queue.caller_hangup_request(event)
        elif event.get("type") == "ChannelLeftBridge":
            await self.queue.left_bridge(event)
        if event.get("type") == "ChannelDtmfReceived":
            channel_id = event["channel"]["id"]
            if not self.inboxes.has(channel_id) and channel_id in self.queue.by_caller:
                await self.queue.caller_key(channel_id, str(event.get("digit", "")))

    async def on_stasis_start(self, event: Event) -> None:
        args = event.get("args") or []
        channel = self.ari.channel(event["channel"]["id"], event["channel"])
        if args[:1] == ["inbound"] and len(args) >= 2:
            inbox = self.inboxes.open(channel.id)
            presentation, trunk = (args[2:4] + ["", ""])[:2]
            self._spawn(self._run_flow(channel.id, self.flow.run(channel, inbox, args[1],
                                                                 presentation, trunk)))
        elif args[:1] == ["agent"]:
            await self.queue.agent_answered(channel.id)
        elif args[:1] == ["callee"]:
            await self.queue.callee_answered(channel.id)
        elif args[:1] == ["supervisor"]:
            await self.supervision.answered(channel.id)
        elif args[:1] == ["outbound"]:
            await self.outbound.agent_answered(channel.id)
        elif args[:1] == ["outbound-citizen"]:
            await self.outbound.citizen_answered(channel.id)
        elif args[:1] == ["snoop"]:
            pass  # a snoop channel of a supervisor session: bridged by Supervision
        else:
            log.warning("channel entered the app with unknown arguments %s; hanging up", args)
            await channel.hangup()

    async def _run_flow(self, channel_id: str, coro: Any) -> None:
        try:
            await coro
        finally:
            self.inboxes.close(channel_id)

    async def on_channel_left(self, event: Event) -> None:
        channel_id = event["channel"]["id"]
        if channel_id in self.queue.by_caller:
            await self.queue.caller_gone(channel_id)
        elif channel_id in self.queue.by_agent_channel:
            await self.queue.agent_channel_gone(channel_id)
        elif channel_id in self.queue.by_callee:
            await self.queue.callee_gone(channel_id, event)
        elif channel_id in self.supervision.sessions:
            await self.supervision.end(channel_id)
        elif channel_id in self.outbound.legs:
            await self.outbound.gone(channel_id, event)

    async def _ended_in_ivr(self, call_id: uuid.UUID, reason: str) -> None:
        async with self.pool.acquire() as conn:
            await call_store.end(conn, call_id, reason)

    # -- database notices -----------------------------------------------------------------

    def on_notice(self, notice: dict[str, Any]) -> None:
        if notice["kind"] == events.AGENT:
            self.queue.kick()
        elif notice["kind"] == events.CONFIG:
            self.reload_config()
        elif notice["kind"] == events.KEYS:  # new primary data key or index key
            keys.refresh_soon(self.pool, self.flow.keyring)
        elif notice["kind"] == events.ANNOUNCEMENT:
            task = asyncio.create_task(self.load_announcement())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif notice["kind"] == events.SUPERVISE:
            task = asyncio.create_task(self.supervision.start(
                uuid.UUID(notice["call_id"]), int(notice["supervisor_id"]), notice["mode"]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif notice["kind"] == events.DIAL:
            self._spawn(self.outbound.start(int(notice["outbound_id"])))
        elif notice["kind"] == events.CALL_ENDED:
            task = asyncio.create_task(self.supervision.call_ended(uuid.UUID(notice["call_id"])))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def notices_back(self) -> None:
        """Notices may have been missed while disconnected: look at the queue again, place
        calls out asked for meanwhile, and re-read the keys (a rotation may have happened)."""
        self.queue.kick()
        self._spawn(self.outbound.settle())
        keys.refresh_soon(self.pool, self.flow.keyring)

    def reload_config(self) -> None:
        """`hotline config apply` put a new YAML live: use its numbers and queue settings
        from now on (calls already waiting keep their place)."""
        if not self.config_path:
            return
        try:
            cfg = config.load(self.config_path)
        except config.ConfigError as e:
            log.error("the applied configuration does not load here; keeping the old one: %s",
                      e)
            return
        self.cfg = self.queue.cfg = self.flow.cfg = cfg
        self.queue.voicemail.hotline_numbers = frozenset(n.number for n in cfg.numbers)
        log.info("configuration reloaded from %s", self.config_path)
        task = asyncio.create_task(self.queue.ensure_bridges())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self.queue.kick()

    # -- recovery -------------------------------------------------------------------------

    async def reconcile(self) -> None:
        """After (re)connecting to ARI, make the database agree with Asterisk's channels.

        Events missed while disconnected are not replayed, so: calls whose caller is gone
        are ended; waiting callers are put back in their holding bridge; offers whose
        outcome was lost go back to the queue; conversations whose agent is gone are ended;
        agents left ringing or on call with no call are made ready again.
        """
        try:
            await self.queue.ensure_bridges()
        except AriError as e:
            log.error("reconcile: queue bridges not ready (%s)", e)
        channels = {c["id"]: c for c in await self.ari.channels()}
        try:
            started = await self.ari.started_at()
        except Exception:  # without it calls are judged as before: the caller's hang-up
            log.warning("reconcile: Asterisk's start time is unknown")
            started = None
        async with self.pool.acquire() as conn:
            live = await call_store.live(conn)
        for row in live:
            try:
                await self._reconcile_call(row, channels, started)
            except Exception:
                log.exception("reconcile: call %s could not be reconciled", row["id"])
        try:
            await self.outbound.settle()
        except Exception:
            log.exception("reconcile: calls out could not be settled")
        async with self.pool.acquire() as conn:
            stuck = await conn.fetch(
                """SELECT a.id FROM agents a WHERE a.state IN ('ringing', 'on_call')
                   AND NOT EXISTS (SELECT 1 FROM call_offers o WHERE o.agent_id = a.id)
                   AND NOT EXISTS (SELECT 1 FROM outbound_calls o WHERE o.agent_id = a.id
                                   AND o.state <> 'ended')
                   AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.agent_id = a.id
                                   AND c.state = 'connected')"""
            )
            for a in stuck:
                log.info("reconcile: agent %d had no call; freeing them", a["id"])
                async with conn.transaction():
                    await agent_store.after_call(conn, a["id"], 0)
        try:
            await self.voicemail.import_fallback()
        except Exception:
            log.exception("reconcile: voice messages of the fallback could not be imported")
        self.queue.kick()

    async def _reconcile_call(self, row: asyncpg.Record, channels: dict[str, Event],
                              started: datetime | None = None) -> None:
        call_id, caller = row["id"], row["channel_id"]
        if self.inboxes.has(caller):
            return  # its IVR is running in this process: it will enqueue it
        known = self.queue.by_call.get(call_id)
        if row["callback_at"] is not None and row["state"] in ("waiting", "offered"):
            await self._adopt_callback(row, channels, known)
            return
        if caller not in channels:
            # A call older than this Asterisk was cut by its restart (a crash), not by the
            # caller: it goes at the head of the callback worklist and counts apart.
            lost = started is not None and row["arrived_at"] < started
            reason = call_store.SYSTEM_LOST if lost else None
            if lost:
                log.warning("reconcile: call %s was cut by an Asterisk restart", call_id)
            else:
                log.info("reconcile: call %s's caller is gone", call_id)
            if known:
                await self.queue.caller_gone(caller, reason)
                return
            async with self.pool.acquire() as conn:
                legs = [o["channel_id"] for o in await call_store.offers(conn, call_id)]
                await call_store.end(conn, call_id, reason or "caller_hangup")
            for leg in [*legs, row["agent_channel_id"]]:
                if leg in channels:
                    await self.ari.channel(leg).hangup()
            if row["bridge_id"]:
                await self.ari.bridge(row["bridge_id"]).destroy()
            return
        if known is not None:
            for leg in [*known.legs, known.agent_channel]:
                if leg and leg not in channels:
                    await self.queue.agent_channel_gone(leg)
            return
        await self._adopt(row, channels)

    async def _adopt_callback(self, row: asyncpg.Record, channels: dict[str, Event],
                              known: LiveCall | None) -> None:
        """A call whose caller hung up to be called back: no channel to look for."""
        if known is not None:
            for leg in [*known.legs, known.agent_channel, known.callee_channel]:
                if leg and leg not in channels:
                    if leg == known.callee_channel:
                        await self.queue.callee_gone(leg)
                    else:
                        await self.queue.agent_channel_gone(leg)
            return
        live = LiveCall(row["id"], row["channel_id"], row["queue"], callback=True)
        self.queue.track(live)
        self.queue.by_caller.pop(row["channel_id"], None)
        if row["state"] == "offered":
            async with self.pool.acquire() as conn:
                legs = await call_store.offers(conn, row["id"])
            for leg in legs:
                if leg["channel_id"] in channels:
                    await self.ari.channel(leg["channel_id"]).hangup()
            if row["callback_channel_id"] in channels:
                await self.ari.channel(row["callback_channel_id"]).hangup()
            await self.ari.bridge(call_bridge_id(row["id"])).destroy()
            async with self.pool.acquire() as conn:
                for leg in legs:
                    await call_store.leg_failed(conn, row["id"], row["queue"], leg["agent_id"],
                                                "restart", pause=False)

    async def _adopt(self, row: asyncpg.Record, channels: dict[str, Event]) -> None:
        """Take over a call this process did not know (it was started before a restart)."""
        live = LiveCall(row["id"], row["channel_id"], row["queue"])
        agent_leg = row["agent_channel_id"]
        if row["state"] == "ivr":
            # Its IVR was cut short: serve the caller rather than ask again.
            log.info("reconcile: call %s was in the IVR; queueing it", row["id"])
            case_id = row["case_id"]
            if case_id is None:
                channel = self.ari.channel(row["channel_id"], channels[row["channel_id"]])
                async with self.pool.acquire() as conn:
                    case = await case_store.create(
                        conn, self.flow.keyring, call_id=row["id"],
                        dialled_number=row["dialled_number"],
                        service=row["service"] or self.flow.default_service(),
                        caller_number=caller_number(channel),
                    )
                case_id = case["id"]
            await self.queue.enqueue(Arrival(row["id"], row["channel_id"], row["queue"],
                                             row["service"] or self.flow.default_service(),
                                             case_id))
            return
        if row["entered_queue_at"] is not None:
            async with self.pool.acquire() as conn:
                waited = await conn.fetchval("SELECT extract(epoch FROM now() - $1::timestamptz)",
                                             row["entered_queue_at"])
            live.entered = time.monotonic() - float(waited)
        self.queue.track(live)
        if row["state"] == "waiting":
            await self.queue.back_to_hold(live)
        elif row["state"] == "offered":
            # The offer's outcome was lost with the old process: hang the agent legs up and
            # put the caller back in its place.
            async with self.pool.acquire() as conn:
                legs = await call_store.offers(conn, row["id"])
            for leg in legs:
                if leg["channel_id"] in channels:
                    await self.ari.channel(leg["channel_id"]).hangup()
            await self.ari.bridge(call_bridge_id(row["id"])).destroy()
            await self.queue.back_to_hold(live)
            async with self.pool.acquire() as conn:
                for leg in legs:
                    await call_store.leg_failed(conn, row["id"], row["queue"], leg["agent_id"],
                                                "restart", pause=False)
        elif row["state"] == "connected":
            live.bridge_id = row["bridge_id"]
            live.agent_channel = agent_leg
            live.agent_id = row["agent_id"]
            if agent_leg:
                self.queue.by_agent_channel[agent_leg] = live
            if agent_leg not in channels:
                log.info("reconcile: call %s's agent is gone; ending it", row["id"])
                await self.queue.agent_channel_gone(agent_leg or "")
                if not agent_leg:
                    await self.queue.caller_gone(row["channel_id"])

    # -- main loop ------------------------------------------------------------------------

    async def load_announcement(self) -> None:
        """Speak the supervisor's current message (espeak-ng, at run time) for callers."""
        try:
            async with self.pool.acquire() as conn:
                current = await announcement.get(conn)
            if current["mode"] == "off" or not current["text"]:
                self.flow.announcement = None
                log.info("message to callers: off")
                return
            rate = self.cfg.speech_rate
            prompt = "announcement_" + hashlib.sha256(
                f"{rate}\n{current['text']}".encode()).hexdigest()[:12]
            sounds = self.voicemail.sounds_dir()
            if sounds is None:
                log.error("message to callers cannot be played: no Asterisk folder known")
                return
            loop = asyncio.get_running_loop()
            wavs = await loop.run_in_executor(
                None, prompts.build, {prompt: current["text"]}, sounds.parent / ".runtime", rate)
            shutil.copyfile(wavs[prompt], sounds / f"{prompt}.wav")
            self.flow.announcement = Announcement(current["mode"], prompt)
            log.info("message to callers: %s", current["mode"])
        except Exception:
            log.exception("the message to callers could not be prepared")

    async def import_voice_messages(self) -> None:
        """Messages the dialplan took while this service was down become cases."""
        while True:
            await asyncio.sleep(IMPORT_EVERY)
            try:
                await self.voicemail.import_fallback()
            except Exception:
                log.exception("voice messages of the fallback could not be imported")

    async def heartbeat(self) -> None:
        """Tell `hotline status` this service is alive and whether ARI is connected."""
        while True:
            try:
                async with self.pool.acquire() as conn:
                    await service_status.beat(
                        conn, "ivr", {"ari_connected": self.ari.connected.is_set(),
                                      **self.queue.outages.as_dict()})
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pass  # the database is gone: dispatch says so once (db/pool.py Outages)
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def run(self) -> None:
        """Run until cancelled."""
        await self.load_announcement()
        await asyncio.gather(
            self.ari.run(), self.queue.run(), self.queue.announcer(), self.heartbeat(),
            self.import_voice_messages(),
            events.listen_forever(self.dsn, self.on_notice, on_connect=self.notices_back),
        )


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("a call flow failed", exc_info=task.exception())


__all__ = ["ARI_APP", "CallControl"]
