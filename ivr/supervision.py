"""Listen, whisper and barge: a duty supervisor joins an agent's call on their own phone.

Listen and whisper go through an ARI snoop channel on the agent's leg (whisper speaks
into the agent's ear only); barge puts the supervisor in the call's own bridge.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import asyncpg

from db import calls as call_store
from ivr.ari import Ari, AriError, NotFound
from ivr.queue import QueueService, phone_endpoint

log = logging.getLogger(__name__)
MODES = ("listen", "whisper", "barge")


@dataclass
class Session:
    call_id: uuid.UUID
    supervisor_id: int
    mode: str
    leg: str  # the supervisor's phone leg
    snoop: str | None = None
    bridge: str | None = None


class Supervision:
    """Supervisor sessions on live calls."""

    def __init__(self, ari: Ari, pool: asyncpg.Pool, queue: QueueService):
        self.ari = ari
        self.pool = pool
        self.queue = queue
        self.sessions: dict[str, Session] = {}  # by the supervisor's leg

    async def start(self, call_id: uuid.UUID, supervisor_id: int, mode: str) -> None:
        """Ring the supervisor's phone; on answer they join the call as asked."""
        live = self.queue.by_call.get(call_id)
        if mode not in MODES or live is None or live.bridge_id is None:
            log.info("supervision of call %s refused: not a call in progress", call_id)
            return
        async with self.pool.acquire() as conn:
            phone_id = await conn.fetchval("SELECT phone FROM agents WHERE id = $1",
                                           supervisor_id)
        phone = self.queue.cfg.phones.get(phone_id or "")
        if phone is None:
            log.info("supervisor %d has no phone in the YAML", supervisor_id)
            return
        endpoint, formats = phone_endpoint(phone)
        leg = f"hotline-sup-{uuid.uuid4()}"
        self.sessions[leg] = Session(call_id, supervisor_id, mode, leg)
        try:
            await self.ari.originate(endpoint, app_args=f"supervisor,{call_id}", timeout=30,
                                     caller_id=f'"{mode}" <{mode}>', formats=formats,
                                     channel_id=leg)
        except AriError as e:
            log.error("supervisor %d's phone could not be dialled (%s)", supervisor_id, e)
            self.sessions.pop(leg, None)

    async def answered(self, leg: str) -> None:
        s = self.sessions.get(leg)
        live = self.queue.by_call.get(s.call_id) if s else None
        if s is None or live is None or live.bridge_id is None or live.agent_channel is None:
            await self.ari.channel(leg).hangup()
            self.sessions.pop(leg, None)
            return
        try:
            if s.mode == "barge":
                await self.ari.bridge(live.bridge_id).add(leg)
            else:
                s.snoop = f"hotline-snoop-{uuid.uuid4()}"
                await self.ari.request("POST", f"/channels/{live.agent_channel}/snoop", params={
                    "spy": "both", "whisper": "out" if s.mode == "whisper" else "none",
                    "app": self.ari.app, "appArgs": "snoop", "snoopId": s.snoop})
                s.bridge = f"hotline-spy-{uuid.uuid4()}"
                bridge = await self.ari.create_bridge(s.bridge, "mixing")
                await bridge.add(s.snoop)
                await bridge.add(leg)
        except (NotFound, AriError) as e:
            log.info("call %s: supervision could not start (%s)", s.call_id, e)
            await self.end(leg)
            return
        async with self.pool.acquire() as conn:
            await call_store.log_event(conn, "SPY", s.call_id, live.queue, live.agent_id,
                                       mode=s.mode, supervisor=s.supervisor_id)
        log.info("call %s: supervisor %d joined (%s)", s.call_id, s.supervisor_id, s.mode)

    async def end(self, leg: str) -> None:
        """The supervisor hung up (or the call ended): tidy the snoop and its bridge."""
        s = self.sessions.pop(leg, None)
        if s is None:
            return
        for channel in (s.snoop, leg):
            if channel:
                await self.ari.channel(channel).hangup()
        if s.bridge:
            await self.ari.bridge(s.bridge).destroy()

    async def call_ended(self, call_id: uuid.UUID) -> None:
        for leg in [k for k, s in self.sessions.items() if s.call_id == call_id]:
            await self.end(leg)
