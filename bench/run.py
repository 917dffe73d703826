"""`python -m bench.run`: this queue and app_queue, same Asterisk, same load, one run.

    python -m bench.run [--waiting 100,300,500,1000] [--agents M] [--rate 20 --seconds 60]
                        [--measure 25] [--out docs/benchmarks.md] [--quick]
                        [--sip-waiting 100,300,500] [--sip-only | --no-sip]

For each waiting-queue size N, for each queue (the order alternates between sizes):
  1. fill: N callers placed through ARI (`Local/<number>@...` with the citizen side in
     `hotline-citizen`, formats=ulaw), every agent paused, until N wait in the queue (a
     fill that falls behind stops: the machine cannot hold N; a size projected, from the
     previous size's holding cost, to need more than the machine's cores is not run);
  2. hold: the full queue, nobody free, for a few seconds (what holding costs);
  3. measure: every agent (M virtual phones answering after a short delay), on a fixed
     cadence of `slot` seconds, is made ready (dispatch "ready"), talks, hangs up (the
     next call comes by itself: dispatch "hangup"), talks, asks for a pause and hangs
     up; each call served is replaced by a new caller, so about N keep waiting. Dispatch
     latency = Asterisk's timestamp of the agent leg ringing (observer app) - the
     harness's clock just before the freeing action (desk state change committed in
     PostgreSQL, AMI QueuePause, or the agent's hang-up);
  4. every channel is hung up.
Then the admission test: `rate` new calls per second for `seconds`, nobody answering,
each caller hanging up after `--adm-hold` s, counting the calls that reached each queue.
Then the same with SIP callers (bench/sipload.py: SIPp as the demo trunk's carrier from
127.0.0.2, one PJSIP channel a caller, A-law RTP, as in production; app_queue's number is
reached through the same trunk context): the SIP admission test (`--sip-rate` calls/s for
`--sip-seconds`, answer latency INVITE -> 200 OK from SIPp's trace), then for each
`--sip-waiting` size and queue: SIPp keeping N callers up (-l N), hold (music checked
with Asterisk's RTP counters), dispatch measured as above (SIPp replaces each caller
served), lost callers counted; it stops at the first size not held.
CPU (utime+stime from /proc) and memory (RSS) of Asterisk, the call-control process
(ivr), PostgreSQL, the desk and SIPp around every phase. The run ends after
--max-minutes, keeping what was measured.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import json
import os
import platform
import random
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench import procs, report, sipload, stack
from bench.ami import Ami
from bench.ari import AriRest, Observer, Pair, basic_auth
from bench.queues import AppQueue, Hotline, QueueUnderTest
from bench.stack import Agent
from bench.stats import summary
from dialplan import config
from dialplan.render import CITIZEN_CONTEXT, VIRTUAL_PHONE_CONTEXT
from ivr.queue import holding_bridge_id
from tests.sip import CitizenCalls

DISPATCH_TIMEOUT = 20.0
# The sizes, and 300: on a small machine the knee is between 100 and 500.
DEFAULT_SIZES = "100,300,500,1000"
# SIP callers (SIPp on the demo trunk): the sizes held with music and announcements.
DEFAULT_SIP_SIZES = "100,300,500"
SIP_CALLER_PREFIX = f"PJSIP/trunk-{stack.TRUNK}-"  # the SIP callers' channel names
HOLD_SECONDS = "7200"  # callers never hang up by themselves during the run
SIP_HOLD = 3600.0  # SIP callers neither (the harness stops SIPp at the end of a size)
SATURATED = 0.95  # the machine this busy while holding: larger sizes are not run
RTP_SAMPLE = 20  # SIP callers whose RTP counters are read while holding
T_START = time.monotonic()


def log(message: str) -> None:
    print(f"[bench {time.monotonic() - T_START:7.1f} s] {message}", file=sys.stderr, flush=True)


@dataclass
class Options:
    sizes: list[int]
    agents: int
    rate: float
    seconds: float
    measure: float
    hold: float
    slot: float
    adm_hold: float
    backlog_seconds: float
    fill_rate: float
    answer_after: float
    retry: int
    out: Path
    pg_fast: bool
    quick: bool
    keep: bool
    force: bool
    announcements: bool
    also: list[Path]
    command: str
    max_minutes: float = 25
    local: bool = True  # the Local-channel callers' phases
    sip: bool = True  # the SIP callers' phases (SIPp on the demo trunk)
    sip_sizes: list[int] = field(default_factory=lambda: [100, 300, 500])
    sip_rate: float = 20
    sip_seconds: float = 60


@dataclass
class Sample:
    """One dispatch: an agent made free, and their phone ringing."""

    queue: str
    size: int
    mode: str  # "ready" (state change) or "hangup" (end of the previous call)
    login: str
    t_before: float  # harness clock just before the freeing action was sent
    t_after: float  # ... and when it was acknowledged (commit done / AMI answered)
    created: float  # Asterisk: the agent leg's ChannelCreated
    ringing: float  # Asterisk: the agent leg's state Ringing
    claim: float | None = None  # hotline only: its claim transaction's now() (queue_log)
    callers: str = "local"  # who waits: "local" (ARI-originated Local pairs) or "sip" (SIPp)


@dataclass
class Snapshot:
    at: float
    cpu: dict[str, float]
    machine: procs.MachineCpu
    pids: dict[str, int]


@dataclass
class Harness:
    opts: Options
    stack: stack.Stack
    ari: AriRest = field(init=False)
    observer: Observer = field(init=False)
    ami: Ami = field(init=False)
    pool: asyncpg.Pool = field(init=False)
    queues: dict[str, QueueUnderTest] = field(init=False)
    samples: list[Sample] = field(default_factory=list)
    timeouts: dict[tuple[str, str, int, str], int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    originate_failures: int = 0
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    # Channel ids must be new in every run: the calls table of var/bench outlives a run.
    _run: str = field(default_factory=lambda: f"{int(time.time()) % 10**7:07d}")
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    wrap_up: Callable[[], None] = field(default=lambda: None)
    # Who the waiting callers are in the phase running: "local" or "sip" (SIPp).
    callers: str = "local"
    sipps: list[CitizenCalls] = field(default_factory=list)
    # Each time the hotline's holding bridge was found without its music (and given it
    # back): the phase.
    music_restored: list[str] = field(default_factory=list)
    moh_class: str = "default"

    # -- set-up ---------------------------------------------------------------------------

    async def open(self) -> None:
        s = self.stack
        self.ari = AriRest(s.ari_url, s.ari_user, s.ari_password)
        self.observer = Observer(s.ari_url, s.ari_user, s.ari_password)
        self._spawn(self.observer.run())
        await asyncio.wait_for(self.observer.connected.wait(), 15)
        self.ami = Ami()
        await self.ami.connect("127.0.0.1", s.ami_port, stack.BENCH_AMI_USER, s.ami_secret)
        self.pool = await asyncpg.create_pool(s.dsn, min_size=2, max_size=12)
        async with self.pool.acquire() as conn:
            rows = await conn.fetch("SELECT id, login FROM agents WHERE login = ANY($1)",
                                    [a.login for a in s.agents])
        ids = {r["login"]: r["id"] for r in rows}
        self.queues = {"hotline": Hotline(self.pool, ids),
                       "app_queue": AppQueue(self.ami, self.observer, s.agents)}
        self.moh_class = config.load(s.config_path).queues[stack.QUEUE].music_on_hold

    async def hold_music(self, q: QueueUnderTest, phase: str) -> None:
        """Give the hotline's holding bridge its music back if it lost it.

        Asterisk takes the bridge's music-on-hold channel (ARI `POST /bridges/{id}/moh`,
        started once by the ivr when it starts) away when the last caller leaves the
        bridge, and the ivr does not start it again: every caller who waits after the
        queue was once empty hears silence. So that both queues do the same work, the
        harness starts the music again before each of the hotline's phases, and counts
        how often it had to (the report says so)."""
        if q.key != "hotline":
            return
        bridge = holding_bridge_id(stack.QUEUE)
        # ARI does not show the music's Announcer channel; Asterisk's CLI does.
        shown = await asyncio.to_thread(self.stack.asterisk.ctl, f"bridge show {bridge}")
        if "Channel: Announcer/" in shown:
            return
        status, data = await self.ari.request("POST", f"/bridges/{bridge}/moh",
                                              mohClass=self.moh_class)
        self.music_restored.append(phase)
        if status >= 300:
            self.notes.append(f"{phase}: could not restart the holding bridge's music: "
                              f"{status} {data}")

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await self.ami.close()
        await self.ari.close()
        await self.pool.close()

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- measuring the processes --------------------------------------------------------

    async def ivr_pid(self) -> int:
        async with self.pool.acquire() as conn:
            return int(await conn.fetchval("SELECT pid FROM service_status WHERE name = 'ivr'"))

    async def pids(self) -> dict[str, int]:
        return {"asterisk": self.stack.asterisk_pid(), "ivr": await self.ivr_pid(),
                "postgres": self.stack.postmaster_pid(), "desk": self.stack.desk_pid(),
                "harness": os.getpid()}

    async def snapshot(self) -> Snapshot:
        pids = await self.pids()
        cpu = {}
        for name, pid in pids.items():
            try:
                cpu[name] = (procs.tree_cpu_seconds(pid) if name == "postgres"
                             else procs.cpu_seconds(pid))
            except OSError:
                cpu[name] = float("nan")
        cpu["sipp"] = self.sipp_cpu()
        return Snapshot(time.time(), cpu, procs.MachineCpu.read(), pids)

    def sipp_cpu(self) -> float:
        """CPU of the SIPp load generators: the live ones, and those that have exited (the
        harness's waited-for children; the few `hotline status` runs are in it too)."""
        me = os.getpid()
        total = procs.cpu_seconds(me, children=True) - procs.cpu_seconds(me)
        for calls in self.sipps:
            pid = sipload.pid(calls)
            if pid is not None:
                try:
                    total += procs.cpu_seconds(pid)
                except OSError:
                    continue
        return total

    def delta(self, a: Snapshot, b: Snapshot, what: str) -> dict[str, Any]:
        restarted = [k for k in a.pids if a.pids[k] != b.pids.get(k)]
        if restarted:
            self.notes.append(f"{what}: {', '.join(restarted)} restarted during the phase; "
                              "its CPU figure is not valid")
        return {
            "phase_seconds": b.at - a.at,
            "cpu": {k: (b.cpu[k] - a.cpu[k]) if k not in restarted else float("nan")
                    for k in a.cpu},
            "busy": procs.busy_fraction(a.machine, b.machine),
            "load": procs.loadavg(),
        }

    async def memory(self) -> dict[str, float]:
        pids = await self.pids()
        out: dict[str, float] = {}
        for name, pid in pids.items():
            try:
                kib = procs.tree_rss_kib(pid) if name == "postgres" else procs.rss_kib(pid)
            except OSError:
                kib = 0
            out[name] = kib / 1024
        return out

    # -- callers --------------------------------------------------------------------------

    async def place(self, q: QueueUnderTest, tag: str,
                    hold: str = HOLD_SECONDS) -> tuple[str, float] | None:
        """One citizen call into q; returns the id of the channel that reaches the queue
        and when it was placed."""
        n = next(self._seq)
        cid = f"bench-{self._run}-{tag}-{n}"
        # Each caller a different number, also across runs (no 'returning caller' priority).
        number = f"1{self._run[-3:]}{n:07d}"
        t = time.time()
        try:
            await self.ari.originate(
                q.endpoint, context=CITIZEN_CONTEXT, extension="s", channel_id=cid,
                other_id=f"{cid}-2", caller_id=f'"{number}" <{number}>',
                variables={"HOTLINE_DTMF": "", "HOTLINE_HOLD": hold,
                           "HOTLINE_DTMF_DELAY": "0"})
        except RuntimeError as e:
            self.originate_failures += 1
            log(f"originate failed: {e}")
            return None
        return f"{cid}-2", t

    async def originate_paced(self, q: QueueUnderTest, tag: str, rate: float, count: int,
                              hold: str = HOLD_SECONDS,
                              stop: Callable[[int], Awaitable[bool]] | None = None,
                              ) -> tuple[list[tuple[str, float]], int, float]:
        """count calls at rate per second (by the clock, not waiting for answers); stop(n),
        asked about once a second with the number placed so far, may end it early."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks = []
        checked = start
        for i in range(count):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if stop is not None and loop.time() - checked >= 1:
                checked = loop.time()
                if await stop(i):
                    break
            tasks.append(asyncio.ensure_future(self.place(q, tag, hold)))
        sent = loop.time() - start
        results = await asyncio.gather(*tasks)
        placed = [r for r in results if r is not None]
        return placed, len(tasks) - len(placed), sent

    # -- phases ---------------------------------------------------------------------------

    async def pause_everyone(self) -> None:
        for q in self.queues.values():
            await q.pause_all()

    async def fill(self, q: QueueUnderTest, size: int) -> dict[str, Any]:
        log(f"{q.key}: filling the queue with {size} callers ({self.opts.fill_rate:g}/s)")
        await self.pause_everyone()
        await self.hold_music(q, f"fill {size}")
        before = await self.snapshot()
        # Admission takes about the greeting's length; a backlog of more than
        # `backlog_seconds` of calls placed but not yet in the queue means the machine
        # cannot take this many callers: stop placing them rather than pile on.
        backlog = max(40, int(self.opts.fill_rate * self.opts.backlog_seconds))

        failures = self.originate_failures

        async def saturated(n_placed: int) -> bool:
            # Asterisk refusing or timing out an originate: it is already overloaded.
            return (self.originate_failures > failures
                    or n_placed - await q.waiting() > backlog)

        placed, failed, sent = await self.originate_paced(
            q, f"{q.key}-{size}", self.opts.fill_rate, size, stop=saturated)
        deadline = time.monotonic() + 30
        while await q.waiting() < len(placed) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.25)
        after = await self.snapshot()
        waiting = await q.waiting()
        admitted = await q.admitted([i for i, _ in placed])
        latency = [(admitted[i] - t) * 1000 for i, t in placed if i in admitted]
        d = self.delta(before, after, f"{q.key} fill {size}")
        full = waiting >= 0.95 * size
        log(f"{q.key}: {waiting} waiting after {d['phase_seconds']:.1f} s"
            + ("" if full else f" (of {size}: the machine cannot hold them; stopped)"))
        if not full:
            self.notes.append(
                f"{q.key} could not be filled to {size:,} waiting: {len(placed) + failed:,} "
                f"calls placed, {waiting:,} in the queue after {d['phase_seconds']:.0f} s "
                f"(machine {d['busy'] * 100:.0f}% busy); larger sizes were not run")
        return {"calls": size, "placed": len(placed) + failed, "full": full,
                "offered_rate": self.opts.fill_rate, "send_seconds": sent,
                "failed_originates": failed, "waiting": waiting,
                "admitted": len(admitted), "admitted_per_s": _rate(admitted.values()),
                "admission_ms": summary(latency), **d, "memory": await self.memory()}

    async def hold(self, q: QueueUnderTest, size: int) -> dict[str, Any]:
        """The queue full, nobody free: what holding the callers costs, per second."""
        log(f"{q.key}: {size} callers holding for {self.opts.hold:g} s")
        plays = self.observer.announcements
        before = await self.snapshot()
        await asyncio.sleep(self.opts.hold)
        after = await self.snapshot()
        return {"waiting": await q.waiting(), "announcements": self.observer.announcements - plays,
                **self.delta(before, after, f"{q.key} hold {size}")}

    async def measure(self, q: QueueUnderTest, size: int) -> dict[str, Any]:
        log(f"{q.key}: measuring dispatch with {size} waiting for {self.opts.measure:g} s, "
            f"{len(self.stack.agents)} agents")
        first = len(self.samples)
        plays = self.observer.announcements
        before = await self.snapshot()
        deadline = time.time() + self.opts.measure
        rng = random.Random(size)
        workers = [asyncio.ensure_future(self.agent_loop(q, a, size, deadline, rng))
                   for a in self.stack.agents]
        done, pending = await asyncio.wait(workers, timeout=self.opts.measure + 60)
        for w in pending:
            w.cancel()
        for w in done:
            if w.exception() is not None:
                self.notes.append(f"{q.key} at {size}: an agent loop failed: {w.exception()!r}")
        after = await self.snapshot()
        taken = self.samples[first:]
        if q.key == "hotline":
            await self.add_claim_times(taken, before.at, after.at)
        d = self.delta(before, after, f"{q.key} measure {size}")
        log(f"{q.key}: {len(taken)} dispatches measured")
        return {"dispatches": len(taken), "waiting_after": await q.waiting(),
                "announcements": self.observer.announcements - plays, **d}

    async def agent_loop(self, q: QueueUnderTest, agent: Agent, size: int,
                         deadline: float, rng: random.Random) -> None:
        """One agent, on a fixed cadence (so both queues serve the same calls per second):
        made ready at T (dispatch "ready"), talks, hangs up at T + slot (the next call comes
        by itself: dispatch "hangup"), talks, asks for a pause and hangs up at T + 2 slots,
        made ready again a moment later."""
        slot = self.opts.slot
        at = time.time() + rng.uniform(0, slot)
        while at < deadline:
            await _sleep_until(at)
            pair = await self.dispatch(q, agent, size, "ready", lambda: q.make_ready(agent))
            at += slot
            if pair is None or not await self.connected(q, pair):
                await self.reset(q, agent, pair)
                at = max(at, time.time()) + rng.uniform(0.1, 0.5)
                continue
            await _sleep_until(at)  # the conversation
            pair = await self.dispatch(q, agent, size, "hangup",
                                       functools.partial(self.ari.hangup, pair.ids[2]))
            at += slot
            if pair is not None and await self.connected(q, pair):
                await _sleep_until(at)
            await self.reset(q, agent, pair)
            at = max(at, time.time()) + rng.uniform(0.1, 0.5)

    async def dispatch(self, q: QueueUnderTest, agent: Agent, size: int, mode: str,
                       action: Callable[[], Awaitable[Any]]) -> Pair | None:
        """Free the agent (action) and wait for their phone to ring; record the sample."""
        obs, phone = self.observer, agent.phone
        n = obs.count(phone)
        t_before = time.time()
        await action()
        t_after = time.time()

        def rang() -> bool:
            p = obs.pair(phone, n)
            return p is not None and p.ringing is not None and p.created is not None

        if not await obs.wait(rang, DISPATCH_TIMEOUT):
            key = (self.callers, q.key, size, mode)
            self.timeouts[key] = self.timeouts.get(key, 0) + 1
            return obs.pair(phone, n)
        pair = obs.pair(phone, n)
        assert pair is not None and pair.ringing is not None and pair.created is not None
        self.samples.append(Sample(q.key, size, mode, agent.login, t_before, t_after,
                                   pair.created, pair.ringing, callers=self.callers))
        return pair

    async def connected(self, q: QueueUnderTest, pair: Pair) -> bool:
        """Wait until the answered agent leg is bridged with its caller; then a new caller
        takes the served one's place, so the queue stays at its size."""
        ok = await self.observer.wait(lambda: pair.bridged is not None or pair.ended, 15)
        if not ok or pair.bridged is None:
            return False
        if self.callers == "local":
            # (SIPp replaces a SIP caller by itself: it keeps its -l callers up.)
            self._spawn(self.place(q, f"{q.key}-top"))
        return True

    async def reset(self, q: QueueUnderTest, agent: Agent, pair: Pair | None) -> None:
        """Back to paused with no call: ask for a pause, hang the phone up, wait."""
        await q.pend_pause(agent)
        if pair is not None and not pair.ended:
            await self.ari.hangup(pair.ids.get(2) or pair.ids.get(1, ""))
            await self.observer.wait(lambda: pair.ended, 10)
        await q.wait_paused(agent, 10)

    async def add_claim_times(self, taken: list[Sample], start: float, end: float) -> None:
        """The hotline's RINGING rows (written in the claim transaction, at its now())."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT a.login, extract(epoch FROM l.at) AS at FROM queue_log l
                   JOIN agents a ON a.id = l.agent_id
                   WHERE l.event = 'RINGING' AND l.at >= to_timestamp($1)
                     AND l.at <= to_timestamp($2) ORDER BY l.at""", start - 1, end + 1)
        by_login: dict[str, list[float]] = {}
        for r in rows:
            by_login.setdefault(r["login"], []).append(float(r["at"]))
        for s in taken:
            later = [t for t in by_login.get(s.login, []) if t >= s.t_before - 0.002]
            if later and later[0] <= s.ringing + 0.01:
                s.claim = later[0]

    async def cleanup(self) -> None:
        """Hang up every call of the bench and wait until both queues are empty."""
        log("hanging up every bench call")
        deadline = time.monotonic() + 180
        sem = asyncio.Semaphore(8)

        async def hang(cid: str) -> None:
            async with sem:
                await self.ari.hangup(cid)

        for calls in self.sipps:
            if calls.sipp.running:
                await calls.stop()
        while time.monotonic() < deadline:
            chans = [c["id"] for c in await self.ari.channels()
                     if c["id"].startswith("bench-")
                     or VIRTUAL_PHONE_CONTEXT in c.get("name", "")
                     or c.get("name", "").startswith(SIP_CALLER_PREFIX)]
            async with self.pool.acquire() as conn:
                live = await conn.fetchval("SELECT count(*) FROM calls WHERE state <> 'ended'")
            if not chans and not live and not await self.queues["app_queue"].waiting():
                break
            await asyncio.gather(*(hang(c) for c in chans))
            await asyncio.sleep(1)
        else:
            self.notes.append("cleanup: some calls were still up after 180 s")
        await asyncio.sleep(1)
        await self.pause_everyone()

    async def admission(self, q: QueueUnderTest) -> dict[str, Any]:
        rate, seconds = self.opts.rate, self.opts.seconds
        count = int(round(rate * seconds))
        log(f"{q.key}: admission test, {rate:g} new calls/s for {seconds:g} s ({count} calls, "
            f"each hanging up after {self.opts.adm_hold:g} s)")
        await self.pause_everyone()
        await self.hold_music(q, "admission test")
        before = await self.snapshot()
        placed, failed, sent = await self.originate_paced(q, f"{q.key}-adm", rate, count,
                                                         hold=f"{self.opts.adm_hold:g}")
        ids = [i for i, _ in placed]
        deadline = time.monotonic() + 30
        admitted = await q.admitted(ids)
        while len(admitted) < len(ids) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            admitted = await q.admitted(ids)
        after = await self.snapshot()
        latency = [(admitted[i] - t) * 1000 for i, t in placed if i in admitted]
        d = self.delta(before, after, f"{q.key} admission")
        result = {"offered": count, "rate": rate, "seconds": seconds, "send_seconds": sent,
                  "hold": self.opts.adm_hold,
                  "failed_originates": failed, "admitted": len(admitted),
                  "lost": count - len(admitted),
                  "admitted_per_s": _rate(admitted.values()),
                  "admission_ms": summary(latency), "waiting_at_end": await q.waiting(),
                  "memory": await self.memory(), **d}
        log(f"{q.key}: {len(admitted)} of {count} calls reached the queue "
            f"(p99 {result['admission_ms']['p99']:.0f} ms)")
        return result


    # -- SIP callers (SIPp on the demo trunk) ----------------------------------------------

    async def start_sipp(self, q: QueueUnderTest, tag: str, *, calls: int, rate: float,
                         hold: float, limit: int | None) -> CitizenCalls:
        log_dir = stack.VAR / "sipp" / f"{self._run}-{tag}"
        sipp = await sipload.start(stack.SIP_TARGET, q.sip_number, tag=self._run,
                                   calls=calls, rate=rate, hold=hold,
                                   max_concurrent=limit, log_dir=log_dir)
        self.sipps.append(sipp)
        if not sipp.sipp.running:
            raise RuntimeError("SIPp did not start:\n" + sipp.progress().describe())
        return sipp

    def sip_figures(self, sipp: CitizenCalls, since: float = 0.0,
                    until: float = float("inf")) -> dict[str, Any]:
        """SIPp's counters and its INVITEs' answers (those sent in [since, until))."""
        timings = sipload.invites(sipload.short_log(sipp))
        return {**sipload.result_figures(sipp.progress()),
                **sipload.answer_figures(timings.values(), since, until, now=time.time()),
                "log_dir": str(sipp.run_dir)}

    async def sip_admission(self, q: QueueUnderTest) -> dict[str, Any]:
        """`sip_rate` new SIP calls a second for `sip_seconds` from the trunk, nobody free,
        each caller hanging up `adm_hold` s after the answer."""
        rate, seconds, hold = self.opts.sip_rate, self.opts.sip_seconds, self.opts.adm_hold
        count = int(round(rate * seconds))
        log(f"{q.key}: SIP admission, {rate:g} calls/s for {seconds:g} s ({count} calls from "
            f"the demo trunk, each hanging up after {hold:g} s)")
        await self.pause_everyone()
        await self.hold_music(q, "SIP admission")
        t0 = time.time()
        sipp = await self.start_sipp(q, f"{q.key}-sip-adm", calls=count, rate=rate, hold=hold,
                                     limit=None)
        before = await self.snapshot()
        # Until every call is placed and every answered one is in the queue (or 30 s more).
        deadline = t0 + count / rate + 30
        while time.time() < deadline:
            await asyncio.sleep(1)
            got = sipp.progress()
            counts = await q.sip_calls(t0, float("inf"))
            answered = sum(1 for c in got.calls if c.answered_at is not None)
            if (got.created >= count or not sipp.sipp.running) and counts["reached"] >= answered:
                break
        after = await self.snapshot()
        counts = await q.sip_calls(t0, float("inf"))
        d = self.delta(before, after, f"{q.key} SIP admission")
        memory = await self.memory()
        await sipp.wait(timeout=hold + 45)
        figures = self.sip_figures(sipp)
        counts_end = await q.sip_calls(t0, float("inf"))
        result = {"offered": count, "rate": rate, "seconds": seconds, "hold": hold,
                  **figures, "queue": counts_end, "reached": counts["reached"],
                  "lost": count - counts["reached"], "memory": memory, **d}
        ms = figures["answer_ms"]
        log(f"{q.key}: {figures['answered']} of {count} SIP calls answered (p50 "
            f"{ms['p50']:.0f} ms, p99 {ms['p99']:.0f} ms, max {ms['max']:.0f} ms), "
            f"{counts['reached']} reached the queue, {figures['failed']} failed, "
            f"{figures['retransmissions']} retransmissions")
        return result

    async def sip_fill(self, q: QueueUnderTest, size: int,
                       t0: float) -> tuple[CitizenCalls, dict[str, Any]]:
        """SIPp keeping `size` callers up (its -l), at fill_rate calls a second, until size
        wait in the queue; a fill that falls behind (calls answered but not in the queue,
        calls failing) stops: the machine cannot hold size."""
        rate = self.opts.fill_rate
        # Enough calls to replace every caller served while dispatch is measured.
        budget = size + int(len(self.stack.agents) * self.opts.measure / self.opts.slot * 2) + 50
        log(f"{q.key}: filling the queue with {size} SIP callers ({rate:g}/s)")
        await self.pause_everyone()
        await self.hold_music(q, f"SIP fill {size}")
        sipp = await self.start_sipp(q, f"{q.key}-sip-{size}", calls=budget, rate=rate,
                                     hold=SIP_HOLD, limit=size)
        before = await self.snapshot()
        backlog = max(40, int(rate * self.opts.backlog_seconds))
        deadline = t0 + size / rate + 30
        why = ""
        while True:
            await asyncio.sleep(1)
            got = sipp.progress()
            counts = await q.sip_calls(t0, float("inf"))
            if counts["waiting"] >= size:
                break
            if got.failed:
                why = f"{got.failed} SIP calls failed"
            elif not sipp.sipp.running:
                why = f"SIPp ended (exit {got.exit_code})"
            elif got.created - counts["reached"] > backlog:
                why = (f"{got.created - counts['reached']} calls placed but not in the queue "
                       f"(more than {self.opts.backlog_seconds:g} s of calls)")
            elif time.time() > deadline:
                why = "not filled in time"
            if why:
                break
        after = await self.snapshot()
        counts = await q.sip_calls(t0, float("inf"))
        figures = self.sip_figures(sipp)
        d = self.delta(before, after, f"{q.key} SIP fill {size}")
        full = counts["waiting"] >= size and not why
        log(f"{q.key}: {counts['waiting']} SIP callers waiting after {d['phase_seconds']:.1f} s"
            + ("" if full else f" (of {size}: {why or 'short'}; stopped)"))
        if not full:
            self.notes.append(
                f"SIP: {q.key} could not be filled to {size:,} waiting: {why or 'short'}; "
                f"{figures['created']:,} calls placed, {counts['waiting']:,} in the queue "
                f"after {d['phase_seconds']:.0f} s (machine {d['busy'] * 100:.0f}% busy)")
        return sipp, {"calls": size, "full": full, "why": why, "offered_rate": rate,
                      "waiting": counts["waiting"], "queue": counts, **figures, **d,
                      "memory": await self.memory()}

    async def rtp_counts(self, ids: list[str]) -> dict[str, tuple[int, int]]:
        out = {}
        for cid in ids:
            st = await self.ari.rtp_statistics(cid)
            if st is not None:
                out[cid] = (int(st.get("txcount", 0)), int(st.get("rxcount", 0)))
        return out

    async def sip_hold(self, q: QueueUnderTest, size: int, sipp: CitizenCalls,
                       t0: float) -> dict[str, Any]:
        """The full queue of SIP callers, nobody free: what holding them costs, whether
        any is lost, and (Asterisk's RTP counters of a sample of them) that each hears
        music: packets sent to the caller, and the caller's audio received."""
        log(f"{q.key}: {size} SIP callers holding for {self.opts.hold:g} s")
        chans = [c["id"] for c in await self.ari.channels()
                 if c.get("name", "").startswith(SIP_CALLER_PREFIX)]
        sample = random.Random(size).sample(chans, min(RTP_SAMPLE, len(chans)))
        rtp_before = await self.rtp_counts(sample)
        sip_before = sipp.progress()
        plays = self.observer.announcements
        before = await self.snapshot()
        await asyncio.sleep(self.opts.hold)
        after = await self.snapshot()
        rtp_after = await self.rtp_counts(sample)
        sip_after = sipp.progress()
        seconds = after.at - before.at
        tx = [(rtp_after[c][0] - rtp_before[c][0]) / seconds for c in rtp_after
              if c in rtp_before]
        rx = [(rtp_after[c][1] - rtp_before[c][1]) / seconds for c in rtp_after
              if c in rtp_before]
        return {"waiting": (await q.sip_calls(t0, float("inf")))["waiting"],
                "rtp_sampled": len(tx), "tx_per_s": summary(tx), "rx_per_s": summary(rx),
                "silent": sum(1 for x in tx if x < 1),
                "announcements": self.observer.announcements - plays,
                "failed": sip_after.failed - sip_before.failed,
                "retransmissions": sip_after.retransmissions - sip_before.retransmissions,
                **self.delta(before, after, f"{q.key} SIP hold {size}")}

    async def sip_size(self, q: QueueUnderTest, size: int) -> dict[str, Any]:
        """Fill with SIP callers, hold, measure dispatch (SIPp replacing each caller
        served), then count what was lost, and hang everyone up."""
        t0 = time.time()
        sipp, fill = await self.sip_fill(q, size, t0)
        out: dict[str, Any] = {"fill": fill}
        try:
            if fill["full"]:
                out["hold"] = await self.sip_hold(q, size, sipp, t0)
                out["measure"] = await self.measure(q, size)
            counts = await q.sip_calls(t0, float("inf"))
            figures = self.sip_figures(sipp)
        finally:
            await sipp.stop()
        # Lost: left the queue without an agent, or never answered.
        lost = counts["ended_unserved"] + figures["never_answered"]
        out["end"] = {"queue": counts, **figures, "lost": lost,
                      "why_not": sip_not_held(out, lost, figures)}
        out["end"]["held"] = not out["end"]["why_not"]
        log(f"{q.key}: {size} SIP callers: "
            + ("held" if out["end"]["held"] else "NOT held: " + "; ".join(out["end"]["why_not"]))
            + f"; {lost} lost, {counts['served']} served")
        return out

    async def sip_run(self, results: dict[str, Any]) -> None:
        sip: dict[str, Any] = results.setdefault("sip", {})
        sip.setdefault("admission", {})
        sip.setdefault("sizes", {})
        self.callers = "sip"
        try:
            for key in ("hotline", "app_queue") if self.opts.sip_seconds > 0 else ():
                sip["admission"][key] = await self.sip_admission(self.queues[key])
                await self.cleanup()
                self.wrap_up()
            for idx, size in enumerate(self.opts.sip_sizes):
                why = self.fits(size, sip["sizes"])
                if why:
                    log(f"SIP, {size} waiting: {why}")
                    self.notes.append(f"SIP, {size:,} waiting: {why}")
                    sip["not_run"] = self.opts.sip_sizes[idx:]
                    break
                order = ["hotline", "app_queue"] if idx % 2 == 0 else ["app_queue", "hotline"]
                per: dict[str, Any] = {}
                sip["sizes"][str(size)] = per
                for key in order:
                    per[key] = await self.sip_size(self.queues[key], size)
                    await self.cleanup()
                    self.wrap_up()
                if not all(p["end"]["held"] for p in per.values()):
                    for key, p in per.items():
                        if p["end"]["why_not"]:
                            self.notes.append(f"SIP, {size:,} waiting, {key}: not held: "
                                              + "; ".join(p["end"]["why_not"]))
                    if self.opts.sip_sizes[idx + 1:]:
                        self.notes.append("SIP: larger sizes were not run")
                    sip["not_run"] = self.opts.sip_sizes[idx + 1:]
                    break
        finally:
            self.callers = "local"

    # -- the whole run --------------------------------------------------------------------

    def fits(self, size: int, by_size: dict[str, Any]) -> str | None:
        """None when the machine can be expected to hold size callers; else why not.

        What holding callers costs grows linearly with their number (measured in each
        size's hold phase). Past the machine's cores Asterisk stops keeping up and, as an
        attempt at 1,000 on a 2-core machine showed, does not come back even when the calls
        are hung up: so a size projected past the machine's cores is not run."""
        if self.opts.force:
            return None
        done = [int(k) for k, per in by_size.items()
                if per and all("hold" in p for p in per.values())]
        if not done:
            return None
        last = max(done)
        cores = os.cpu_count() or 1
        worst = 0.0
        for per in by_size[str(last)].values():
            hold = per["hold"]
            share = sum(v for k, v in hold["cpu"].items() if k != "harness" and v == v)
            worst = max(worst, share / hold["phase_seconds"] * size / last)
        if worst <= cores:
            return None
        return (f"not run: holding {size:,} callers is projected (linearly from what holding "
                f"{last:,} cost, hold table) to need {worst * 100:.0f}% of one core, more than "
                f"this machine's {cores} cores")

    async def run(self, results: dict[str, Any]) -> dict[str, Any]:
        """Every phase; results is filled in as they end (kept if the run is cut short)."""
        ivr_log = self.stack.runtime.log_dir / "ivr.log"
        log_start = ivr_log.stat().st_size if ivr_log.exists() else 0
        results.update(sizes={}, admission={}, notes=self.notes)
        results["load_before"] = procs.loadavg()
        results["other_asterisks"] = procs.other_asterisks(self.stack.asterisk_pid())

        def wrap_up() -> None:
            for target, callers in ((results, "local"), (results.get("sip"), "sip")):
                if target is None:
                    continue
                target["samples"] = [asdict(s) for s in self.samples if s.callers == callers]
                target["timeouts"] = [{"queue": k[1], "size": k[2], "mode": k[3], "count": v}
                                      for k, v in self.timeouts.items() if k[0] == callers]
            results["load_after"] = procs.loadavg()
            results["originate_failures"] = self.originate_failures
            results["ivr_log_errors"] = _log_errors(ivr_log, log_start)
            results["observer_events"] = self.observer.events
            results["music_restored"] = list(self.music_restored)
            results["hotline_playbacks"] = self.observer.playbacks
            results["hotline_announcements"] = self.observer.announcements

        self.wrap_up = wrap_up
        if self.opts.sip:
            results["sip"] = {"admission": {}, "sizes": {}}
        await self.pause_everyone()
        await self.cleanup()
        for idx, size in enumerate(self.opts.sizes if self.opts.local else []):
            why = self.fits(size, results["sizes"])
            if why:
                log(f"{size} waiting: {why}")
                self.notes.append(f"{size:,} waiting: {why}")
                results["not_run"] = self.opts.sizes[idx:]
                break
            order = ["hotline", "app_queue"] if idx % 2 == 0 else ["app_queue", "hotline"]
            per: dict[str, Any] = {}
            results["sizes"][str(size)] = per
            for key in order:
                q = self.queues[key]
                f = await self.fill(q, size)
                per[key] = {"fill": f}
                if f["full"]:
                    per[key]["hold"] = await self.hold(q, size)
                    per[key]["measure"] = await self.measure(q, size)
                await self.cleanup()
                wrap_up()
            if not all(p["fill"]["full"] for p in per.values()):
                results["not_run"] = self.opts.sizes[idx + 1:]
                break
        for key in ("hotline", "app_queue") if self.opts.seconds > 0 and self.opts.local else ():
            results["admission"][key] = await self.admission(self.queues[key])
            await self.cleanup()
            wrap_up()
        if self.opts.sip:
            results["sip"]["load_before"] = procs.loadavg()
            await self.sip_run(results)
            results["sip"]["load_after"] = procs.loadavg()
        results["other_asterisks_after"] = procs.other_asterisks(self.stack.asterisk_pid())
        return results


def sip_not_held(size_result: dict[str, Any], lost: int, figures: dict[str, Any]) -> list[str]:
    """Why a size of SIP callers was not held (empty: held): not filled, callers lost, SIPp
    calls failing or retransmitting (a response later than SIP's 500 ms), or the machine
    saturated while holding them."""
    why = []
    fill = size_result["fill"]
    if not fill["full"]:
        why.append(f"not filled ({fill['why'] or 'short'})")
    if lost:
        why.append(f"{lost} lost")
    if figures["failed"]:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(figures["failures"].items()))
        why.append(f"{figures['failed']} SIPp call(s) failed ({kinds or '?'})")
    if figures["retransmissions"]:
        why.append(f"{figures['retransmissions']} SIP retransmissions")
    busy = size_result.get("hold", {}).get("busy", 0.0)
    if busy >= SATURATED:
        why.append(f"machine saturated ({busy * 100:.0f}% busy holding them)")
    return why


async def _sleep_until(at: float) -> None:
    delay = at - time.time()
    if delay > 0:
        await asyncio.sleep(delay)


def _rate(times: Iterable[float]) -> float:
    """Events per second between the first and the last of them."""
    t = sorted(times)
    return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else float("nan")


def _log_errors(path: Path, start: int) -> list[str]:
    if not path.exists():
        return []
    with path.open("rb") as f:
        f.seek(start)
        text = f.read().decode(errors="replace")
    return [line for line in text.splitlines() if " ERROR " in line]


async def _versions(s: stack.Stack) -> dict[str, str]:
    out = {}
    auth = {"Authorization": basic_auth(s.ari_user, s.ari_password)}
    async with aiohttp.ClientSession(headers=auth) as h:
        async with h.get(f"{s.ari_url}/ari/asterisk/info") as r:
            out["asterisk"] = (await r.json()).get("system", {}).get("version", "?")
    conn = await asyncpg.connect(s.dsn)
    try:
        out["postgres"] = str(await conn.fetchval("SHOW server_version"))
        out["pg_fsync"] = str(await conn.fetchval("SHOW fsync"))
        out["pg_synchronous_commit"] = str(await conn.fetchval("SHOW synchronous_commit"))
    finally:
        await conn.close()
    return out


def code_state() -> dict[str, Any]:
    """The code under test: the commit, and the files changed in the working tree (which
    others may be editing while the bench runs: the stack imports them at its start)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=stack.ROOT, capture_output=True,
                                  text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            return ""
    # Porcelain lines: two status letters, a space, the path.
    changed = [line[3:] for line in git("status", "--porcelain").splitlines() if line[3:]]
    return {"head": git("rev-parse", "--short", "HEAD").strip(),
            "changed": [f for f in changed if not f.startswith(("bench/", "docs/", "tests/"))]}


def machine() -> dict[str, Any]:
    mem = next(line for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "?")
    return {"nproc": os.cpu_count(), "memory_gib": int(mem.split()[1]) / 1024 / 1024,
            "cpu": model, "kernel": platform.release(), "python": platform.python_version()}


def parse(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--waiting", default=DEFAULT_SIZES,
                   help=f"waiting-queue sizes, comma-separated (default {DEFAULT_SIZES})")
    p.add_argument("--agents", type=int, default=10, help="virtual agents/phones (default 10)")
    p.add_argument("--rate", type=float, default=20, help="admission test: new calls per second")
    p.add_argument("--seconds", type=float, default=60,
                   help="admission test: duration (s; 0: no admission test)")
    p.add_argument("--measure", type=float, default=25,
                   help="seconds of dispatch measurement per size and queue (default 25)")
    p.add_argument("--hold", type=float, default=10,
                   help="seconds the full queue is held with nobody free, to measure what "
                        "holding costs (default 10)")
    p.add_argument("--slot", type=float, default=2.0,
                   help="seconds between an agent's freeing actions (ready, hang-up): the same "
                        "calls per second for both queues (default 2)")
    p.add_argument("--adm-hold", type=float, default=10,
                   help="admission test: seconds each caller stays before hanging up (keeps "
                        "the queue bounded at about rate x this; default 10)")
    p.add_argument("--backlog", type=float, default=4,
                   help="a fill stops when more than this many seconds of calls are placed "
                        "but not in the queue: the machine cannot hold the size (default 4)")
    p.add_argument("--force", action="store_true",
                   help="run every size, even one projected not to fit the machine")
    p.add_argument("--fill-rate", type=float, default=20,
                   help="calls per second placed to fill the queue (default 20)")
    p.add_argument("--answer-after", type=float, default=0.3,
                   help="seconds a virtual phone rings before answering (default 0.3)")
    p.add_argument("--retry", type=int, default=1,
                   help="app_queue's retry (s between a head caller's tries; default 1, "
                        "its smallest)")
    p.add_argument("--out", default="docs/benchmarks.md", help="the report to write")
    p.add_argument("--quick", action="store_true",
                   help="a run of a couple of minutes: 50 waiting, 10 s of load, 15 s measured")
    p.add_argument("--pg-fast", action="store_true",
                   help="PostgreSQL without fsync (as the tests run it); default: durable")
    p.add_argument("--keep", action="store_true", help="leave the bench hotline running")
    p.add_argument("--max-minutes", type=float, default=25,
                   help="end the run after this long, keeping (and reporting) what was "
                        "measured (default 25)")
    p.add_argument("--report-only", metavar="RESULTS_JSON",
                   help="only render the report again from a results file")
    p.add_argument("--also", metavar="RESULTS_JSON", action="append", default=[],
                   help="add another run's dispatch figures to the report (e.g. one made "
                        "with --no-announcements)")
    p.add_argument("--no-announcements", action="store_true",
                   help="both queues without announcements to waiting callers")
    p.add_argument("--sip-waiting", default=DEFAULT_SIP_SIZES,
                   help="SIP callers (SIPp on the demo trunk): waiting-queue sizes to hold, "
                        f"comma-separated, stopping at the first one not held (default "
                        f"{DEFAULT_SIP_SIZES}; empty: none)")
    p.add_argument("--sip-rate", type=float, default=None,
                   help="SIP admission: new calls per second (default: --rate)")
    p.add_argument("--sip-seconds", type=float, default=None,
                   help="SIP admission: duration (s; 0: none; default: --seconds)")
    callers = p.add_mutually_exclusive_group()
    callers.add_argument("--sip-only", action="store_true",
                         help="only the SIP callers' phases (no Local-channel callers)")
    callers.add_argument("--no-sip", action="store_true",
                         help="only the Local-channel callers' phases (no SIPp)")
    a = p.parse_args(argv)
    if a.report_only:
        results = json.loads(Path(a.report_only).read_text())
        also = [json.loads(Path(x).read_text()) for x in a.also]
        Path(a.out).write_text(report.render(results, also), encoding="utf-8")
        print(f"wrote {a.out}")
        sys.exit(0)
    sip_sizes = [int(x) for x in a.sip_waiting.split(",") if x.strip()]
    if a.quick:
        sizes = [50] if a.waiting == DEFAULT_SIZES else [int(x) for x in a.waiting.split(",")]
        sip_sizes = [50] if a.sip_waiting == DEFAULT_SIP_SIZES else sip_sizes
        seconds = 10 if a.seconds == 60 else a.seconds
        measure = 15 if a.measure == 25 else a.measure
        hold = 5 if a.hold == 10 else a.hold
    else:
        sizes = [int(x) for x in a.waiting.split(",") if x.strip()]
        seconds, measure, hold = a.seconds, a.measure, a.hold
    sip_seconds = seconds if a.sip_seconds is None else a.sip_seconds
    argv_text = " ".join(shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:]))
    return Options(sizes=sizes, agents=a.agents, rate=a.rate, seconds=seconds, measure=measure,
                   hold=hold, slot=a.slot, adm_hold=a.adm_hold, backlog_seconds=a.backlog,
                   fill_rate=a.fill_rate, answer_after=a.answer_after, retry=a.retry,
                   out=Path(a.out), pg_fast=a.pg_fast, quick=a.quick, keep=a.keep, force=a.force,
                   announcements=not a.no_announcements, also=[Path(x) for x in a.also],
                   command=f"python -m bench.run {argv_text}".strip(),
                   max_minutes=a.max_minutes,
                   local=not a.sip_only, sip=not a.no_sip, sip_sizes=sip_sizes,
                   sip_rate=a.rate if a.sip_rate is None else a.sip_rate,
                   sip_seconds=sip_seconds)


async def _main(opts: Options, s: stack.Stack, results: dict[str, Any]) -> None:
    h = Harness(opts, s)
    await h.open()
    try:
        await h.run(results)
    finally:
        h.wrap_up()
        await h.close()


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    agents = stack.bench_agents(opts.agents)
    started = datetime.now(UTC)
    code = code_state()
    results: dict[str, Any] = {}
    versions: dict[str, str] = {}
    # A SIGTERM (timeout, Ctrl-C elsewhere) ends the run but keeps what was measured.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    # ... and so does the run's time bound.
    def out_of_time(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"the run's time bound (--max-minutes {opts.max_minutes:g}) "
                                "was reached")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(max(1, int(opts.max_minutes * 60)))
    s = stack.start(agents, opts.answer_after, opts.pg_fast, log, opts.announcements)
    status = 0
    try:
        s.add_appqueue(opts.retry)
        log("app_queue's queue and number loaded into the same Asterisk")
        versions = asyncio.run(_versions(s))
        asyncio.run(_main(opts, s, results))
    except (KeyboardInterrupt, Exception) as e:
        log(f"the run was cut short: {e!r}; writing what was measured")
        results.setdefault("notes", []).append(f"the run was cut short ({e!r}); the phases "
                                               "after it were not run")
        status = 1
    finally:
        signal.alarm(0)
        if not opts.keep:
            log("stopping the bench hotline")
            s.stop()
    results.update(
        started=started.isoformat(timespec="seconds"),
        finished=datetime.now(UTC).isoformat(timespec="seconds"),
        command=opts.command, machine=machine(), versions=versions, code=code,
        settings={"sizes": opts.sizes, "agents": opts.agents, "rate": opts.rate,
                  "seconds": opts.seconds, "measure": opts.measure, "hold": opts.hold,
                  "slot": opts.slot, "adm_hold": opts.adm_hold,
                  "backlog": opts.backlog_seconds,
                  "fill_rate": opts.fill_rate, "answer_after": opts.answer_after,
                  "retry": opts.retry, "pg_fast": opts.pg_fast, "quick": opts.quick,
                  "announcements": opts.announcements, "local": opts.local, "sip": opts.sip,
                  "sip_sizes": opts.sip_sizes, "sip_rate": opts.sip_rate,
                  "sip_seconds": opts.sip_seconds, "sip_target": stack.SIP_TARGET,
                  "sip_trunk_ip": sipload.TRUNK_IP, "rtp_ports": stack.RTP_PORTS},
    )
    name = "results" + ("-quick" if opts.quick else "") + (
        "-sip-only" if not opts.local else "") + (
        "" if opts.announcements else "-no-announcements")
    out_json = stack.VAR / f"{name}.json"
    results["results_file"] = str(out_json.relative_to(stack.ROOT))
    out_json.write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    also = [json.loads(p.read_text()) for p in opts.also]
    opts.out.write_text(report.render(results, also), encoding="utf-8")
    log(f"wrote {opts.out} (figures in {out_json})")
    return status


if __name__ == "__main__":
    sys.exit(main())
