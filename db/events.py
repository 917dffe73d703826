"""Change notices between the parts, over PostgreSQL LISTEN/NOTIFY.

The rows are the truth; a notice only says which rows changed, so a missed notice is
repaired by the next full read.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

CHANNEL = "hotline_events"

# Kinds of notice.
QUEUE = "queue"  # the waiting list changed
AGENT = "agent"  # an agent's state changed: agent_id
OFFER = "offer"  # a call is offered to an agent: agent_id, call_id
CONNECTED = "connected"  # caller and agent bridged: agent_id, call_id
CALL_ENDED = "call_ended"  # call_id, agent_id (or None), rung agents, reason
ANNOUNCEMENT = "announcement"  # the supervisor's message to callers changed: mode
SUPERVISE = "supervise"  # a supervisor asks to listen/whisper/barge: call_id, supervisor_id
CONFIG = "config"  # a configuration version was applied: version (re-read the YAML)
CASE = "case"  # a case moved on: case_id, action, unit_ids (the units concerned)
ALERT = "alert"  # a major emergency was reported to the emergency office: report_id, title
KEYS = "keys"  # the keys changed (new primary data key or index key): reload the keyring
DIAL = "dial"  # an agent asked for a call out from the desk: outbound_id (call control dials)
OUTBOUND = "outbound"  # a call out moved on: outbound_id, state, agent_id, case_id[, outcome]
SIP_BANS = "sip_bans"  # an address was banned or a ban lifted: the SIP guard rewrites its ACL


async def notify(conn: asyncpg.Connection, kind: str, **data: Any) -> None:
    """Send a notice (delivered when the surrounding transaction commits)."""
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, json.dumps({"kind": kind, **data}))


def parse(payload: str) -> dict[str, Any] | None:
    """A notice's payload as a dict, or None when it is not one of ours."""
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    return data if isinstance(data, dict) and isinstance(data.get("kind"), str) else None


async def listen_forever(
    dsn: str,
    handler: Callable[[dict[str, Any]], None],
    on_connect: Callable[[], None] | None = None,
) -> None:
    """Deliver every notice to handler, on a dedicated connection that is re-made when lost.

    on_connect runs after each (re)connect: notices sent while disconnected are lost, so
    the caller re-reads whatever it keeps.
    """
    delay = 0.5
    while True:
        try:
            conn = await asyncpg.connect(dsn, timeout=10)
        except (TimeoutError, OSError, asyncpg.PostgresError) as e:
            log.warning("notice connection: database not reachable (%s); retrying", e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5)
            continue
        delay = 0.5
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c, lost=lost: lost.set())

        def deliver(_c: Any, _pid: int, _channel: str, payload: str) -> None:
            notice = parse(payload)
            if notice is not None:
                handler(notice)

        try:
            await conn.add_listener(CHANNEL, deliver)
            if on_connect is not None:
                on_connect()
            while not lost.is_set():
                try:
                    await asyncio.wait_for(lost.wait(), 5)
                except TimeoutError:
                    # A half-dead connection does not always say so: probe it.
                    await conn.fetchval("SELECT 1", timeout=5)
        except (TimeoutError, OSError, asyncpg.PostgresError) as e:
            log.warning("notice connection lost (%s); reconnecting", e)
        finally:
            if not conn.is_closed():
                conn.terminate()
        await asyncio.sleep(delay)
