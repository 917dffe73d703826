"""The desk's first line against bursts of wrong logins: failures counted in memory, per
account and per client address, within a sliding minute, before any database work.

Never a count of everyone's failures: a flood from anywhere must not lock every agent out
of a 24-hour duty room. The lock-out that holds across restarts and desk processes is the
database's (db/logins.py); this only spares the database a burst, per desk process.

Memory stays bounded whatever is sent: a key keeps at most `limit` times, keys whose
failures have all left the window are dropped, and past `max_keys` keys the one that
failed longest ago goes.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from db import logins as login_store

ACCOUNT_FAILURES_PER_MINUTE = 10
# A duty room behind one NAT address shares this; the database's per-address limit
# (30 in 15 minutes) is the longer one.
ADDRESS_FAILURES_PER_MINUTE = 10
WINDOW_SECONDS = 60.0
# Per window: ten thousand keys of at most ten times each is a few megabytes.
MAX_KEYS = 10_000

K = TypeVar("K", bound=Hashable)


class FailureWindow(Generic[K]):
    """Failures per key within a sliding window of `window` seconds; a key with `limit`
    of them in the window is refused until the oldest leaves it."""

    def __init__(self, limit: int, window: float = WINDOW_SECONDS,
                 max_keys: int = MAX_KEYS) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        # In the order of each key's last failure, so the stale keys are at the front.
        self._times: OrderedDict[K, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._times)

    def __contains__(self, key: object) -> bool:
        return key in self._times

    def keys(self) -> list[K]:
        """The keys counted now."""
        return list(self._times)

    def stored(self) -> int:
        """How many failure times are kept in all."""
        return sum(map(len, self._times.values()))

    def prune(self, now: float) -> None:
        """Drop the keys whose failures have all left the window."""
        while self._times:
            key, times = next(iter(self._times.items()))
            if now - times[-1] < self.window:
                break  # the keys behind it failed later still
            del self._times[key]

    def retry_after(self, key: K, now: float) -> float | None:
        """Seconds until `key` may try again, or None when it may try now."""
        self.prune(now)
        times = self._times.get(key)
        if times is None or len(times) < self.limit:
            return None
        # Only the last `limit` times are kept: the oldest of them leaving frees a try.
        wait = times[0] + self.window - now
        return wait if wait > 0 else None

    def failed(self, key: K, now: float) -> None:
        """Count a failure of `key` at `now`."""
        self.prune(now)
        times = self._times.pop(key, None)
        if times is None:
            times = deque(maxlen=self.limit)
        times.append(now)
        self._times[key] = times  # to the back: failed most recently
        while len(self._times) > self.max_keys:
            # A flood of fresh keys pushes out the oldest: the database's lock-out still
            # counts what this first line forgets.
            self._times.popitem(last=False)

    def forget(self, key: K) -> None:
        """Drop the count of `key`."""
        self._times.pop(key, None)

    def clear(self) -> None:
        """Drop every count."""
        self._times.clear()


@dataclass(frozen=True)
class Refusal:
    """Why a login is refused before any database work, and for how many seconds."""

    by: Literal["account", "address"]
    seconds: int


def _accounts() -> FailureWindow[bytes]:
    return FailureWindow(ACCOUNT_FAILURES_PER_MINUTE)


def _addresses() -> FailureWindow[login_store.AddressGroup]:
    return FailureWindow(ADDRESS_FAILURES_PER_MINUTE)


@dataclass
class LoginLimits:
    """The first line of one desk process: failures per account (the name typed, kept
    only as the lock-out's hash of it, as it may be a password typed into the wrong box)
    and per client address (IPv4 address, IPv6 /64: login_store.address_group)."""

    accounts: FailureWindow[bytes] = field(default_factory=_accounts)
    addresses: FailureWindow[login_store.AddressGroup] = field(default_factory=_addresses)
    # Monotonic, so a wall-clock step neither frees nor stops anyone (tests move it).
    clock: Callable[[], float] = time.monotonic

    def __len__(self) -> int:
        return len(self.accounts) + len(self.addresses)

    def refused(self, login: str, address: login_store.Address | None) -> Refusal | None:
        """A refusal if the address or the account has had too many failures this minute.
        With no address (e.g. a Unix socket) only the account counts: one shared key for
        every such client would be the global limit again."""
        now = self.clock()
        if address is None:
            self.addresses.prune(now)
        else:
            wait = self.addresses.retry_after(login_store.address_group(address), now)
            if wait is not None:
                return Refusal("address", math.ceil(wait))
        wait = self.accounts.retry_after(login_store.login_key(login), now)
        if wait is not None:
            return Refusal("account", math.ceil(wait))
        return None

    def failed(self, login: str, address: login_store.Address | None) -> None:
        """Count a wrong password or code."""
        now = self.clock()
        self.accounts.failed(login_store.login_key(login), now)
        if address is not None:
            self.addresses.failed(login_store.address_group(address), now)

    def succeeded(self, login: str) -> None:
        """A successful login clears its account's count. Not its address's: an attacker
        with an account of their own could otherwise reset their address between guesses."""
        self.accounts.forget(login_store.login_key(login))

    def clear(self) -> None:
        """Forget every count."""
        self.accounts.clear()
        self.addresses.clear()
