"""Calls out placed from the desk (回拨 on a case or a worklist item).

The agent's phone rings first; when they answer they hear that the citizen is being
called, and the citizen is dialled through the trunks (the next trunk on a carrier fault
before ringing, as the queue's callback does), seeing the hotline number they called.
Both legs end together. The desk has already passed the number through the dial guard
(db.dialguard) when it asked; the number is read again here from the case's encrypted
field, never from the request, and only the routes of a number the plan accepts exist.

Events -> this service -> db.outbound (rows, the worklist, the case's trail) -> notices.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg

from db import cases as case_store
from db import outbound as outbound_store
from ivr import dialout, media
from ivr.ari import AriError, Event, NotFound
from ivr.queue import QueueService, phone_endpoint

log = logging.getLogger(__name__)


@dataclass
class Attempt:
    """A call out this process is placing."""

    id: int
    case_id: int
    agent_id: int
    agent_leg: str
    agent_answered: bool = False
    citizen_leg: str | None = None
    connected: bool = False
    routes: list[dialout.Route] = field(default_factory=list)
    caller_id: str = ""

    @property
    def bridge_id(self) -> str:
        return f"hotline-out-{self.id}"


class Outbound:
    """Places the desk's calls out and follows their legs."""

    def __init__(self, pool: asyncpg.Pool, queue: QueueService):
        # The queue service holds the live configuration, the ARI client and the keyring
        # (it is handed a new configuration on `config apply`).
        self.pool = pool
        self.queue = queue
        self.legs: dict[str, Attempt] = {}  # agent and citizen legs -> their attempt

    async def start(self, out_id: int) -> None:
        """Ring the agent's phone for a call out the desk asked for."""
        cfg, ari = self.queue.cfg, self.queue.ari
        async with self.pool.acquire() as conn:
            row = await outbound_store.get(conn, out_id)
            phone_id = await conn.fetchval("SELECT phone FROM agents WHERE id = $1",
                                           row["agent_id"]) if row else None
        if row is None or row["state"] != "requested":
            return
        phone = cfg.phones.get(phone_id or "")
        if phone is None:
            log.error("call out %d: agent %d has no phone in the YAML", out_id, row["agent_id"])
            await self._finish(out_id, "failed")
            return
        leg = f"hotline-out-agent-{uuid.uuid4()}"
        attempt = Attempt(out_id, row["case_id"], row["agent_id"], leg)
        self.legs[leg] = attempt
        endpoint, formats = phone_endpoint(phone)
        async with self.pool.acquire() as conn:
            await outbound_store.advance(conn, out_id, "agent_ringing", agent_channel_id=leg)
        queue = cfg.queues.get(cfg.default_queue)
        try:
            await ari.originate(endpoint, app_args=f"outbound,{out_id}",
                                timeout=queue.ring_timeout if queue else 20,
                                caller_id='"回拨" <callback>', formats=formats,
                                channel_id=leg)
        except AriError as e:
            log.error("call out %d: agent %d's phone could not be dialled (%s)", out_id,
                      row["agent_id"], e)
            self.legs.pop(leg, None)
            await self._finish(out_id, "failed")

    async def agent_answered(self, leg: str) -> None:
        """The agent picked up: tell them, then call the citizen on the first trunk."""
        ari, cfg = self.queue.ari, self.queue.cfg
        attempt = self.legs.get(leg)
        if attempt is None or leg != attempt.agent_leg:
            await ari.channel(leg).hangup()
            return
        attempt.agent_answered = True
        bridge = await ari.create_bridge(attempt.bridge_id, "mixing",
                                         name=f"call out {attempt.id}")
        try:
            await bridge.add(leg)
        except NotFound:
            return  # gone already: its departure ends the attempt
        await media.start(ari.channel(leg), media.prompt_media("callback_agent"))
        async with self.pool.acquire() as conn:
            case = await case_store.get(conn, self.queue.keyring, attempt.case_id)
        number = (case["callback_number"] or case["caller_number"] or "") if case else ""
        attempt.routes = list(dialout.routes(cfg, number))
        if not attempt.routes:
            log.warning("call out %d: no route for the case's number (refused by the plan, "
                        "or no trunk)", attempt.id)
            await self._hang_up_all(attempt)
            await self._finish(attempt.id, "refused")
            return
        dialled = str(case["dialled_number"]) if case and case.get("dialled_number") else ""
        attempt.caller_id = dialled if cfg.number(dialled) else (
            cfg.dial_out.caller_id or (cfg.numbers[0].number if cfg.numbers else ""))
        await self._dial_citizen(attempt)

    async def _dial_citizen(self, attempt: Attempt) -> None:
        route = attempt.routes.pop(0)
        leg = f"hotline-out-citizen-{uuid.uuid4()}"
        attempt.citizen_leg = leg
        self.legs[leg] = attempt
        async with self.pool.acquire() as conn:
            await outbound_store.advance(conn, attempt.id, "citizen_ringing",
                                         citizen_channel_id=leg, trunk=route.trunk)
        shown = attempt.caller_id
        try:
            await self.queue.ari.originate(
                route.endpoint, app_args=f"outbound-citizen,{attempt.id}",
                timeout=self.queue.cfg.dial_out.ring_seconds,
                caller_id=f'"{shown}" <{shown}>', channel_id=leg)
            log.info("call out %d: calling the citizen on trunk %s", attempt.id, route.trunk)
        except AriError as e:
            log.error("call out %d: trunk %s could not place the call (%s)", attempt.id,
                      route.trunk, e)
            self.legs.pop(leg, None)
            attempt.citizen_leg = None
            if attempt.routes:
                await self._dial_citizen(attempt)
            else:
                await self._hang_up_all(attempt)
                await self._finish(attempt.id, "trunk_failed")

    async def citizen_answered(self, leg: str) -> None:
        """The citizen picked up: they join the agent."""
        ari = self.queue.ari
        attempt = self.legs.get(leg)
        if attempt is None or leg != attempt.citizen_leg:
            await ari.channel(leg).hangup()
            return
        try:
            await ari.bridge(attempt.bridge_id).add(leg)
        except NotFound:
            await self.gone(attempt.agent_leg)
            return
        attempt.connected = True
        async with self.pool.acquire() as conn:
            await outbound_store.advance(conn, attempt.id, "connected")
        log.info("call out %d: the citizen answered; connected to agent %d", attempt.id,
                 attempt.agent_id)

    async def gone(self, leg: str, event: Event | None = None) -> None:
        """A leg of a call out ended: either side ends the call (a trunk fault before the
        citizen's phone rang tries the next trunk)."""
        attempt = self.legs.pop(leg, None)
        if attempt is None:
            return
        if leg == attempt.citizen_leg and not attempt.connected:
            attempt.citizen_leg = None
            if event is not None and attempt.routes and dialout.fails_over(event):
                log.warning("call out %d: the trunk failed (cause %s); trying the next one",
                            attempt.id, event.get("cause"))
                await self._dial_citizen(attempt)
                return
            outcome = dialout.unanswered(event)
        elif attempt.connected:
            outcome = "reached"
        elif leg == attempt.agent_leg:
            outcome = "agent_hangup" if attempt.agent_answered else "agent_no_answer"
        else:
            outcome = "failed"
        log.info("call out %d ended: %s", attempt.id, outcome)
        await self._hang_up_all(attempt)
        await self._finish(attempt.id, outcome)

    async def _hang_up_all(self, attempt: Attempt) -> None:
        ari = self.queue.ari
        for other in (attempt.agent_leg, attempt.citizen_leg):
            if other and self.legs.pop(other, None) is not None:
                await ari.channel(other).hangup()
        await ari.bridge(attempt.bridge_id).destroy()

    async def _finish(self, out_id: int, outcome: str) -> None:
        cfg = self.queue.cfg
        queue = cfg.queues.get(cfg.default_queue)
        async with self.pool.acquire() as conn:
            await outbound_store.finish(conn, out_id, outcome,
                                        wrap_up=queue.wrap_up if queue else 0,
                                        now=datetime.now(UTC))

    async def settle(self) -> None:
        """After a (re)connect to ARI or to the notices: a call out asked for while a notice
        was missed is placed now; one this process no longer follows (placed before a
        restart) is ended, so no agent stays held on a call that does not exist."""
        followed = {a.id for a in self.legs.values()}
        async with self.pool.acquire() as conn:
            rows = await conn.fetch("SELECT id, state FROM outbound_calls "
                                    "WHERE state <> 'ended' ORDER BY id")
        for row in rows:
            if row["id"] in followed:
                continue
            if row["state"] == "requested":
                await self.start(row["id"])
            else:
                log.warning("call out %d was lost by call control; ended", row["id"])
                await self._finish(row["id"], "failed")
