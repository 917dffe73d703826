"""The SIP guard without Asterisk: counting failures per address, who is never banned, the
bans in the database, and the door holding exactly the bans in force (a fake door; the
real ACL and Asterisk are tests/hotline/test_sipguard_e2e.py)."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from db import pool as db_pool
from db import sipbans
from dialplan import config, sipguard
from hotline.sipguard import SipGuardService, Tally, exempt_networks, remote_address
from tests.conftest import ROOT

GUARD = sipguard.SipGuard(failures=5, window=10, ban_minutes=30)
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def event(kind: str, address: str) -> dict[str, str]:
    return {"Event": kind, "RemoteAddress": f"IPV4/UDP/{address}/5060",
            "AccountID": "12345", "Service": "PJSIP"}


def test_the_remote_address_of_a_security_event() -> None:
    assert remote_address(event("InvalidAccountID", "203.0.113.9")) == "203.0.113.9"
    assert remote_address({"RemoteAddress": "IPV6/UDP/2001:db8::7/5060"}) == "2001:db8::7"
    for bad in ({}, {"RemoteAddress": "garbage"}, {"RemoteAddress": "IPV4/UDP/x;rm -rf/1"}):
        assert remote_address(bad) is None


def test_a_ban_comes_at_the_threshold_within_the_window_only() -> None:
    tally = Tally(GUARD, ())
    for i in range(4):
        assert tally.failed("203.0.113.9", "InvalidAccountID", float(i)) is None
    # The fifth arrives after the first left the window: still four.
    assert tally.failed("203.0.113.9", "InvalidAccountID", 10.5) is None
    verdict = tally.failed("203.0.113.9", "ChallengeResponseFailed", 10.9)
    assert verdict is not None
    assert (verdict.address, verdict.reason, verdict.failures) == \
        ("203.0.113.9", "InvalidAccountID", 5)
    # Another address is counted on its own.
    assert tally.failed("203.0.113.10", "InvalidPassword", 11.0) is None
    tally.forget_idle(100.0)
    assert tally.seen == {}


def test_carriers_the_desk_and_never_ban_are_never_banned() -> None:
    cfg = config.load(ROOT / "config" / "hotline.yaml")
    cfg = dataclasses.replace(cfg, system=dataclasses.replace(
        cfg.system, sip_guard=dataclasses.replace(GUARD, never_ban=("198.51.100.0/24",))))
    tally = Tally(GUARD, exempt_networks(cfg))
    carrier = cfg.trunks[0].match[0].split("/")[0]
    for address in (carrier, cfg.system.bind, "198.51.100.77"):
        assert all(tally.failed(address, "InvalidAccountID", float(i)) is None
                   for i in range(50)), address
    assert not tally.is_exempt("203.0.113.9")


def test_the_acl_file_denies_exactly_the_banned_addresses() -> None:
    text = sipguard.render_bans(["203.0.113.9", "2001:db8::7", "10.0.0.5", "203.0.113.9"])
    assert text.splitlines()[1:] == ["[hotline-banned]", "type = acl", "deny = 10.0.0.5/32",
                                     "deny = 203.0.113.9/32", "deny = 2001:db8::7/128"]
    assert "deny" not in sipguard.render_bans([])
    with pytest.raises(ValueError):
        sipguard.render_bans(["203.0.113.9\n[evil]"])


@pytest.mark.parametrize(("yaml", "words"), [
    ("failures: 1", "sip_guard failures must be a whole number of failed requests from 3"),
    ("window: ten", "sip_guard window must be a whole number of seconds"),
    ("enabled: sometimes", "sip_guard enabled must be true or false"),
    ("never_ban: [not-an-address]", "never_ban"),
    ("ban_minute: 5", "unknown key 'ban_minute' in 'system: sip_guard' (did you mean "
                      "'ban_minutes'?)"),
])
def test_sip_guard_mistakes_are_reported_on_their_line(yaml: str, words: str) -> None:
    text = (ROOT / "config" / "hotline.yaml").read_text()
    # The shipped file shows the defaults: the test's line takes their place.
    text = re.sub(r"\n  sip_guard:\n(    .*\n)*", f"\n  sip_guard:\n    {yaml}\n", text, count=1)
    line = text.splitlines().index(f"    {yaml}") + 1
    with pytest.raises(config.ConfigError) as e:
        config.loads(text, "hotline.yaml")
    assert f"hotline.yaml:{line}:" in str(e.value) and words in str(e.value)


@dataclasses.dataclass
class Clock:
    now: datetime = T0
    mono: float = 0.0


class FakeDoor:
    def __init__(self) -> None:
        self.held: list[list[str]] = []

    async def shut(self, addresses: list[str]) -> None:
        self.held.append(list(addresses))


@pytest.fixture
async def guard(pg_dsn: str, conn: asyncpg.Connection) -> Any:
    cfg = config.load(ROOT / "config" / "hotline.yaml")
    cfg = dataclasses.replace(cfg, system=dataclasses.replace(cfg.system, sip_guard=GUARD))
    pool = await db_pool.connect(pg_dsn)
    clock = Clock()
    door = FakeDoor()
    service = SipGuardService(cfg, pool, door, clock=lambda: clock.now,
                              monotonic=lambda: clock.mono)
    yield service, door, clock
    await pool.close()


async def test_a_flood_is_banned_once_and_let_in_again_when_the_ban_ends(
        guard: Any, conn: asyncpg.Connection) -> None:
    service, door, clock = guard
    await service.refresh()
    assert door.held == [[]]  # the door starts holding nothing
    for i in range(4):
        clock.mono = float(i)
        await service.on_security_event(event("InvalidAccountID", "203.0.113.9"))
    assert door.held == [[]] and await sipbans.in_force(conn, T0) == []
    await service.on_security_event(event("InvalidAccountID", "203.0.113.9"))
    assert door.held[-1] == ["203.0.113.9"]
    [row] = await sipbans.recent(conn)
    assert (row["address"], row["reason"], row["failures"]) == \
        ("203.0.113.9", "InvalidAccountID", 5)
    assert row["until"] == T0 + timedelta(minutes=30)

    # Its requests keep failing (403 by the ACL): nothing more is written or reloaded.
    for _ in range(20):
        await service.on_security_event(event("FailedACL", "203.0.113.9"))
    assert len(door.held) == 2 and len(await sipbans.recent(conn)) == 1
    # Events that are not failures, or without an address, count for nothing.
    for _ in range(20):
        await service.on_security_event(event("SuccessfulAuth", "203.0.113.10"))
        await service.on_security_event({"Event": "InvalidPassword"})
    assert len(door.held) == 2

    clock.now = T0 + timedelta(minutes=30)
    await service.refresh()
    assert door.held[-1] == [] and await sipbans.in_force(conn, clock.now) == []
    [row] = await sipbans.recent(conn)
    assert row["lifted_by"] == "expired"


async def test_a_ban_lifted_by_hand_opens_the_door(guard: Any, conn: asyncpg.Connection) -> None:
    service, door, clock = guard
    assert await sipbans.ban(conn, "203.0.113.9", reason="InvalidPassword", failures=9,
                             minutes=30, now=T0)
    assert not await sipbans.ban(conn, "203.0.113.9", reason="InvalidPassword", failures=9,
                                 minutes=30, now=T0)  # one ban in force per address
    await service.refresh()
    assert door.held[-1] == ["203.0.113.9"]
    assert await sipbans.lift(conn, "203.0.113.9", by="admin", now=T0 + timedelta(minutes=1))
    assert not await sipbans.lift(conn, "203.0.113.9", by="admin", now=T0)
    await service.refresh()
    assert door.held[-1] == []
    # Banned again later: a new row, the old one kept as the record.
    assert await sipbans.ban(conn, "203.0.113.9", reason="InvalidAccountID", failures=5,
                             minutes=30, now=T0 + timedelta(minutes=2))
    assert [r["lifted_by"] for r in await sipbans.recent(conn)] == [None, "admin"]
