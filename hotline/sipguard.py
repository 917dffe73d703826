"""The SIP guard: an address that keeps failing at Asterisk's door is shut out for a while.

Asterisk answers a request from no trunk or phone with a challenge it can never pass, and
a wrong password with another challenge; each failure is a security event on AMI
(InvalidAccountID, ChallengeResponseFailed, InvalidPassword, FailedACL). A flood or a
password-guessing run from one address would go on forever, filling the log and costing
Asterisk a response each time. The guard counts the failures per source address over
`system.sip_guard.window` seconds (`Tally`, pure); at `failures` it bans the address for
`ban_minutes`: a row in `sip_bans` (db/sipbans.py, so bans survive a restart and
`hotline sip-bans` lists and lifts them) and the address in a PJSIP ACL that Asterisk
applies to every request before anything else (dialplan/sipguard.py): it gets 403 from
then on. Expired and lifted bans are let in again the same way.

Never banned: the carriers' addresses (a trunk's `match`: one bad night at the carrier
must not cut the city's line), `system.bind` (the desk relays the softphones' SIP from
there) and `sip_guard.never_ban`.

The effects (the ACL file, Asterisk's reload) sit behind `Door`, so the counting and
banning are tested with a fake and the real one is driven through Asterisk in
tests/hotline/test_sipguard_e2e.py. Run by `hotline run` as `python -m hotline.sipguard`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import sys
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import asyncpg

from db import events, logsafe, sipbans
from db import pool as db_pool
from dialplan import config
from dialplan import sipguard as settings

log = logging.getLogger("hotline.sipguard")

# The AMI security events that count as a failure at the door.
FAILURES = ("InvalidAccountID", "ChallengeResponseFailed", "InvalidPassword", "FailedACL")
REFRESH_SECONDS = 15.0  # how often expired bans are let in again
RELOAD_MODULE = "res_pjsip.so"  # reloads pjsip.conf, with the ACL file it includes

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def remote_address(event: Mapping[str, Any]) -> str | None:
    """The source address of a security event ("IPV4/UDP/203.0.113.9/5060"), or None."""
    parts = str(event.get("RemoteAddress") or "").split("/")
    if len(parts) < 3:
        return None
    try:
        return str(ipaddress.ip_address(parts[2]))
    except ValueError:
        return None


def exempt_networks(cfg: config.HotlineConfig) -> tuple[IpNetwork, ...]:
    """The addresses never banned: the carriers', the desk's, and never_ban."""
    nets = [*(m for t in cfg.trunks for m in t.match), cfg.system.bind,
            *cfg.system.sip_guard.never_ban]
    return tuple(ipaddress.ip_network(n, strict=False) for n in nets)


@dataclass(frozen=True)
class Verdict:
    """An address to ban: what failed most, and how often within the window."""

    address: str
    reason: str
    failures: int


@dataclass
class Tally:
    """Failures per address over a sliding window (monotonic seconds)."""

    guard: settings.SipGuard
    exempt: tuple[IpNetwork, ...]
    seen: dict[str, deque[tuple[float, str]]] = field(default_factory=dict)

    def is_exempt(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip in net for net in self.exempt)

    def failed(self, address: str, kind: str, at: float) -> Verdict | None:
        """Count one failure; the verdict when the address reached the threshold."""
        if self.is_exempt(address):
            return None
        recent = self.seen.setdefault(address, deque())
        recent.append((at, kind))
        while recent and recent[0][0] <= at - self.guard.window:
            recent.popleft()
        if len(recent) < self.guard.failures:
            return None
        reason = Counter(k for _, k in recent).most_common(1)[0][0]
        verdict = Verdict(address, reason, len(recent))
        del self.seen[address]
        return verdict

    def forget_idle(self, now: float) -> None:
        """Drop addresses with no failure left in the window (bounded memory)."""
        for address in [a for a, q in self.seen.items() if q[-1][0] <= now - self.guard.window]:
            del self.seen[address]


class Door(Protocol):
    """What shuts addresses out: the ACL file and Asterisk's reload."""

    async def shut(self, addresses: list[str]) -> None:
        """Make exactly these addresses the banned ones."""


class AclDoor:
    """The real door: pjsip_bans.conf in Asterisk's etc, then `module reload res_pjsip`."""

    def __init__(self, etc: Path, reload: Callable[[str], Any]):
        self.path = etc / settings.BANS_FILE
        self.reload = reload

    async def shut(self, addresses: list[str]) -> None:
        text = settings.render_bans(addresses)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, self.path)
        await self.reload(RELOAD_MODULE)


class SipGuardService:
    """Security events in, bans out (event handler -> Tally -> store -> door)."""

    def __init__(self, cfg: config.HotlineConfig, pool: asyncpg.Pool, door: Door, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 monotonic: Callable[[], float] | None = None):
        self.cfg = cfg
        self.pool = pool
        self.door = door
        self.clock = clock
        self.monotonic = monotonic or asyncio.get_running_loop().time
        self.tally = Tally(cfg.system.sip_guard, exempt_networks(cfg))
        self.shut: list[str] | None = None  # what the door holds now (None: not yet known)
        self._lock = asyncio.Lock()

    async def on_security_event(self, event: Mapping[str, Any]) -> None:
        """One failure at the door: count it, and ban the address at the threshold."""
        kind = str(event.get("Event", ""))
        address = remote_address(event)
        if kind not in FAILURES or address is None:
            return
        if self.shut is not None and address in self.shut:
            return  # already banned: its 403s are failures too
        verdict = self.tally.failed(address, kind, self.monotonic())
        if verdict is None:
            return
        guard = self.cfg.system.sip_guard
        async with self.pool.acquire() as conn:
            banned = await sipbans.ban(conn, verdict.address, reason=verdict.reason,
                                       failures=verdict.failures, minutes=guard.ban_minutes,
                                       now=self.clock())
        if banned:
            log.warning("SIP guard: %s banned for %d min after %d failed requests in %d s "
                        "(%s)", verdict.address, guard.ban_minutes, verdict.failures,
                        guard.window, verdict.reason)
        await self.refresh()

    async def refresh(self) -> None:
        """Let expired bans in again and make the door hold exactly the bans in force."""
        async with self._lock:
            async with self.pool.acquire() as conn:
                for address in await sipbans.expire(conn, self.clock()):
                    log.info("SIP guard: the ban on %s expired", address)
                wanted = await sipbans.in_force(conn, self.clock())
            wanted = [a for a in wanted if not self.tally.is_exempt(a)]
            if wanted != self.shut:
                await self.door.shut(wanted)
                self.shut = wanted
            self.tally.forget_idle(self.monotonic())
            async with self.pool.acquire() as conn:
                await sipbans.heartbeat(conn, watching=True, banned=len(wanted))


async def _listen(dsn: str, service: SipGuardService) -> None:
    """Refresh on every `sip_bans` notice (a ban lifted by hand) and every few seconds."""
    wake = asyncio.Event()

    def on_notice(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        notice = events.parse(payload)
        if notice and notice["kind"] == events.SIP_BANS:
            wake.set()

    while True:
        try:
            conn = await asyncpg.connect(dsn)
        except (OSError, asyncpg.PostgresError) as e:
            log.warning("SIP guard: the database is not reachable (%s); retrying", e)
            await asyncio.sleep(2)
            continue
        try:
            await conn.add_listener(events.CHANNEL, on_notice)
            while not conn.is_closed():
                await service.refresh()
                try:
                    await asyncio.wait_for(wake.wait(), REFRESH_SECONDS)
                except TimeoutError:
                    pass
                wake.clear()
        except (OSError, asyncpg.PostgresError, ConnectionError) as e:
            log.warning("SIP guard: lost the database (%s); reconnecting", e)
        finally:
            if not conn.is_closed():
                await conn.close()


async def _main() -> int:
    from panoramisk import Manager

    from hotline import apply

    cfg = config.load(os.environ.get("HOTLINE_CONFIG", "config/hotline.yaml"))
    guard = cfg.system.sip_guard
    asterisk_dir = os.environ.get("HOTLINE_ASTERISK_DIR")
    dsn = os.environ["DATABASE_URL"]
    pool = await db_pool.connect(dsn)
    if not guard.enabled or not asterisk_dir:
        log.info("SIP guard: off (%s)", "sip_guard enabled: false" if not guard.enabled
                 else "no HOTLINE_ASTERISK_DIR")
        while True:  # stay up (the supervisor would start it again), and say it is off
            async with pool.acquire() as conn:
                await sipbans.heartbeat(conn, watching=False, banned=0)
            await asyncio.sleep(REFRESH_SECONDS)
    manager = Manager(host=cfg.system.bind, port=cfg.system.ami_port,
                      username=os.environ["HOTLINE_AMI_USER"],
                      secret=os.environ["HOTLINE_AMI_SECRET"], events="security",
                      ping_delay=10, reconnect_timeout=2)
    ami = apply.PanoramiskAmi(manager)
    door = AclDoor(Path(asterisk_dir) / "etc", lambda module: apply.reload(ami, module))
    service = SipGuardService(cfg, pool, door)

    async def on_event(_manager: Any, event: Mapping[str, Any]) -> None:
        try:
            await service.on_security_event(event)
        except Exception:  # one bad event must not stop the guard
            log.exception("SIP guard: could not handle a security event")

    for name in FAILURES:
        manager.register_event(name, on_event)
    await manager.connect()
    log.info("SIP guard: watching (ban after %d failures in %d s, for %d min)",
             guard.failures, guard.window, guard.ban_minutes)
    try:
        await _listen(dsn, service)
    finally:
        manager.close()
        await pool.close()
    return 0


def main() -> int:
    logsafe.setup()
    try:
        return asyncio.run(_main())
    except config.ConfigError as e:
        log.error("cannot start: %s", e)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())

