"""The desk's first line against login bursts (agent_desk/ratelimit.py), without a server:
the sliding window per key, the grouping of addresses (IPv6 per /64), and memory that stays
bounded under a flood of distinct addresses or names."""

from __future__ import annotations

import ipaddress

from agent_desk.ratelimit import (
    ACCOUNT_FAILURES_PER_MINUTE,
    ADDRESS_FAILURES_PER_MINUTE,
    FailureWindow,
    LoginLimits,
)
from db import logins as login_store


def _ip(text: str) -> login_store.Address:
    return ipaddress.ip_address(text)


def test_a_key_is_refused_at_its_limit_until_the_oldest_failure_leaves_the_window() -> None:
    window: FailureWindow[str] = FailureWindow(limit=3, window=60)
    for t in (0.0, 10.0, 20.0):
        assert window.retry_after("a", t) is None
        window.failed("a", t)
    assert window.retry_after("a", 20.0) == 40.0  # the failure at 0 leaves at 60
    assert window.retry_after("b", 20.0) is None  # other keys are not touched
    assert window.retry_after("a", 60.0) is None
    window.failed("a", 60.0)  # a sliding window: now 10, 20 and 60 are in it
    assert window.retry_after("a", 61.0) == 9.0
    window.forget("a")
    assert window.retry_after("a", 61.0) is None


def test_memory_stays_bounded_under_a_flood_of_distinct_keys() -> None:
    window: FailureWindow[str] = FailureWindow(limit=10, window=60, max_keys=1000)
    for i in range(50_000):  # a flood of names (or addresses), all within one minute
        window.failed(f"name{i}", i / 1000)
    assert len(window) == 1000
    # The newest keys are kept (the one idle longest goes first) and still counted.
    window.failed("name49999", 50.0)
    assert "name49999" in window and "name0" not in window
    # One key failing over and over keeps no more times than its limit.
    for i in range(10_000):
        window.failed("hammer", 50.0 + i / 1000)
    assert window.stored() <= 1000 * 10
    # Keys whose failures all left the window are pruned at the next use.
    assert window.retry_after("anyone", 200.0) is None
    assert len(window) == 0 and window.stored() == 0


def test_login_limits_are_per_account_and_per_address_never_global() -> None:
    now = [0.0]
    limits = LoginLimits(clock=lambda: now[0])
    # Many failures spread over many addresses and names: nobody else is stopped.
    for i in range(300):
        limits.failed(f"guess{i % 40}", _ip(f"198.51.{i // 8}.{i % 8 + 1}"))
    assert limits.refused("agent2", _ip("192.0.2.10")) is None
    # One address: refused at its limit, whatever name it tries; another address is not.
    for i in range(ADDRESS_FAILURES_PER_MINUTE):
        assert limits.refused(f"n{i}", _ip("203.0.113.7")) is None
        limits.failed(f"n{i}", _ip("203.0.113.7"))
    refusal = limits.refused("agent1", _ip("203.0.113.7"))
    assert refusal is not None and refusal.by == "address" and 1 <= refusal.seconds <= 60
    assert limits.refused("agent1", _ip("203.0.113.8")) is None
    # One account, tried from many addresses: refused at its limit from anywhere.
    for i in range(ACCOUNT_FAILURES_PER_MINUTE):
        limits.failed("agent3", _ip(f"192.0.2.{100 + i}"))
    refusal = limits.refused("agent3", _ip("192.0.2.200"))
    assert refusal is not None and refusal.by == "account"
    limits.succeeded("agent3")  # a success clears the account's count (not the address's)
    assert limits.refused("agent3", _ip("192.0.2.200")) is None
    # A minute later everyone may try again, and the memory is given back.
    now[0] = 61.0
    assert limits.refused("agent1", _ip("203.0.113.7")) is None
    assert len(limits) == 0


def test_ipv6_addresses_count_per_64() -> None:
    limits = LoginLimits(clock=lambda: 0.0)
    half = ADDRESS_FAILURES_PER_MINUTE // 2
    for i in range(half):
        limits.failed(f"a{i}", _ip(f"2001:db8:1:2::{i + 1:x}"))
    for i in range(ADDRESS_FAILURES_PER_MINUTE - half):
        limits.failed(f"b{i}", _ip(f"2001:db8:1:2:ffff:{i + 1:x}::9"))
    refusal = limits.refused("agent1", _ip("2001:db8:1:2:abcd::1"))
    assert refusal is not None and refusal.by == "address"
    assert limits.refused("agent1", _ip("2001:db8:1:3::1")) is None  # another /64
    # IPv4 counts per address: a neighbour is not refused.
    for i in range(ADDRESS_FAILURES_PER_MINUTE):
        limits.failed(f"c{i}", _ip("203.0.113.7"))
    assert limits.refused("agent1", _ip("203.0.113.6")) is None
    # No address (e.g. a Unix socket): only the account's count applies.
    assert limits.refused("agent1", None) is None
    limits.failed("x", None)


def test_address_group_is_the_address_for_ipv4_and_the_64_for_ipv6() -> None:
    assert login_store.address_group(_ip("203.0.113.7")) == \
        ipaddress.ip_network("203.0.113.7/32")
    assert login_store.address_group(_ip("2001:db8:1:2:3:4:5:6")) == \
        ipaddress.ip_network("2001:db8:1:2::/64")
