"""Calls out to citizens: the dial guard first, then the carrier trunks in order.

Every number the hotline dials (the queue's callback, the worklist, a revisit) goes
through `prepare`: the numbering plan and the caps (db.dialguard) decide, and only the
digits that passed become a dial string, one per trunk of `dial_out.trunks`. When a trunk
cannot take the call (no answer from the carrier, congestion, refused as a network
fault) before the citizen's phone rang, the next trunk is tried (`fails_over`).
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from db import dialguard
from db.crypto import Keyring
from dialplan import numbering
from dialplan.config import HotlineConfig
from ivr.ari import Event

log = logging.getLogger(__name__)

# Q.850 causes Asterisk gives a leg that a trunk could not carry: no route (3), no reply
# from the carrier (18: PJSIP's own 408), unreachable (20), out of order (27), network
# failure (38, 41), congestion (34, 42: SIP 503), resources (47), timer expiry (102: 504).
# A busy (17), an unanswered (19) or a refused (21) citizen is an answer, not a fault.
TRUNK_FAULTS = frozenset({3, 18, 20, 27, 34, 38, 41, 42, 47, 102})
# Reasons a callback that did not happen is left on the worklist with (db.worklist).
REFUSED = "callback_refused"
NO_ROUTE = "callback_no_route"


@dataclass(frozen=True)
class Route:
    """One way out for a call: a trunk and the dial string for it."""

    trunk: str
    endpoint: str


@dataclass(frozen=True)
class Plan:
    """What the guard decided for one number, and the routes if it may be dialled."""

    decision: dialguard.Decision
    routes: tuple[Route, ...]
    caller_id: str

    @property
    def allowed(self) -> bool:
        return self.decision.allowed and bool(self.routes)


def routes(cfg: HotlineConfig, number: str) -> tuple[Route, ...]:
    """The dial strings of a number that passed the guard, one per trunk in order.

    Each trunk gets the number written as it wants (a local landline with or without the
    area code); a number the plan refuses gives no route at all."""
    rules = cfg.guard_rules()
    parsed = numbering.parse(number, rules)
    if not parsed.allowed:
        return ()
    out: list[Route] = []
    for tid in cfg.dial_out.trunks:
        trunk = cfg.trunk(tid)
        if trunk is None:
            continue
        digits = numbering.dial_digits(parsed, dataclasses.replace(
            rules, local_format=trunk.local_format))
        out.append(Route(tid, f"PJSIP/{digits}@{trunk.endpoint}"))
    return tuple(out)


async def prepare(conn: asyncpg.Connection, cfg: HotlineConfig, keyring: Keyring, number: str,
                  *, purpose: str, now: datetime, hotline_number: str = "",
                  call_id: uuid.UUID | None = None, case_id: int | None = None,
                  agent_id: int | None = None) -> Plan:
    """Pass a number through the dial guard (recorded, capped) and plan its routes.

    hotline_number: the number the citizen dialled, shown to them as the caller ID;
    dial_out.caller_id when the call has none."""
    decision = await dialguard.check(conn, keyring, number, cfg.guard_rules(), purpose=purpose,
                                     now=now, call_id=call_id, case_id=case_id,
                                     agent_id=agent_id)
    found = routes(cfg, number) if decision.allowed else ()
    if decision.allowed and not found:
        log.warning("no trunk to dial out on (dial_out.trunks is empty); %s not called",
                    decision.masked)
    shown = hotline_number if cfg.number(hotline_number) else cfg.dial_out.caller_id
    return Plan(decision, found, shown or (cfg.numbers[0].number if cfg.numbers else ""))


def fails_over(event: Event) -> bool:
    """Whether a citizen leg that ended should be tried on the next trunk: it ended on a
    network fault before the citizen's phone rang."""
    channel = event.get("channel") or {}
    state = channel.get("state") if isinstance(channel, dict) else None
    cause = event.get("cause")
    return state not in ("Ringing", "Up") and isinstance(cause, int) and cause in TRUNK_FAULTS


def unanswered(event: Event | None) -> str:
    """Why a citizen's leg ended before they answered: busy, trunk_failed or no_answer."""
    cause = event.get("cause") if event else None
    if cause == 17:
        return "busy"
    if isinstance(cause, int) and cause in TRUNK_FAULTS:
        return "trunk_failed"
    return "no_answer"


def end_reason(event: Event | None) -> str:
    """Why the queue's call back to a citizen ended unanswered, for the worklist."""
    return f"callback_{unanswered(event)}"
