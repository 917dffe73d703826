"""SIPp as the carrier: citizens' calls into the hotline, and the far end of its calls out.

Real SIP over UDP from a loopback address (127.0.0.2 is the demo carrier the shipped
configuration trusts), real RTP: A-law audio and RFC 4733 DTMF played from the pcap files
Debian's sip-tester installs. The scenarios are in tests/sipp/ (their headers say what each
does and logs).

    calls = await citizen_call("127.0.0.1:15060", "12345", digits="2", digits_after=3,
                               hold=40, log_dir=tmp_path)
    result = (await calls.wait()).check()      # raises with SIPp's logs if a call failed

    far = await far_end("127.0.0.2", 15070, log_dir=tmp_path)
    ... the hotline calls out ...
    [seen] = await far.wait_for_calls(1)        # seen.dialled, seen.caller_id, seen.pai
    await far.stop()

Every SIPp runs in the foreground as a child of this process, with a bounded number of
calls (-m) and a global timeout (-timeout, -timeout_error) so it ends on its own; stop()
ends it early (SIGUSR1 twice: no new calls, then abort the open ones with a BYE or CANCEL;
then SIGTERM, then SIGKILL), and an atexit hook kills any a test forgot. Its logs go to a
folder of its own under the log_dir the caller gives (SippResult.describe() points there).

SIPp plays pcap RTP through a raw socket: it must run as root (as the tests and CI do).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import itertools
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from hotline import sipcall
from hotline.sipcall import CallSpec, Pcaps, ms

SCENARIOS = Path(__file__).resolve().parent / "sipp"
UAC_CITIZEN = sipcall.SCENARIO  # shared with `hotline call`
UAC_REFUSED = SCENARIOS / "uac_refused.xml"
UAS_FAR_END = SCENARIOS / "uas_far_end.xml"
PHONE_REGISTER = SCENARIOS / "phone_register.xml"

# Codes uas_far_end.xml can refuse a call with (SIPp wants literal status codes).
REJECT_CODES = (403, 404, 480, 486, 503, 603)

# SIP and RTP ports of our SIPps: below Linux's ephemeral ports (32768+) and apart from the
# hotline's RTP (rtp_ports, 20000-20999 by default) and SIP (5060, 15060 + n*100).
PORT_RANGE = (24000, 31998)

# SIPp's exit codes.
EXIT_OK = 0
EXIT_CALLS_FAILED = 1
EXIT_INTERNAL = 97
EXIT_NO_CALLS = 99
EXIT_FATAL = 255
EXIT_BIND = 254


class SippError(RuntimeError):
    """SIPp is missing, could not start, or was given something it cannot do."""


def find_pcaps() -> Pcaps:
    """sip-tester's pcaps (hotline/sipcall.py), with its complaint as a SippError."""
    try:
        return sipcall.find_pcaps()
    except sipcall.SipCallError as e:
        raise SippError(str(e)) from None


# ------------------------------------------------------------------ what is installed


@functools.cache
def sipp_binary() -> str:
    found = shutil.which("sipp")
    if not found:
        raise SippError("SIPp is not installed: apt-get install sip-tester (binary 'sipp')")
    return found


# ------------------------------------------------------------------ ports

_handed_out: dict[tuple[str, int], float] = {}


def _udp_free(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((ip, port))
        except OSError:
            return False
    return True


def _udp_bound(ip: str, port: int) -> bool:
    """Whether some socket is bound to ip:port (or the wildcard) -- read from
    /proc/net/udp, so that looking does not take the port from SIPp."""
    ours = f"{socket.inet_aton(ip)[::-1].hex().upper()}:{port:04X}"
    anywhere = f"00000000:{port:04X}"
    try:
        table = Path("/proc/net/udp").read_text(encoding="ascii").splitlines()[1:]
    except OSError:
        return not _udp_free(ip, port)
    return any(line.split()[1] in (ours, anywhere) for line in table if line.strip())


def free_port(ip: str, *, pair: bool = False) -> int:
    """An even UDP port free on ip (and port+2 too, for SIPp's audio+video RTP sockets),
    not handed out in the last minute: SIPps started together do not collide."""
    now = time.monotonic()
    for key in [k for k, t in _handed_out.items() if now - t > 60]:
        del _handed_out[key]
    lo, hi = PORT_RANGE
    for _ in range(500):
        port = random.randrange(lo, hi, 2)
        wanted = [port, port + 2] if pair else [port]
        if any((ip, p) in _handed_out for p in wanted):
            continue
        if all(_udp_free(ip, p) for p in wanted):
            for p in wanted:
                _handed_out[(ip, p)] = now
            return port
    raise SippError(f"no free UDP port on {ip} in {lo}-{hi}")


# ------------------------------------------------------------------ one SIPp process

_live: dict[int, asyncio.subprocess.Process] = {}


@atexit.register
def _kill_leftovers() -> None:
    for pid, proc in list(_live.items()):
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


_run_numbers = itertools.count(1)


class Sipp:
    """One SIPp process in the foreground, its logs in run_dir.

    SIP on local_ip:sip_port (-i, -p, -bind_local) and RTP on local_ip:media_port (-mi, -mp;
    SIPp also binds media_port+2 for video)."""

    def __init__(self, *, name: str, scenario: Path, local_ip: str, sip_port: int,
                 media_port: int, args: Sequence[str], run_dir: Path,
                 remote: str | None = None, trace_messages: bool = True) -> None:
        self.name = name
        self.scenario = scenario
        self.local_ip = local_ip
        self.sip_port = sip_port
        self.media_port = media_port
        self.args = list(args)
        self.remote = remote
        self.trace_messages = trace_messages
        self.run_dir = run_dir
        self.proc: asyncio.subprocess.Process | None = None
        self.timed_out = False
        self.started_at = 0.0
        run_dir.mkdir(parents=True, exist_ok=True)

    # Files SIPp writes.
    @property
    def stats_file(self) -> Path:
        return self.run_dir / "stats.csv"

    @property
    def screens_file(self) -> Path:
        return self.run_dir / "screens.log"

    @property
    def short_file(self) -> Path:
        return self.run_dir / "short.log"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "calls.log"

    @property
    def error_file(self) -> Path:
        return self.run_dir / "errors.log"

    @property
    def messages_file(self) -> Path:
        return self.run_dir / "messages.log"

    @property
    def stderr_file(self) -> Path:
        return self.run_dir / "sipp.stderr"

    def argv(self) -> list[str]:
        argv = [sipp_binary()]
        if self.remote:
            argv.append(self.remote)
        argv += ["-sf", str(self.scenario),
                 "-t", "u1", "-i", self.local_ip, "-p", str(self.sip_port), "-bind_local",
                 "-mi", self.local_ip, "-mp", str(self.media_port), "-ci", self.local_ip,
                 "-nostdin",
                 "-trace_stat", "-stf", str(self.stats_file), "-fd", "1",
                 "-trace_screen", "-screen_file", str(self.screens_file),
                 "-trace_shortmsg", "-shortmessage_file", str(self.short_file),
                 "-trace_logs", "-log_file", str(self.log_file),
                 "-trace_err", "-error_file", str(self.error_file),
                 "-trace_calldebug", "-calldebug_file", str(self.run_dir / "calldebug.log")]
        if self.trace_messages:
            argv += ["-trace_msg", "-message_file", str(self.messages_file)]
        return argv + self.args

    def _output_files(self) -> tuple[BinaryIO, BinaryIO]:
        # SIPp's screen (curses, to a file) and its messages on standard error.
        return (open(self.run_dir / "sipp.stdout", "wb"),
                open(self.stderr_file, "wb"))

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.returncode

    async def start(self) -> None:
        """Start SIPp and wait until its SIP socket is bound (or it has failed)."""
        argv = self.argv()
        (self.run_dir / "command").write_text(" ".join(argv) + "\n", encoding="utf-8")
        env = {**os.environ, "TERM": "dumb"}
        out, err = self._output_files()
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *argv, cwd=self.run_dir, env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=out, stderr=err)
        finally:
            out.close()
            err.close()
        _live[self.proc.pid] = self.proc
        self.started_at = time.time()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                return
            if _udp_bound(self.local_ip, self.sip_port):
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 0.05)
        await self.stop()
        raise SippError(f"{self.name}: SIPp did not bind {self.local_ip}:{self.sip_port} "
                        f"within 10 s; see {self.run_dir}")

    def bind_failed(self) -> bool:
        if self.returncode not in (EXIT_BIND, EXIT_FATAL):
            return False
        text = _read(self.stderr_file) + _read(self.error_file)
        return "bind" in text.lower()

    async def wait(self, timeout: float | None) -> int:
        """Until SIPp exits; past timeout, stop it (and mark the run timed out)."""
        assert self.proc is not None
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.timed_out = True
            await self.stop()
        assert self.proc.returncode is not None
        return self.proc.returncode

    async def stop(self, grace: float = 3.0) -> None:
        """End SIPp: no new calls (SIGUSR1), then abort the open ones, which sends their
        BYE or CANCEL (SIGUSR1 again), then exit with the logs written (SIGTERM: SIPp 3.6
        forgets to count calls aborted so, and would wait for them for ever), then kill."""
        proc = self.proc
        if proc is None:
            return
        try:
            for sig, wait in ((signal.SIGUSR1, 0.2), (signal.SIGUSR1, 0.3),
                              (signal.SIGTERM, grace)):
                if proc.returncode is not None:
                    break
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), wait)
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            _live.pop(proc.pid, None)

    def kill(self) -> None:
        """For finalizers that cannot await: SIGKILL at once."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def dump_screens(self) -> None:
        """Have SIPp write its screens (with the RTP counters) to screens.log (SIGUSR2)."""
        if not self.running:
            return
        assert self.proc is not None
        before = _size(self.screens_file)
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGUSR2)
        for _ in range(40):
            await asyncio.sleep(0.025)
            if _size(self.screens_file) != before or not self.running:
                break

    def result(self) -> SippResult:
        return _parse_result(self)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


async def _start_with_fresh_ports(make: Callable[[], Sipp], attempts: int = 3) -> Sipp:
    """Start make()'s SIPp; again with a new make() (new ports) when a bind lost a race."""
    for attempt in range(attempts):
        sipp = make()
        await sipp.start()
        if sipp.running or not sipp.bind_failed() or attempt == attempts - 1:
            return sipp
    raise AssertionError("unreachable")


# ------------------------------------------------------------------ results


@dataclass
class CallRecord:
    """One call of a SIPp run, from its -trace_shortmsg and log lines."""

    call_id: str
    codes: list[int] = field(default_factory=list)  # responses to the INVITE, in order
    answered_at: float | None = None  # seconds since the epoch
    ended_at: float | None = None
    ended_by: str | None = None  # "local" (SIPp hung up) or "remote"
    digits: list[tuple[float, str]] = field(default_factory=list)  # (time sent, key)
    events: list[tuple[float, str]] = field(default_factory=list)  # every log line's kind
    session_expires: str | None = None  # the answer's Session-Expires (uac_reinvite.xml)
    accepted: list[str] = field(default_factory=list)  # own requests answered 200, in order

    @property
    def final_code(self) -> int | None:
        finals = [c for c in self.codes if c >= 200]
        return finals[0] if finals else None

    @property
    def reinvites(self) -> int:
        return sum(1 for _, kind in self.events if kind == "REINVITE")

    @property
    def updates(self) -> int:
        return sum(1 for _, kind in self.events if kind == "UPDATE")


@dataclass
class SippResult:
    name: str
    run_dir: Path
    exit_code: int | None
    timed_out: bool  # SIPp's -timeout, or the wait's, ended it
    created: int = 0
    successful: int = 0
    failed: int = 0
    retransmissions: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # SIPp's non-zero Failed* counts
    calls: list[CallRecord] = field(default_factory=list)
    rtp_packets_sent: int | None = None  # pcap RTP sent (None: SIPp did not report it)
    rtp_packets_echoed: int | None = None  # RTP received and echoed back (-rtp_echo)
    errors: str = ""

    @property
    def ok(self) -> bool:
        return (self.exit_code == EXIT_OK and self.failed == 0 and not self.timed_out
                and self.successful == self.created)

    @property
    def final_codes(self) -> Counter[int]:
        """How many calls got each final response to their INVITE (sent or received)."""
        return Counter(c.final_code for c in self.calls if c.final_code is not None)

    @property
    def call_ids(self) -> list[str]:
        return [c.call_id for c in self.calls]

    def describe(self) -> str:
        lines = [f"SIPp {self.name}: exit {self.exit_code}"
                 f"{' (timed out)' if self.timed_out else ''}; calls created {self.created}, "
                 f"successful {self.successful}, failed {self.failed}, "
                 f"retransmissions {self.retransmissions}; final codes "
                 f"{dict(self.final_codes)}; RTP sent {self.rtp_packets_sent}"]
        if self.failures:
            lines.append(f"failures: {self.failures}")
        if self.errors.strip():
            lines.append("errors (tail):\n" + self.errors[-3000:])
        lines.append(f"logs: {self.run_dir}")
        return "\n".join(lines)

    def check(self) -> SippResult:
        """Self, if every call went through; else AssertionError with what SIPp saw."""
        if not self.ok:
            raise AssertionError(self.describe())
        return self


def _parse_stats(path: Path) -> dict[str, str]:
    rows = [line for line in _read(path).splitlines() if line.strip()]
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0].split(";"), rows[-1].split(";"), strict=False))


def _int(stats: dict[str, str], key: str) -> int:
    try:
        return int(stats.get(key, "0") or 0)
    except ValueError:
        return 0


def _epoch(stamp: str) -> float:
    """SIPp's [timestamp] is 'date<TAB>time<TAB>epoch'."""
    try:
        return float(stamp.split("\t")[-1])
    except ValueError:
        return 0.0


def _log_lines(path: Path) -> list[list[str]]:
    return [line.split("|") for line in _read(path).splitlines() if "|" in line]


def _max_count(text: str, pattern: str) -> int | None:
    counts = [int(m) for m in re.findall(pattern, text)]
    return max(counts) if counts else None


# What SIPp always says on standard error (loading the pcaps, resolving the target).
_STDERR_NOISE = re.compile(r"(In pcap |max pkt length |base port |Resolving remote host )")


def _parse_result(sipp: Sipp) -> SippResult:
    stats = _parse_stats(sipp.stats_file)
    calls: dict[str, CallRecord] = {}

    def record(call_id: str) -> CallRecord:
        return calls.setdefault(call_id, CallRecord(call_id))

    for line in _read(sipp.short_file).splitlines():
        parts = line.split("\t")
        # date, time, epoch, S|R, call-id, "CSeq:n METHOD", first line
        if len(parts) < 7:
            continue
        call = record(parts[4])
        first = parts[6]
        if parts[5].endswith(" INVITE") and first.startswith("SIP/2.0 "):
            code = int(first.split()[1])
            # Retransmissions repeat a response; keep each code once, in order.
            if code not in call.codes:
                call.codes.append(code)
    for fields in _log_lines(sipp.log_file):
        if len(fields) < 3:
            continue
        kind, when, call_id = fields[0], _epoch(fields[1]), fields[2]
        call = record(call_id)
        call.events.append((when, kind))
        if kind == "ANSWERED":
            call.answered_at = when
            if len(fields) > 3:
                call.session_expires = fields[3].strip()
        elif kind == "ACCEPTED" and len(fields) > 3:
            call.accepted.append(fields[3])
        elif kind == "END":
            call.ended_at = when
            call.ended_by = fields[3] if len(fields) > 3 else None
        elif kind == "DTMF" and len(fields) > 3:
            call.digits.append((when, fields[3]))
    screens = _read(sipp.screens_file)
    failures = {k[len("Failed"):-3]: _int(stats, k) for k in stats
                if k.startswith("Failed") and k.endswith("(C)") and k != "FailedCall(C)"
                and _int(stats, k)}
    errors = _read(sipp.error_file)
    stderr = "\n".join(line for line in _read(sipp.stderr_file).splitlines()
                       if line.strip() and not _STDERR_NOISE.match(line))
    if stderr:
        errors += "\n[stderr]\n" + stderr
    created = _int(stats, "TotalCallCreated")
    return SippResult(
        name=sipp.name, run_dir=sipp.run_dir, exit_code=sipp.returncode,
        timed_out=sipp.timed_out or "timed out after" in errors,
        created=created, successful=_int(stats, "SuccessfulCall(C)"),
        failed=_int(stats, "FailedCall(C)"), retransmissions=_int(stats, "Retransmissions(C)"),
        failures=failures, calls=list(calls.values()),
        rtp_packets_sent=_max_count(screens, r"(\d+) Total RTP pckts sent"),
        rtp_packets_echoed=_max_count(screens, r"(\d+) Total echo RTP pckts 1st stream"),
        errors=errors)


# ------------------------------------------------------------------ citizens' calls


class CitizenCalls:
    """Citizens' calls from one SIPp process (started, running in the background)."""

    def __init__(self, sipp: Sipp, *, bound: float, stats_every: float) -> None:
        self.sipp = sipp
        self.bound = bound  # seconds SIPp is allowed in all (its -timeout)
        self._stats_task = asyncio.create_task(self._dump_stats(stats_every))

    @property
    def run_dir(self) -> Path:
        return self.sipp.run_dir

    async def _dump_stats(self, every: float) -> None:
        # SIPp shows its RTP counters only on its screens: dump them now and then.
        while self.sipp.running:
            await asyncio.sleep(every)
            await self.sipp.dump_screens()

    async def wait(self, timeout: float | None = None) -> SippResult:
        """Until SIPp has placed and ended every call (past timeout -- default the run's
        bound plus 10 s -- it is stopped and the result says timed_out)."""
        try:
            await self.sipp.wait(self.bound + 10 if timeout is None else timeout)
        finally:
            await self._finish()
        return self.sipp.result()

    async def stop(self) -> SippResult:
        """End now: no new calls, open ones hung up (BYE/CANCEL)."""
        try:
            await self.sipp.dump_screens()
            await self.sipp.stop()
        finally:
            await self._finish()
        return self.sipp.result()

    async def _finish(self) -> None:
        self._stats_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._stats_task

    def progress(self) -> SippResult:
        """What the logs say so far (the run may still be going)."""
        return self.sipp.result()

    async def answered(self, count: int = 1, timeout: float = 15.0) -> list[CallRecord]:
        """Wait until count calls have been answered; their records."""
        deadline = time.monotonic() + timeout
        while True:
            done = [c for c in self.progress().calls if c.answered_at is not None]
            if len(done) >= count:
                return done
            if time.monotonic() > deadline or not self.sipp.running:
                raise AssertionError(f"{len(done)} of {count} calls answered\n"
                                     + self.progress().describe())
            await asyncio.sleep(0.1)

    async def __aenter__(self) -> CitizenCalls:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.sipp.running:
            await self.stop()
        else:
            await self._finish()


async def citizen_calls(
    target: str,
    specs: Sequence[CallSpec],
    *,
    local_ip: str = "127.0.0.2",
    local_port: int = 0,
    calls: int | None = None,
    rate: float = 1.0,
    max_concurrent: int | None = None,
    refused: bool = False,
    answer_timeout: float = 30.0,
    log_dir: Path | None = None,
    trace_messages: bool | None = None,
    stats_every: float = 1.0,
) -> CitizenCalls:
    """Start SIPp placing calls to target ("127.0.0.1:15060") from local_ip, the i-th call
    as specs[i % len(specs)]: `calls` of them (default len(specs)) at `rate` per second,
    at most `max_concurrent` at once.

    refused: the calls are expected to get a 4xx-6xx final response (uac_refused.xml; a
    call answered 200 fails). answer_timeout: how long a call may wait for its final
    response (SIPp's -recv_timeout, which also bounds every other wait for a message).
    """
    if not specs:
        raise ValueError("no calls to place")
    total = len(specs) if calls is None else calls
    if total < 1 or rate <= 0:
        raise ValueError("calls and rate must be positive")
    pcaps = find_pcaps()
    base = Path(tempfile.mkdtemp(prefix="sipp-")) if log_dir is None else log_dir
    run_dir = base / f"citizens-{next(_run_numbers):03d}"
    run_dir.mkdir(parents=True, exist_ok=True)
    csv_path = run_dir / "calls.csv"
    csv_path.write_text("SEQUENTIAL\n" + "".join(s.csv_line(local_ip) + "\n" for s in specs),
                        encoding="utf-8")
    longest = max(s.hold if not refused else 0.0 for s in specs)
    digits_time = max(s.digits_after + len(s.digits) * (1.2 + s.digit_gap) for s in specs)
    bound = (total - 1) / rate + answer_timeout + max(longest, digits_time) + 15
    scenario = UAC_REFUSED if refused else UAC_CITIZEN
    # SIPp places its first call 1/rate seconds after it starts: one call goes at once.
    args = ["-inf", str(csv_path), "-m", str(total), "-r", f"{rate if total > 1 else 100:g}",
            "-rp", "1000",
            "-l", str(max_concurrent or total),
            "-recv_timeout", str(round(answer_timeout * 1000)),
            "-timeout", f"{int(bound) + 1}s", "-timeout_error", *pcaps.keys()]
    if trace_messages is None:
        trace_messages = total <= 20

    def make() -> Sipp:
        return Sipp(name=f"citizens {run_dir.name} -> {target}", scenario=scenario,
                    local_ip=local_ip, sip_port=local_port or free_port(local_ip),
                    media_port=free_port(local_ip, pair=True), args=args, run_dir=run_dir,
                    remote=target, trace_messages=trace_messages)

    sipp = await _start_with_fresh_ports(make, attempts=1 if local_port else 3)
    return CitizenCalls(sipp, bound=bound, stats_every=stats_every)


async def citizen_call(
    target: str,
    number: str,
    *,
    caller: str = "13800138000",
    caller_name: str | None = None,
    pai: str | None = None,
    rpid: str | None = None,
    privacy: bool = False,
    anonymous: bool = False,
    digits: str = "",
    digits_after: float = 2.0,
    digit_gap: float = 0.3,
    hold: float = 30.0,
    local_ip: str = "127.0.0.2",
    local_port: int = 0,
    calls: int = 1,
    rate: float = 1.0,
    max_concurrent: int | None = None,
    refused: bool = False,
    answer_timeout: float = 30.0,
    log_dir: Path | None = None,
    trace_messages: bool | None = None,
) -> CitizenCalls:
    """A citizen calling `number` at target, as the carrier at local_ip delivers it; calls > 1
    places that many alike (rate per second, at most max_concurrent at once). See CallSpec
    for the rest; citizen_calls() takes a different spec per call."""
    spec = CallSpec(number=number, caller=caller, caller_name=caller_name, pai=pai, rpid=rpid,
                    privacy=privacy, anonymous=anonymous, digits=digits,
                    digits_after=digits_after, digit_gap=digit_gap, hold=hold)
    return await citizen_calls(target, [spec], local_ip=local_ip, local_port=local_port,
                               calls=calls, rate=rate, max_concurrent=max_concurrent,
                               refused=refused, answer_timeout=answer_timeout,
                               log_dir=log_dir, trace_messages=trace_messages)


# ------------------------------------------------------------------ the far end


@dataclass
class FarEndCall:
    """A call the far end received: what the hotline sent, and how it went."""

    call_id: str
    ruri: str = ""
    from_header: str = ""
    to_header: str = ""
    pai_header: str = ""
    privacy: str = ""
    rpid_header: str = ""
    received_at: float = 0.0
    answered_at: float | None = None
    outcome: str = "ringing"  # ringing, answered, rejected, cancelled, ended
    ended_by: str | None = None  # "local" (the far end hung up) or "remote" (the hotline)
    reinvites: int = 0

    @property
    def dialled(self) -> str:
        """The number dialled: the Request-URI's user."""
        return _user(self.ruri)

    @property
    def caller_id(self) -> str:
        """The caller ID presented in From."""
        return _user(self.from_header)

    @property
    def pai(self) -> str | None:
        """The P-Asserted-Identity's user (number), None without the header."""
        return _user(self.pai_header) if self.pai_header else None

    def as_dict(self) -> dict[str, str | None]:
        return {"dialled": self.dialled, "caller_id": self.caller_id, "pai": self.pai,
                "privacy": self.privacy or None, "outcome": self.outcome}


def _user(uri: str) -> str:
    match = re.search(r"(?:sips?|tel):([^@;>\s]*)", uri)
    return match.group(1) if match else ""


class FarEnd:
    """The carrier's far end for calls out: a SIPp UAS on listen_ip:port."""

    def __init__(self, sipp: Sipp) -> None:
        self.sipp = sipp

    @property
    def listen_ip(self) -> str:
        return self.sipp.local_ip

    @property
    def port(self) -> int:
        return self.sipp.sip_port

    @property
    def address(self) -> str:
        return f"{self.listen_ip}:{self.port}"

    @property
    def run_dir(self) -> Path:
        return self.sipp.run_dir

    def calls(self) -> list[FarEndCall]:
        """Every call received so far, in arrival order (only INVITEs: a BYE retransmitted
        for a call an earlier far end had is not a call)."""
        seen: dict[str, FarEndCall] = {}
        for fields in _log_lines(self.sipp.log_file):
            if len(fields) < 3 or fields[0] == "REG":
                continue
            kind, when, call_id = fields[0], _epoch(fields[1]), fields[2]
            call = seen.setdefault(call_id, FarEndCall(call_id, received_at=when))
            if kind == "SEEN" and len(fields) >= 5:
                value = "|".join(fields[4:]).strip()
                attr = {"ruri": "ruri", "from": "from_header", "to": "to_header",
                        "pai": "pai_header", "privacy": "privacy",
                        "rpid": "rpid_header"}.get(fields[3])
                if attr:
                    setattr(call, attr, value)
            elif kind == "ANSWERED":
                call.answered_at, call.outcome = when, "answered"
            elif kind == "REJECTED":
                call.outcome = "rejected"
            elif kind == "CANCELLED":
                call.outcome = "cancelled"
            elif kind == "REINVITE":
                call.reinvites += 1
            elif kind == "END":
                call.outcome = "ended"
                call.ended_by = fields[3] if len(fields) > 3 else None
        return [c for c in seen.values() if c.ruri]

    async def wait_for_calls(self, count: int = 1, timeout: float = 30.0,
                             outcome: str | None = None) -> list[FarEndCall]:
        """Wait until count calls have arrived (with that outcome, if given)."""
        deadline = time.monotonic() + timeout
        while True:
            got = [c for c in self.calls() if outcome is None or c.outcome == outcome]
            if len(got) >= count:
                return got
            if time.monotonic() > deadline or not self.sipp.running:
                raise AssertionError(f"far end {self.address}: {len(got)} of {count} calls"
                                     f"{f' {outcome}' if outcome else ''}: "
                                     f"{[c.as_dict() for c in self.calls()]}\n"
                                     + self.sipp.result().describe())
            await asyncio.sleep(0.1)

    async def rtp_echoed(self) -> int | None:
        """RTP packets received (and echoed back) so far, if started with rtp_echo."""
        await self.sipp.dump_screens()
        return self.sipp.result().rtp_packets_echoed

    async def stop(self) -> SippResult:
        await self.sipp.dump_screens()
        await self.sipp.stop()
        return self.sipp.result()

    async def __aenter__(self) -> FarEnd:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.sipp.stop()


async def far_end(
    listen_ip: str,
    port: int,
    *,
    answer_after: float | None = 1.0,
    hold: float = 60.0,
    reject: int | None = None,
    ring: bool = True,
    max_calls: int = 100,
    lifetime: float = 900.0,
    rtp_echo: bool = False,
    log_dir: Path | None = None,
    trace_messages: bool = True,
) -> FarEnd:
    """A far end on listen_ip:port: rings (180) answer_after seconds (None: until cancelled),
    then answers with PCMA and plays A-law audio, hanging up after hold seconds unless the
    hotline does first; or, with reject, refuses with that code (one of REJECT_CODES).
    ring=False: no 180 first, the answer or refusal comes after answer_after seconds of
    silence (with reject=503: a carrier whose trunk is down, before any phone rings).
    It ends on its own after max_calls calls or lifetime seconds.
    rtp_echo: echo the RTP it receives (its count: rtp_echoed())."""
    if reject is not None and reject not in REJECT_CODES:
        raise ValueError(f"reject: one of {REJECT_CODES}")
    if not ring and answer_after is None:
        raise ValueError("a far end that never answers must ring")
    pcaps = find_pcaps()
    base = Path(tempfile.mkdtemp(prefix="sipp-")) if log_dir is None else log_dir
    run_dir = base / f"far-end-{next(_run_numbers):03d}"
    args = ["-m", str(max_calls), "-timeout", f"{int(lifetime)}s", "-timeout_error",
            "-set", "no_ring", "0" if ring else "1",
            "-set", "answer_ms", "-1" if answer_after is None else ms(answer_after),
            "-set", "hold_ms", ms(hold), "-set", "reject_code", str(reject or 0),
            *pcaps.keys()]
    if rtp_echo:
        args.append("-rtp_echo")
    if not _udp_free(listen_ip, port):
        raise SippError(f"far end: {listen_ip}:{port} is already in use")

    def make() -> Sipp:
        return Sipp(name=f"far end {listen_ip}:{port}", scenario=UAS_FAR_END,
                    local_ip=listen_ip, sip_port=port,
                    media_port=free_port(listen_ip, pair=True), args=args, run_dir=run_dir,
                    trace_messages=trace_messages)

    sipp = await _start_with_fresh_ports(make)
    if not sipp.running:
        result = sipp.result()
        raise SippError(f"far end {listen_ip}:{port} did not start\n{result.describe()}")
    return FarEnd(sipp)


class DeskPhone(FarEnd):
    """An agent's SIP desk phone: registered at the hotline, answering what it is sent."""

    def registrations(self) -> list[int]:
        """The status codes the hotline answered the REGISTERs with, in order."""
        return [int(f[3]) for f in _log_lines(self.sipp.log_file)
                if len(f) >= 4 and f[0] == "REG" and f[3].isdigit()]

    async def wait_registered(self, timeout: float = 15.0) -> list[int]:
        """Wait for the final answer to the registration (200, or a refusal); return the
        codes seen."""
        deadline = time.monotonic() + timeout
        while True:
            codes = self.registrations()
            if 200 in codes or 403 in codes or codes.count(401) >= 2:
                return codes
            if time.monotonic() > deadline or not self.sipp.running:
                return codes
            await asyncio.sleep(0.1)


async def desk_phone(
    registrar: str,
    user: str,
    password: str,
    *,
    local_ip: str = "127.0.0.4",
    answer_after: float = 1.0,
    hold: float = 60.0,
    lifetime: float = 300.0,
    log_dir: Path | None = None,
) -> DeskPhone:
    """A SIP desk phone from local_ip that registers `user` (digest, `password`) at registrar
    ("127.0.0.1:15060") and answers the calls it is sent after answer_after seconds (as
    far_end does: PCMA, A-law audio, hanging up after hold unless the hotline does)."""
    pcaps = find_pcaps()
    base = Path(tempfile.mkdtemp(prefix="sipp-")) if log_dir is None else log_dir
    run_dir = base / f"phone-{user}-{next(_run_numbers):03d}"
    args = ["-s", user, "-au", user, "-ap", password, "-m", "1", "-l", "1", "-r", "100",
            "-timeout", f"{int(lifetime) + 30}s", "-timeout_error",
            "-oocsf", str(UAS_FAR_END),
            "-set", "lifetime_ms", ms(lifetime),
            "-set", "answer_ms", ms(answer_after), "-set", "hold_ms", ms(hold),
            "-set", "reject_code", "0", *pcaps.keys()]

    def make() -> Sipp:
        return Sipp(name=f"desk phone {user}@{local_ip}", scenario=PHONE_REGISTER,
                    local_ip=local_ip, sip_port=free_port(local_ip),
                    media_port=free_port(local_ip, pair=True), args=args, run_dir=run_dir,
                    remote=registrar)

    sipp = await _start_with_fresh_ports(make)
    phone = DeskPhone(sipp)
    # A refused phone's scenario ends at once: that is an answer, not a failed start.
    if not sipp.running and not phone.registrations():
        raise SippError(f"desk phone {user} did not start\n{sipp.result().describe()}")
    return phone


# ------------------------------------------------------------------ carriers' own ways

UAC_OFFER = SCENARIOS / "uac_offer.xml"
UAC_INBAND = SCENARIOS / "uac_inband.xml"
UAC_REINVITE = SCENARIOS / "uac_reinvite.xml"
# Offers uac_offer.xml makes that the hotline cannot take (codecs it does not offer, a body
# that is no SDP, SDP without a c= line).
BAD_OFFERS = ("g729", "gsm", "garbage", "no_connection")
# The two frequencies (Hz) of each key (ITU-T Q.23).
DTMF_TONES = {"1": (697, 1209), "2": (697, 1336), "3": (697, 1477),
              "4": (770, 1209), "5": (770, 1336), "6": (770, 1477),
              "7": (852, 1209), "8": (852, 1336), "9": (852, 1477),
              "*": (941, 1209), "0": (941, 1336), "#": (941, 1477)}
ALAW_SILENCE = b"\xd5"
PTIME_MS = 20


def inband_dtmf_pcap(digits: str, path: Path, *, tone: float = 0.15,
                     gap: float = 0.2) -> float:
    """Write to path an RTP capture (pcap) of `digits` as in-band DTMF, for SIPp's
    play_pcap_audio: A-law (payload 8) in 20 ms packets, each key's two frequencies for
    `tone` seconds (made by sox), `gap` seconds of silence before and after each key.
    Returns how long it plays, in seconds."""
    bad = set(digits) - set(DTMF_TONES)
    if not digits or bad:
        raise ValueError(f"digits {sorted(bad) or digits!r}: in-band keys are 0-9 * #")
    sox = shutil.which("sox")
    if sox is None:
        raise SippError("sox is not installed (apt-get install sox): it makes the tones")
    silence = ALAW_SILENCE * round(gap * 8000)
    audio = bytearray(silence)
    for key in digits:
        low, high = DTMF_TONES[key]
        # The two sines mixed, each about 9 dB below full scale: no clipping, no twist.
        made = subprocess.run(
            [sox, "-n", "-r", "8000", "-c", "1", "-e", "a-law", "-t", "raw", "-",
             "synth", f"{tone}", "sine", str(low), "synth", f"{tone}", "sine", "mix",
             str(high), "vol", "-6dB"],
            capture_output=True, check=True, timeout=30)
        audio += made.stdout + silence
    size = 8 * PTIME_MS  # 8 kHz, one byte a sample
    audio += ALAW_SILENCE * (-len(audio) % size)
    _write_rtp_pcap(path, bytes(audio), size)
    return len(audio) / 8000


def _write_rtp_pcap(path: Path, audio: bytes, size: int, payload_type: int = 8) -> None:
    """A pcap (Ethernet, IPv4, UDP) of RTP packets of `size` bytes of audio each, PTIME_MS
    apart. SIPp keeps the UDP part and rewrites addresses, ports and the UDP checksum."""
    ssrc = 0x484F544C
    records = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]  # Ethernet
    for n, start in enumerate(range(0, len(audio), size)):
        marker = 0x80 if n == 0 else 0
        rtp = struct.pack("!BBHII", 0x80, marker | payload_type, n, n * size, ssrc)
        udp = struct.pack("!HHHH", 6000, 6000, 8 + len(rtp) + size, 0) + rtp
        udp += audio[start:start + size]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), n & 0xFFFF, 0, 64, 17, 0,
                         socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2"))
        total = sum(struct.unpack("!10H", ip))
        total = (total & 0xFFFF) + (total >> 16)
        ip = ip[:10] + struct.pack("!H", ~total & 0xFFFF) + ip[12:]
        frame = bytes.fromhex("020000000002" "020000000001" "0800") + ip + udp
        micros = n * PTIME_MS * 1000
        records.append(struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000,
                                   len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(records))


def _run_dir(log_dir: Path | None, label: str) -> Path:
    base = Path(tempfile.mkdtemp(prefix="sipp-")) if log_dir is None else log_dir
    run_dir = base / f"{label}-{next(_run_numbers):03d}"
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


async def _one_call(target: str, scenario: Path, fields: Sequence[str], run_dir: Path, *,
                    local_ip: str, keys: Sequence[str], bound: float,
                    answer_timeout: float) -> CitizenCalls:
    """Start SIPp placing one call to target with `scenario` and these injection fields."""
    for value in fields:
        if ";" in value or "\n" in value or "\r" in value:
            raise ValueError(f"{value!r}: SIPp's injection fields cannot hold ';' or "
                             "line breaks")
    csv_path = run_dir / "calls.csv"
    csv_path.write_text("SEQUENTIAL\n" + ";".join(fields) + "\n", encoding="utf-8")
    args = ["-inf", str(csv_path), "-m", "1", "-r", "100", "-rp", "1000", "-l", "1",
            "-recv_timeout", str(round(answer_timeout * 1000)),
            "-timeout", f"{int(bound) + 1}s", "-timeout_error", *keys]

    def make() -> Sipp:
        return Sipp(name=f"{scenario.stem} {run_dir.name} -> {target}", scenario=scenario,
                    local_ip=local_ip, sip_port=free_port(local_ip),
                    media_port=free_port(local_ip, pair=True), args=args, run_dir=run_dir,
                    remote=target)

    sipp = await _start_with_fresh_ports(make)
    return CitizenCalls(sipp, bound=bound, stats_every=1.0)


def _from_header(caller: str, local_ip: str) -> str:
    return f'"{caller}" <sip:{caller}@{local_ip}>'


async def bad_offer_call(target: str, number: str, offer: str, *,
                         caller: str = "13800138000", local_ip: str = "127.0.0.2",
                         answer_timeout: float = 15.0,
                         log_dir: Path | None = None) -> CitizenCalls:
    """A carrier's call with an offer the hotline cannot take (one of BAD_OFFERS), expected
    to be refused with a 4xx-6xx (uac_offer.xml; an answer 200 fails the call)."""
    if offer not in BAD_OFFERS:
        raise ValueError(f"offer: one of {BAD_OFFERS}")
    return await _one_call(target, UAC_OFFER, [number, _from_header(caller, local_ip), offer],
                           _run_dir(log_dir, f"offer-{offer}"), local_ip=local_ip, keys=[],
                           bound=answer_timeout + 15, answer_timeout=answer_timeout)


async def inband_call(target: str, number: str, *, digits: str, digits_after: float = 2.0,
                      hold: float = 30.0, caller: str = "13800138000",
                      local_ip: str = "127.0.0.2", answer_timeout: float = 30.0,
                      log_dir: Path | None = None) -> CitizenCalls:
    """A citizen whose carrier offers no telephone-event: the keys go as tones in the audio
    (inband_dtmf_pcap), digits_after seconds after the answer; it hangs up hold seconds
    after the answer (uac_inband.xml). Its TONES log line says when they were sent."""
    run_dir = _run_dir(log_dir, "inband")
    tones = run_dir / "tones.pcap"
    length = inband_dtmf_pcap(digits, tones)
    if hold < digits_after + length:
        raise ValueError("hold counts from the answer: it must outlast the tones")
    fields = [number, _from_header(caller, local_ip), ms(digits_after), ms(length),
              ms(hold)]
    keys = ["-key", "g711a", str(find_pcaps().audio), "-key", "tones", str(tones)]
    return await _one_call(target, UAC_INBAND, fields, run_dir, local_ip=local_ip, keys=keys,
                           bound=answer_timeout + hold + 15, answer_timeout=answer_timeout)


async def reinvite_call(target: str, number: str, *, reinvite_at: float | None = None,
                        move_at: float | None = None, update_at: float | None = None,
                        hold: float = 30.0, session_expires: int = 1800,
                        caller: str = "13800138000", local_ip: str = "127.0.0.2",
                        answer_timeout: float = 30.0,
                        log_dir: Path | None = None) -> CitizenCalls:
    """A citizen whose carrier asks for session timers (Session-Expires, refresher=uac) and
    then, at these seconds after the answer, sends a re-INVITE with the same offer
    (reinvite_at), one moving its media to another port (move_at) and an UPDATE without a
    body (update_at); it hangs up hold seconds after the answer (uac_reinvite.xml). The
    Session-Expires the hotline answered: CallRecord.session_expires; the requests it
    answered 200, in order: CallRecord.accepted."""
    steps = [t for t in (reinvite_at, move_at, update_at) if t is not None]
    if steps != sorted(steps) or any(t >= hold for t in steps):
        raise ValueError("re-INVITE, move and UPDATE come in this order, before the hang-up")
    if session_expires < 90:
        raise ValueError("session_expires: 90 s or more (the Min-SE Asterisk accepts)")

    def at(t: float | None) -> str:
        return "-1" if t is None else ms(t)

    fields = [number, _from_header(caller, local_ip), str(session_expires), at(reinvite_at),
              at(move_at), at(update_at), ms(hold)]
    return await _one_call(target, UAC_REINVITE, fields, _run_dir(log_dir, "reinvite"),
                           local_ip=local_ip, keys=["-key", "g711a", str(find_pcaps().audio)],
                           bound=answer_timeout + hold + 15, answer_timeout=answer_timeout)
