"""SIP citizens for the bench: SIPp as the demo carrier (tests/sip.py), one SIP channel a
caller as in production, A-law RTP looping from a pcap, each caller a different number.

The parsing here is pure (tested in tests/bench/); `start` runs SIPp through the tests'
typed harness (its uac_citizen.xml scenario, its port choice, its stop sequence).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stats import summary
from tests.sip import CallSpec, CitizenCalls, SippResult, citizen_calls

# The shipped demo trunk accepts INVITEs from this address (config/hotline.yaml `match`).
TRUNK_IP = "127.0.0.2"
SLOW_ANSWER_S = 5.0  # "answered only after 5 s or more", as the issue counted them


@dataclass
class Invite:
    """One call's INVITE as SIPp saw it (its -trace_shortmsg lines)."""

    call_id: str
    sent: float  # first INVITE sent (epoch seconds)
    sends: int = 1  # INVITEs sent (1 + retransmissions)
    answered: float | None = None  # first 200 OK to it received
    final: int | None = None  # first final response code

    @property
    def answer_ms(self) -> float | None:
        return None if self.answered is None else (self.answered - self.sent) * 1000


def invites(short_log: str) -> dict[str, Invite]:
    """Per Call-ID, the INVITE's timing from SIPp's short message trace
    (date, time, epoch, S|R, call-id, "CSeq:n METHOD", first line; tab-separated)."""
    out: dict[str, Invite] = {}
    for line in short_log.splitlines():
        parts = line.split("\t")
        # CSeq 1: our INVITE and its responses (Asterisk's re-INVITEs have CSeqs of its own).
        if len(parts) < 7 or parts[5].replace(" ", "") != "CSeq:1INVITE":
            continue
        try:
            at = float(parts[2])
        except ValueError:
            continue
        direction, call_id, first = parts[3], parts[4], parts[6]
        if direction == "S" and first.startswith("INVITE "):
            inv = out.get(call_id)
            if inv is None:
                out[call_id] = Invite(call_id, at)
            else:
                inv.sends += 1
        elif direction == "R" and first.startswith("SIP/2.0 "):
            inv = out.get(call_id)
            if inv is None:
                continue
            try:
                code = int(first.split()[1])
            except (IndexError, ValueError):
                continue
            if code >= 200 and inv.final is None:
                inv.final = code
            if code == 200 and inv.answered is None:
                inv.answered = at
    return out


def answer_figures(calls: Iterable[Invite], since: float = 0.0, until: float = math.inf,
                   now: float | None = None, give_up: float = 30.0) -> dict[str, Any]:
    """What the INVITEs sent in [since, until) got: answered, latency to the 200 OK, the
    slow ones, INVITE retransmissions, final codes other than 200, and the calls that will
    never be answered (refused, or still unanswered give_up s after the INVITE, at now:
    SIPp's -recv_timeout gives up on them; younger ones are still being set up)."""
    chosen = [c for c in calls if since <= c.sent < until]
    latencies = [c.answer_ms for c in chosen if c.answer_ms is not None]
    refused: dict[str, int] = {}
    for c in chosen:
        if c.final is not None and c.final != 200:
            refused[str(c.final)] = refused.get(str(c.final), 0) + 1
    return {"invites": len(chosen), "answered": len(latencies),
            "unanswered": sum(1 for c in chosen if c.answered is None),
            "answer_ms": summary(latencies),
            "slow": sum(1 for ms in latencies if ms >= SLOW_ANSWER_S * 1000),
            "invite_retransmissions": sum(c.sends - 1 for c in chosen),
            "refused": refused,
            "never_answered": sum(1 for c in chosen if c.answered is None and (
                c.final is not None or (now is not None and now - c.sent >= give_up)))}


def result_figures(result: SippResult) -> dict[str, Any]:
    """SIPp's own counters for a run (so far)."""
    ended_remote = sum(1 for c in result.calls if c.ended_by == "remote")
    ended_local = sum(1 for c in result.calls if c.ended_by == "local")
    return {"created": result.created, "successful": result.successful,
            "failed": result.failed, "retransmissions": result.retransmissions,
            "failures": dict(result.failures), "ended_remote": ended_remote,
            "ended_local": ended_local, "exit_code": result.exit_code,
            "timed_out": result.timed_out, "rtp_packets_sent": result.rtp_packets_sent,
            "errors_tail": result.errors.strip()[-600:]}


def caller_numbers(tag: str, count: int) -> list[str]:
    """count different mobile-shaped numbers, new in every run (tag: 3 digits of the run)
    and apart from the Local callers' (which start with 1 + the tag, then 0)."""
    return [f"1{tag[-3:]}9{i:06d}" for i in range(count)]


async def start(target: str, number: str, *, tag: str, calls: int, rate: float,
                hold: float, max_concurrent: int | None, log_dir: Path,
                answer_timeout: float = 30.0) -> CitizenCalls:
    """SIPp placing `calls` citizens' calls to `number` at target from the demo trunk's
    address: `rate` a second, at most max_concurrent at once (a call that ends is replaced
    while calls remain), each holding `hold` s after the answer (unless hung up)."""
    specs = [CallSpec(number=number, caller=n, pai=n, hold=hold)
             for n in caller_numbers(tag, calls)]
    return await citizen_calls(target, specs, local_ip=TRUNK_IP, calls=calls, rate=rate,
                               max_concurrent=max_concurrent, answer_timeout=answer_timeout,
                               log_dir=log_dir, trace_messages=False, stats_every=5.0)


def short_log(calls: CitizenCalls) -> str:
    return calls.sipp.short_file.read_text(encoding="utf-8", errors="replace") \
        if calls.sipp.short_file.exists() else ""


def pid(calls: CitizenCalls) -> int | None:
    proc = calls.sipp.proc
    return proc.pid if proc is not None and proc.returncode is None else None
