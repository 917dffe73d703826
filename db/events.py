"""Change notices between the parts, over PostgreSQL LISTEN/NOTIFY.

The rows are the truth; a notice only says which rows changed, so a missed notice is
repaired by the next full read.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

CHANNEL = "hotline_events"

# Kinds of notice.
QUEUE = "queue"  # the waiting list changed
AGENT = "agent"  # an agent's state changed: agent_id
OFFER = "offer"  # a call is offered to an agent: agent_id, call_id
CONNECTED = "connected"  # caller and agent bridged: agent_id, call_id
CALL_ENDED = "call_ended"  # call_id, agent_id (or None), reason


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
