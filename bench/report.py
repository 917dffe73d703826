"""docs/benchmarks.md from a run's results (pure: no services)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.stats import ratio, summary

QUEUES = ("hotline", "app_queue")
LABEL = {"hotline": "hotline", "app_queue": "app_queue"}
MODES = {"ready": "agent made ready", "hangup": "previous call hung up"}
TARGET_P99_MS = 50.0
TARGET_WAITING = 1000
SIP_ANSWER_P99_MS = 1000.0
SIP_RTP_SAMPLE = 20
SATURATED_PCT = 95.0
DISCUSSION = Path(__file__).with_name("discussion.md")


def fmt(x: float | None, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:,.{digits}f}"


def fmt_ratio(x: float) -> str:
    if math.isnan(x):
        return "—"
    return f"{x:.3f}×" if abs(x) < 0.1 else f"{x:.2f}×"


def samples(results: dict[str, Any], queue: str, size: int | str,
            mode: str | None = None) -> list[dict[str, Any]]:
    return [s for s in results.get("samples", [])
            if s["queue"] == queue and str(s["size"]) == str(size)
            and (mode is None or s["mode"] == mode)]


def latency(results: dict[str, Any], queue: str, size: int | str, mode: str | None = None,
            start: str = "t_before", end: str = "ringing") -> dict[str, float]:
    """Milliseconds from the freeing action to the agent's phone ringing (or another pair
    of a sample's timestamps)."""
    return summary((s[end] - s[start]) * 1000 for s in samples(results, queue, size, mode)
                   if s.get(start) is not None and s.get(end) is not None)


def cpu_per_call(phase: dict[str, Any], calls: int, who: str) -> float:
    cpu = phase.get("cpu", {}).get(who, math.nan)
    return cpu / calls if calls else math.nan


def sizes(results: dict[str, Any]) -> list[str]:
    return sorted(results.get("sizes", {}), key=int)


def measured_sizes(results: dict[str, Any]) -> list[str]:
    """Sizes at which both queues were filled and measured."""
    return [size for size in sizes(results)
            if all("measure" in results["sizes"][size].get(k, {}) for k in QUEUES)]


def verdicts(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(target, what was measured, met / missed / not measured)."""
    out = []
    measured = measured_sizes(results)
    target = f"p99 dispatch ≤ {TARGET_P99_MS:g} ms with {TARGET_WAITING:,} waiting"

    def p99s(size: str) -> str:
        return ", ".join(f"{MODES[m]}: {fmt(latency(results, 'hotline', size, m)['p99'])} ms"
                         for m in MODES)

    # 1. p99 dispatch <= 50 ms with 1,000 waiting.
    def worst_p99(size: str) -> float:
        return max(latency(results, "hotline", size, m)["p99"] for m in MODES)

    per_size = "; ".join(
        f"{int(sz):,}: " + " / ".join(fmt(latency(results, "hotline", sz, m)["p99"], 0)
                                      for m in MODES) + " ms"
        for sz in measured)
    shown = f"hotline p99 ({' / '.join(MODES.values())}) at {per_size}" if measured else ""
    if str(TARGET_WAITING) in measured:
        met = "met" if worst_p99(str(TARGET_WAITING)) <= TARGET_P99_MS else "**missed**"
        out.append((target, shown, met))
    else:
        missed = [sz for sz in measured if worst_p99(sz) > TARGET_P99_MS]
        tried = str(TARGET_WAITING) in results.get("sizes", {})
        why = (f"could not hold {TARGET_WAITING:,} waiting callers" if tried
               else f"{TARGET_WAITING:,} waiting not run on this machine (see the notes)")
        verdict = f"not measured at {TARGET_WAITING:,}"
        if missed:
            verdict += (" — p99 already **over 50 ms** at "
                        + ", ".join(f"{int(sz):,}" for sz in missed) + " waiting")
        out.append((target, f"{why}; {shown}" if shown else why, verdict))
    # 2. call-control CPU per call <= Asterisk's own.
    rows = []
    vs_same, vs_appq = True, True
    for size in measured:
        per = results["sizes"][size]
        for phase, calls, name in (("fill", "admitted", "admission"),
                                   ("measure", "dispatches", "serving")):
            ph, pa = per["hotline"][phase], per["app_queue"][phase]
            ivr = cpu_per_call(ph, ph[calls], "ivr")
            ast_h = cpu_per_call(ph, ph[calls], "asterisk")
            ast_a = cpu_per_call(pa, pa[calls], "asterisk")
            vs_same = vs_same and ivr <= ast_h
            vs_appq = vs_appq and ivr <= ast_a
            rows.append(f"{name} at {int(size):,}: ivr {fmt(ivr * 1000, 1)} vs "
                        f"{fmt(ast_h * 1000, 1)} / {fmt(ast_a * 1000, 1)} ms")
    adm = results.get("admission", {})
    if "hotline" in adm and "app_queue" in adm:
        h, a = adm["hotline"], adm["app_queue"]
        ivr = cpu_per_call(h, h["admitted"], "ivr")
        ast_h = cpu_per_call(h, h["admitted"], "asterisk")
        ast_a = cpu_per_call(a, a["admitted"], "asterisk")
        vs_same = vs_same and ivr <= ast_h
        vs_appq = vs_appq and ivr <= ast_a
        rows.append(f"admission test: ivr {fmt(ivr * 1000, 1)} vs {fmt(ast_h * 1000, 1)} / "
                    f"{fmt(ast_a * 1000, 1)} ms")
    if rows:
        if vs_same and vs_appq:
            verdict = "met"
        elif vs_appq:
            verdict = ("met against Asterisk running app_queue; **missed** against "
                       "Asterisk's share of the same calls in at least one phase")
        elif vs_same:
            verdict = ("met against Asterisk's share of the same calls; **missed** against "
                       "Asterisk running app_queue in at least one phase")
        else:
            verdict = "**missed**"
        out.append(("call-control CPU per call ≤ Asterisk's own",
                    "CPU per call, ivr vs Asterisk (same calls) / Asterisk running app_queue: "
                    + "; ".join(rows), verdict))
    # 3. 20 new calls per second for 60 s, zero lost.
    h = adm.get("hotline")
    if h:
        as_asked = h["rate"] >= 20 and h["seconds"] >= 60
        lost = h["lost"]
        figure = (f"{h['offered']:,} calls at {h['rate']:g}/s for {h['seconds']:g} s: "
                  f"{h['admitted']:,} reached the queue, {lost:,} lost")
        if not as_asked:
            verdict = ("not measured as specified (shorter run)" if lost == 0
                       else "**missed** (even on a shorter run)")
        else:
            verdict = "met" if lost == 0 else "**missed**"
        out.append(("20 new calls/s for 60 s, zero lost", figure, verdict))
    return out


def dispatch_table(results: dict[str, Any], w: Callable[[str], None]) -> None:
    w("| waiting | freed by | n (h / a) | hotline p50 | hotline p99 | app_queue p50 | "
      "app_queue p99 | p50 ratio | p99 ratio |")
    w("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for size in measured_sizes(results):
        for mode in MODES:
            h = latency(results, "hotline", size, mode)
            a = latency(results, "app_queue", size, mode)
            w(f"| {int(size):,} | {MODES[mode]} | {h['n']} / {a['n']} | {fmt(h['p50'])} ms | "
              f"{fmt(h['p99'])} ms | {fmt(a['p50'])} ms | {fmt(a['p99'])} ms | "
              f"{fmt_ratio(ratio(h['p50'], a['p50']))} | {fmt_ratio(ratio(h['p99'], a['p99']))} |")
    w("")


def local_sections(results: dict[str, Any], w: Callable[[str], None]) -> None:
    """The Local-channel callers' sections: dispatch, CPU, memory, admission."""
    st = results.get("settings", {})
    w("## Dispatch latency: agent free → agent's phone rings\n")
    w("From the harness's clock just before the freeing action (the desk's state change "
      "committed in PostgreSQL for the hotline, AMI `QueuePause` for app_queue, or the "
      "agent hanging up their call) to Asterisk's own timestamp (1 ms resolution) of the "
      "agent leg's `Ringing`, seen by a separate ARI app subscribed to all channels. Ratio = "
      "hotline / app_queue (below 1: the hotline is faster).\n")
    dispatch_table(results, w)
    timeouts = results.get("timeouts", [])
    if timeouts:
        w("Dispatches that did not ring within 20 s (not in the figures): "
          + ", ".join(f"{t['queue']} at {t['size']} ({t['mode']}): {t['count']}"
                      for t in timeouts) + ".\n")

    w("Where the hotline's time goes (all dispatches of a size; `claim` = `now()` of the "
      "`claim_next` transaction, from its `RINGING` row in `queue_log`; the ack is the "
      "commit returning to the harness):\n")
    breakdown_table(results, w)

    w("## CPU seconds per call\n")
    w("utime+stime from `/proc/<pid>/stat` before and after each phase, divided by the calls "
      "of the phase. *Admission* = filling the queue (each call: placed, answered, greeting, "
      "into the queue): the same calls for both queues. *Serving* = the dispatch "
      "measurement window: each call dispatched, answered, bridged, hung up, and replaced "
      "by a new caller (so it includes that caller's admission) — and holding the N "
      "waiting callers all that time; app_queue served fewer calls in the window (its "
      "dispatches are slower), so more of that holding cost falls on each of its calls: "
      "compare serving figures with that in mind (the cost of holding alone is in the next "
      "table). PostgreSQL = the postmaster and its backends. The hotline's call control is "
      "the `ivr` process; app_queue has none (it runs inside Asterisk). Ratio = "
      "ivr / Asterisk.\n")
    w("| waiting | phase | calls (h / a) | hotline: Asterisk | hotline: ivr | hotline: "
      "PostgreSQL | hotline: all three | app_queue: Asterisk | ivr / Asterisk (same calls) "
      "| ivr / Asterisk (app_queue) | all three / app_queue | machine busy (h / a) |")
    w("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")

    def row(size: str, name: str, nh: int, na: int, ast_h: float, ivr: float, pg: float,
            ast_a: float, busy: str) -> None:
        total = ast_h + ivr + pg
        w(f"| {size} | {name} | {nh:,} / {na:,} | {fmt(ast_h * 1000, 1)} ms | "
          f"{fmt(ivr * 1000, 1)} ms | {fmt(pg * 1000, 1)} ms | {fmt(total * 1000, 1)} ms | "
          f"{fmt(ast_a * 1000, 1)} ms | {fmt_ratio(ratio(ivr, ast_h))} | "
          f"{fmt_ratio(ratio(ivr, ast_a))} | {fmt_ratio(ratio(total, ast_a))} | {busy} |")

    for size in measured_sizes(results):
        per = results["sizes"][size]
        h, a = per["hotline"], per["app_queue"]
        label = f"{int(size):,}"
        fh, fa = h["fill"], a["fill"]
        row(label, "admission", fh["admitted"], fa["admitted"],
            cpu_per_call(fh, fh["admitted"], "asterisk"), cpu_per_call(fh, fh["admitted"], "ivr"),
            cpu_per_call(fh, fh["admitted"], "postgres"),
            cpu_per_call(fa, fa["admitted"], "asterisk"),
            f"{fh['busy'] * 100:.0f}% / {fa['busy'] * 100:.0f}%")
        mh, ma = h["measure"], a["measure"]
        busy = f"{mh['busy'] * 100:.0f}% / {ma['busy'] * 100:.0f}%"
        row(label, "serving", mh["dispatches"], ma["dispatches"],
            cpu_per_call(mh, mh["dispatches"], "asterisk"),
            cpu_per_call(mh, mh["dispatches"], "ivr"),
            cpu_per_call(mh, mh["dispatches"], "postgres"),
            cpu_per_call(ma, ma["dispatches"], "asterisk"), busy)
    adm = results.get("admission", {})
    if "hotline" in adm and "app_queue" in adm:
        h, a = adm["hotline"], adm["app_queue"]
        row("—", f"admission test ({h['rate']:g}/s)", h["admitted"], a["admitted"],
            cpu_per_call(h, h["admitted"], "asterisk"), cpu_per_call(h, h["admitted"], "ivr"),
            cpu_per_call(h, h["admitted"], "postgres"), cpu_per_call(a, a["admitted"], "asterisk"),
            f"{h['busy'] * 100:.0f}% / {a['busy'] * 100:.0f}%")
    w("")
    w("Holding the full queue with nobody free (CPU in % of one core, over "
      f"{fmt(st.get('hold'), 0)} s; the hotline's callers share one holding bridge with its "
      "music, app_queue's each get their own music on hold):\n")
    w("| waiting | hotline: Asterisk | hotline: ivr | hotline: PostgreSQL | app_queue: Asterisk "
      "| Asterisk ratio (h / a) |")
    w("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for size in measured_sizes(results):
        per = results["sizes"][size]
        hh, ha = per.get("hotline", {}).get("hold"), per.get("app_queue", {}).get("hold")
        if not hh or not ha:
            continue

        def pct(phase: dict[str, Any], who: str) -> float:
            return float(phase["cpu"].get(who, math.nan)) / phase["phase_seconds"] * 100

        w(f"| {int(size):,} | {fmt(pct(hh, 'asterisk'))}% | {fmt(pct(hh, 'ivr'))}% | "
          f"{fmt(pct(hh, 'postgres'))}% | {fmt(pct(ha, 'asterisk'))}% | "
          f"{fmt_ratio(ratio(pct(hh, 'asterisk'), pct(ha, 'asterisk')))} |")
    w("")

    w("## Memory (RSS) with the queue full\n")
    w("Resident memory right after each fill, with that many callers waiting. PostgreSQL = "
      "the sum over its processes (shared buffers counted more than once).\n")
    w("| size | in the queue (h / a) | hotline: Asterisk | hotline: ivr | hotline: PostgreSQL "
      "| hotline: desk | app_queue: Asterisk | Asterisk ratio (h / a) |")
    w("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for size in sizes(results):
        per = results["sizes"][size]
        if "hotline" not in per or "app_queue" not in per:
            continue
        fh, fa = per["hotline"]["fill"], per["app_queue"]["fill"]
        mh, ma = fh["memory"], fa["memory"]
        w(f"| {int(size):,} | {fh['waiting']:,} / {fa['waiting']:,} | "
          f"{fmt(mh['asterisk'], 0)} MiB | {fmt(mh['ivr'], 0)} MiB | "
          f"{fmt(mh['postgres'], 0)} MiB | {fmt(mh['desk'], 0)} MiB | "
          f"{fmt(ma['asterisk'], 0)} MiB | {fmt_ratio(ratio(mh['asterisk'], ma['asterisk']))} |")
    w("")

    w("## Calls admitted per second\n")
    w("Admission test: new calls placed at a fixed rate with every agent paused (nobody is "
      f"served); each caller hangs up {fmt(st.get('adm_hold'), 0)} s after being answered, "
      "so about rate × that many wait at any time (what the machine can hold is in the "
      "size tables). A call is admitted when it reached the queue: a `calls` "
      "row that got `entered_queue_at` (hotline), `QueueCallerJoin` (app_queue). Latency = "
      "placing the call → in the queue (includes answering and the ~1 s greeting).\n")
    w("| queue | offered | admitted | lost | admitted/s | admission p50 | admission p99 | "
      "waiting at end |")
    w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for key in QUEUES:
        r = adm.get(key)
        if not r:
            continue
        w(f"| {LABEL[key]} | {r['offered']:,} at {r['rate']:g}/s for {r['seconds']:g} s | "
          f"{r['admitted']:,} | {r['lost']:,} | {fmt(r['admitted_per_s'])} | "
          f"{fmt(r['admission_ms']['p50'], 0)} ms | {fmt(r['admission_ms']['p99'], 0)} ms | "
          f"{r['waiting_at_end']:,} |")
    w("")
    w(f"While filling each size (offered at {fmt(st.get('fill_rate'), 0)} calls/s; a fill "
      "stops early when the calls placed but not yet in the queue exceed "
      f"{fmt(st.get('backlog'), 0)} s of calls):\n")
    w("| size | hotline: in the queue | hotline admitted/s | hotline admission p50 / p99 | "
      "app_queue: in the queue | app_queue admitted/s | app_queue admission p50 / p99 |")
    w("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for size in sizes(results):
        per = results["sizes"][size]
        cells = []
        for key in QUEUES:
            f = per.get(key, {}).get("fill")
            if not f:
                cells += ["—", "—", "—"]
                continue
            cells += [f"{f['waiting']:,} of {f.get('placed', f['calls']):,} placed",
                      fmt(f["admitted_per_s"]),
                      f"{fmt(f['admission_ms']['p50'], 0)} / {fmt(f['admission_ms']['p99'], 0)} ms"]
        w(f"| {int(size):,} | " + " | ".join(cells) + " |")
    w("")

def has_local(results: dict[str, Any]) -> bool:
    """Whether the run had the Local-channel callers' phases."""
    return bool(results.get("sizes") or results.get("admission"))


def pct_core(phase: dict[str, Any], who: str) -> float:
    """CPU of a process over a phase, in % of one core."""
    seconds = phase.get("phase_seconds") or math.nan
    return float(phase.get("cpu", {}).get(who, math.nan)) / seconds * 100


def others_pct(phase: dict[str, Any], cores: float) -> float:
    """CPU of processes not measured (other engineers' tests) over a phase, in % of one
    core: the machine's busy time minus the measured processes'."""
    ours = sum(v for v in phase.get("cpu", {}).values() if v == v)
    seconds = phase.get("phase_seconds") or math.nan
    return max(0.0, phase.get("busy", math.nan) * cores - ours / seconds) * 100


def sip_held(sip: dict[str, Any], queue: str) -> list[int]:
    """The SIP sizes a queue held: filled, and no caller lost until the end of the size."""
    return sorted(int(size) for size, per in sip.get("sizes", {}).items()
                  if per.get(queue, {}).get("end", {}).get("held"))


def sip_verdicts(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The SIP targets: admission at 20 calls/s with zero lost and quick answers; the
    largest queue of SIP callers held (a figure to report, no target)."""
    sip = results.get("sip") or {}
    out = []
    h = sip.get("admission", {}).get("hotline")
    if h:
        ms = h["answer_ms"]
        as_asked = h["rate"] >= 20 and h["seconds"] >= 60
        ok = h["lost"] == 0 and h["failed"] == 0 and ms["p99"] < SIP_ANSWER_P99_MS
        figure = (f"{h['offered']:,} SIP calls at {h['rate']:g}/s for {h['seconds']:g} s: "
                  f"{h['answered']:,} answered, {h['reached']:,} reached the queue, "
                  f"{h['lost']:,} lost, {h['failed']:,} failed, {h['retransmissions']:,} "
                  f"retransmissions; INVITE → 200 OK p50 {fmt(ms['p50'])} ms, p99 "
                  f"{fmt(ms['p99'])} ms, max {fmt(ms['max'])} ms")
        if not as_asked:
            verdict = ("not measured as specified (shorter run)" if ok
                       else "**missed** (even on a shorter run)")
        else:
            verdict = "met" if ok else "**missed**"
        out.append((f"SIP: 20 new calls/s for 60 s from the trunk, zero lost, answered in "
                    f"well under a second (p99 < {SIP_ANSWER_P99_MS:,.0f} ms)", figure, verdict))
    if sip.get("sizes"):
        tried = ", ".join(f"{int(x):,}" for x in sorted(sip["sizes"], key=int))
        held = []
        for q in QUEUES:
            sizes_held = sip_held(sip, q)
            held.append(f"{LABEL[q]} {sizes_held[-1]:,}" if sizes_held else f"{LABEL[q]} none")
        out.append(("SIP callers held waiting with music and announcements, zero lost "
                    "(no target: the machine's figure)",
                    "largest size held: " + ", ".join(held) + f" (sizes tried: {tried})",
                    "reported"))
    return out


def sip_sections(results: dict[str, Any], w: Callable[[str], None]) -> None:
    """The SIP callers' sections: admission from the trunk, holding, dispatch."""
    sip = results.get("sip")
    if not sip:
        return
    st = results.get("settings", {})
    w("## SIP callers from the carrier trunk (SIPp)\n")
    w("Citizens as production gets them: SIPp 3.6 (`tests/sip.py`, scenario "
      "`tests/sipp/uac_citizen.xml`) plays the carrier of the shipped `demo` trunk from "
      f"{st.get('sip_trunk_ip', '127.0.0.2')} to the bench Asterisk's "
      f"{st.get('sip_target', '?')}. Asterisk knows the trunk by that source address "
      "(PJSIP `identify`), so each caller is ONE PJSIP channel (`PJSIP/trunk-demo-…`) in "
      "the context `hotline-trunk-demo`, which sends 12345 to the hotline and (a line the "
      "bench adds) 99000 to app_queue's number: both queues get the same SIP load. Every "
      "caller comes from a different number (in P-Asserted-Identity), offers PCMA, PCMU "
      "and RFC 4733, and sends A-law RTP looping from a pcap (33 packets/s) all call long. "
      f"RTP ports {st.get('rtp_ports', '?')} (the bench's own). SIPp runs on the same "
      "cores as everything else: its CPU is shown too. Answer latency = SIPp's clock from "
      "sending the INVITE to receiving the 200 OK (its `-trace_shortmsg` log); a "
      "retransmitted INVITE counts from the first.\n")
    w(f"Load average {sip.get('load_before', '?')} when the SIP phases started, "
      f"{sip.get('load_after', '?')} when they ended.\n")

    adm = sip.get("admission", {})
    if adm:
        first = next(iter(adm.values()))
        w(f"### Admission: {first['rate']:g} new SIP calls/s for {first['seconds']:g} s\n")
        w("Every agent paused (nobody is served); each caller hangs up "
          f"{fmt(first['hold'], 0)} s after the answer, so about "
          f"{first['rate'] * first['hold']:,.0f} wait at a time. *Reached the queue*: a "
          "`calls` row of the trunk's call that got `entered_queue_at` (hotline), the "
          "channel reaching `Queue()` and `QueueCallerJoin` (app_queue). *Lost* = calls "
          "offered that never reached the queue. Ratio = hotline / app_queue.\n")
        w("| queue | INVITEs | answered (200) | failed | retransmissions | answer p50 | "
          "answer p99 | answer max | answered ≥ 5 s | reached the queue | lost |")
        w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for key in QUEUES:
            r = adm.get(key)
            if not r:
                continue
            ms = r["answer_ms"]
            w(f"| {LABEL[key]} | {r['invites']:,} of {r['offered']:,} | {r['answered']:,} | "
              f"{r['failed']:,} | {r['retransmissions']:,} | {fmt(ms['p50'])} ms | "
              f"{fmt(ms['p99'])} ms | {fmt(ms['max'])} ms | {r['slow']:,} | "
              f"{r['reached']:,} | {r['lost']:,} |")
        if "hotline" in adm and "app_queue" in adm:
            h, a = adm["hotline"]["answer_ms"], adm["app_queue"]["answer_ms"]
            w(f"| ratio (h / a) | | | | | {fmt_ratio(ratio(h['p50'], a['p50']))} | "
              f"{fmt_ratio(ratio(h['p99'], a['p99']))} | "
              f"{fmt_ratio(ratio(h['max'], a['max']))} | | | |")
        w("")
        w("CPU during the phase (placing the calls until every answered one is in the queue), "
          "in % of one core (machine busy: of both cores) and per call that reached the "
          "queue. *All three* = Asterisk + ivr + PostgreSQL, as in the tables above; the "
          "desk (the agents' web app, no browser connected) is shown apart; *others* = "
          "the machine's busy time not in the processes measured (other engineers' tests, "
          "the kernel's threads).\n")
        w("| queue | Asterisk | ivr | PostgreSQL | all three | desk | SIPp | others | "
          "machine busy | Asterisk per call | all three per call | "
          "all three / app_queue's Asterisk |")
        w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        cores = float(results.get("machine", {}).get("nproc") or 1)
        a_ast = math.nan
        if "app_queue" in adm:
            ra = adm["app_queue"]
            a_ast = cpu_per_call(ra, ra["reached"], "asterisk")
        for key in QUEUES:
            r = adm.get(key)
            if not r:
                continue
            three = sum(pct_core(r, k) for k in ("asterisk", "ivr", "postgres"))
            per_call = sum(cpu_per_call(r, r["reached"], k)
                           for k in ("asterisk", "ivr", "postgres"))
            w(f"| {LABEL[key]} | {fmt(pct_core(r, 'asterisk'))}% | {fmt(pct_core(r, 'ivr'))}% | "
              f"{fmt(pct_core(r, 'postgres'))}% | {fmt(three)}% | {fmt(pct_core(r, 'desk'))}% | "
              f"{fmt(pct_core(r, 'sipp'))}% | {fmt(others_pct(r, cores))}% | "
              f"{r['busy'] * 100:.0f}% | "
              f"{fmt(cpu_per_call(r, r['reached'], 'asterisk') * 1000)} ms | "
              f"{fmt(per_call * 1000)} ms | {fmt_ratio(ratio(per_call, a_ast))} |")
        w("")

    sizes_run = sorted(sip.get("sizes", {}), key=int)
    if sizes_run:
        w("### Holding SIP callers: how many wait with music and announcements, zero lost\n")
        w(f"SIPp keeps N callers up (`-l N`), placing them at {fmt(st.get('fill_rate'), 0)} "
          "calls/s; nobody is free while the queue fills and is held "
          f"{fmt(st.get('hold'), 0)} s; then dispatch is measured "
          f"{fmt(st.get('measure'), 0)} s (below), SIPp replacing every caller served. "
          "*Lost* = callers who left the queue without an agent (hotline: an ended `calls` "
          "row never answered; app_queue: `QueueCallerAbandon`), or whose INVITE was "
          "refused or never answered, until the end of the size. *Held* = all N waiting, "
          "none lost, no SIPp call failed, no SIP retransmission (every response within "
          f"SIP's 500 ms), and the machine below {SATURATED_PCT:.0f}% busy while holding "
          "them. *Others* = CPU of everything not measured while holding (other engineers' "
          "tests, and the kernel's own threads, e.g. ksoftirqd carrying the loopback RTP): "
          "the machine's busy time minus the processes measured. *Machine busy* is of both "
          "cores, the other CPU columns are % of one core. "
          "*Music*: Asterisk's RTP "
          f"counters (ARI `rtp_statistics`) of up to {SIP_RTP_SAMPLE} callers over the hold: "
          "median packets/s sent to a caller, and how many got none. *Announcements*: the "
          "hotline's announcement playbacks (ARI `PlaybackStarted` other than the greeting) "
          "during hold + measurement; app_queue is configured the same and has no event "
          "for them (an announcement is several playbacks: place, wait, prompt). Larger "
          "sizes are not run after one that was not held.\n")
        w("| size | queue | waiting | INVITEs / answered | SIPp failed | retransmissions | "
          "answer p99 / max | lost | music pkts/s (silent) | announcement playbacks | "
          "Asterisk | ivr | PostgreSQL | desk | SIPp | others | machine busy | held |")
        w("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
          "---: | ---: | ---: | ---: | ---: | --- |")
        cores = float(results.get("machine", {}).get("nproc") or 1)
        for size in sizes_run:
            per = sip["sizes"][size]
            for key in QUEUES:
                p = per.get(key)
                if not p:
                    continue
                f, e, hold = p["fill"], p.get("end", {}), p.get("hold")
                ann = (hold or {}).get("announcements", 0) + p.get("measure", {}).get(
                    "announcements", 0)
                music = (f"{fmt(hold['tx_per_s']['p50'], 0)} ({hold['silent']} of "
                         f"{hold['rtp_sampled']})" if hold else "—")
                cpu = ([f"{fmt(pct_core(hold, k))}%" for k in
                        ("asterisk", "ivr", "postgres", "desk", "sipp")]
                       + [f"{fmt(others_pct(hold, cores))}%", f"{hold['busy'] * 100:.0f}%"]
                       if hold else ["—"] * 7)
                ms = e.get("answer_ms", f["answer_ms"])
                held = ("yes" if e.get("held") else
                        "**no**" + (": " + "; ".join(e["why_not"]) if e.get("why_not") else ""))
                w(f"| {int(size):,} | {LABEL[key]} | {f['waiting']:,} of {int(size):,} | "
                  f"{e.get('invites', f['invites']):,} / {e.get('answered', f['answered']):,} | "
                  f"{e.get('failed', f['failed']):,} | "
                  f"{e.get('retransmissions', f['retransmissions']):,} | "
                  f"{fmt(ms['p99'])} / {fmt(ms['max'])} ms | {e.get('lost', '—')} | {music} | "
                  f"{ann if key == 'hotline' else '(not seen)'} | " + " | ".join(cpu)
                  + f" | {held} |")
        largest = {q: sip_held(sip, q) for q in QUEUES}
        w("")
        w("Largest size held: " + "; ".join(
            f"{LABEL[q]} {largest[q][-1]:,}" if largest[q] else f"{LABEL[q]} none"
            for q in QUEUES)
          + (f" (not run: {', '.join(f'{int(x):,}' for x in sip['not_run'])})"
             if sip.get("not_run") else "") + ".\n")

    if measured_sizes(sip):
        w("### Dispatch latency with SIP callers waiting\n")
        w("The same measurement as above (agent free → agent's phone rings; agents' phones "
          "are the same virtual ones), with the queue full of SIP callers. Ratio = hotline / "
          "app_queue.\n")
        dispatch_table(sip, w)
        if sip.get("timeouts"):
            w("Dispatches that did not ring within 20 s (not in the figures): "
              + ", ".join(f"{t['queue']} at {t['size']} ({t['mode']}): {t['count']}"
                          for t in sip["timeouts"]) + ".\n")
        w("Where the hotline's time goes:\n")
        breakdown_table(sip, w)


def breakdown_table(results: dict[str, Any], w: Callable[[str], None]) -> None:
    w("| waiting | freed by | free → ack p50 / p99 | free → claim p50 / p99 | claim → leg "
      "created p50 / p99 | created → ringing p50 / p99 |")
    w("| ---: | --- | ---: | ---: | ---: | ---: |")
    for size in measured_sizes(results):
        for mode in MODES:
            ack = latency(results, "hotline", size, mode, "t_before", "t_after")
            claim = latency(results, "hotline", size, mode, "t_before", "claim")
            created = latency(results, "hotline", size, mode, "claim", "created")
            ring = latency(results, "hotline", size, mode, "created", "ringing")
            w(f"| {int(size):,} | {MODES[mode]} | {fmt(ack['p50'])} / {fmt(ack['p99'])} ms | "
              f"{fmt(claim['p50'])} / {fmt(claim['p99'])} ms | "
              f"{fmt(created['p50'])} / {fmt(created['p99'])} ms | "
              f"{fmt(ring['p50'])} / {fmt(ring['p99'])} ms |")
    w("")


def render(results: dict[str, Any], also: list[dict[str, Any]] | None = None) -> str:
    st = results.get("settings", {})
    m = results.get("machine", {})
    v = results.get("versions", {})
    out: list[str] = []
    w = out.append
    w("# Benchmarks: this queue and Asterisk's app_queue, side by side\n")
    w("Written by `make bench` (`bench/run.py`) from one run: the same Asterisk, the same "
      "load, both queues, one after the other for each size (the order alternates between "
      "sizes). Real Asterisk, real PostgreSQL, real calls through Asterisk; every figure "
      "below was measured in that run"
      + (" (or, in its own section, in the second run named there)" if also else "")
      + ". The machine is shared and small, so compare the two columns of a row (and their "
      "ratio), not absolute figures across runs.\n")

    w("## Commands\n")
    w("```sh")
    w("make bench                             # .venv/bin/python -m bench.run: writes this file")
    w(".venv/bin/python -m bench.run --quick  # 50 waiting, 10 s of load: a few minutes")
    w("# SIP callers only (SIPp on the demo trunk): admission at 20/s for 60 s, then 100, 300,")
    w("# 500 waiting (stops at the first size not held); --quick: 50 waiting, 10 s (2 minutes)")
    w(".venv/bin/python -m bench.run --sip-only --out /tmp/bench-sip.md")
    w(".venv/bin/python -m bench.run --quick --sip-only --out /tmp/bench-sip-quick.md")
    w(".venv/bin/python -m bench.run --waiting 100,500,1000 --agents 10 --rate 20 --seconds 60")
    w("# both queues without announcements, dispatch only (the second table set below):")
    w(".venv/bin/python -m bench.run --waiting 100,300,500 --seconds 0 --no-announcements \\")
    w("    --no-sip --out /tmp/no-announcements.md")
    w("# this file from the two runs' figures (re-render only, no calls):")
    w(".venv/bin/python -m bench.run --report-only var/bench/results.json \\")
    w("    --also var/bench/results-no-announcements.json")
    w("```\n")
    w(f"This report: `{results.get('command', '?')}`, "
      f"{results.get('started', '?')} → {results.get('finished', '?')} (UTC). Raw figures and "
      f"every dispatch sample: `{results.get('results_file', 'var/bench/results.json')}`.\n")

    w("## Machine and set-up\n")
    w(f"- {m.get('nproc', '?')} cores ({m.get('cpu', '?')}), "
      f"{fmt(m.get('memory_gib'), 1)} GiB memory, Linux {m.get('kernel', '?')}, "
      f"Python {m.get('python', '?')}")
    w(f"- Asterisk {v.get('asterisk', '?')}; PostgreSQL {v.get('postgres', '?')} "
      f"(fsync {v.get('pg_fsync', '?')}, synchronous_commit "
      f"{v.get('pg_synchronous_commit', '?')})")
    w(f"- {st.get('agents', '?')} virtual agents, phones answer after "
      f"{st.get('answer_after', '?')} s; hotline queue `longest_idle`, wrap-up 0; app_queue "
      f"`leastrecent`, wrapuptime 0, ringinuse no, autofill yes, retry {st.get('retry', '?')} s "
      "(its smallest), static members `Local/<phone>@hotline-virtual-phone/n`")
    if has_local(results):
        w("- Callers: ARI originate of `Local/12345@hotline-inbound/n` (hotline) or "
      "`Local/99000@hotline-bench/n` (app_queue: Answer, the same greeting, `Queue(benchq)`), "
          "citizen side in `hotline-citizen`, formats=ulaw, each from a different number; "
          f"queues filled at {fmt(st.get('fill_rate'), 0)} calls/s; "
          f"{fmt(st.get('measure'), 0)} s of dispatches per size and queue, each agent freed "
          f"every {fmt(st.get('slot'), 1)} s (made ready, then hanging up "
          f"{fmt(st.get('slot'), 1)} s later, then paused), so both queues get the same calls "
          "per second; every call served is replaced by a new caller")
    if results.get("sip"):
        w("- SIP callers: SIPp on the demo trunk, one PJSIP channel a caller (section *SIP "
          "callers from the carrier trunk* below)")
    if "music_restored" in results:
        restored = results["music_restored"]
        w("- Music to the hotline's waiting callers: Asterisk takes a holding bridge's music "
          "channel away when the last caller leaves it. Before each of the hotline's phases "
          "the harness checks (Asterisk CLI `bridge show`) that the bridge has it, and "
          "starts it again if not (ARI `POST /bridges/hotline-queue-duty/moh`), so both "
          "queues play music to every waiting caller. "
          + (f"It had to {len(restored)} times in this run ({', '.join(restored)}): the "
             "ivr under test did not start the music again itself"
             if restored else "It never had to in this run: the ivr under test starts the "
             "music again itself"))
    code = results.get("code")
    if code:
        w(f"- Code under test: commit `{code.get('head', '?')}`"
          + (" with uncommitted changes to " + ", ".join(f"`{f}`" for f in code["changed"])
             + " (the working tree as the stack imported it at the start of the run)"
             if code.get("changed") else ""))
    if st.get("announcements", True):
        w("- Announcements to waiting callers as the shipped `config/hotline.yaml` has them "
          "(every 30 s: place in line, expected wait, the `please_hold` prompt); app_queue is "
          "given the same (`announce-frequency` 30 with position and hold time, "
          "`periodic-announce` of the same prompt every 30 s), so both do that work")
    else:
        w("- Announcements to waiting callers off in both queues")
    others = sorted(set(results.get("other_asterisks", []))
                    | set(results.get("other_asterisks_after", [])))
    w(f"- Load average {results.get('load_before', '?')} at the start, "
      f"{results.get('load_after', '?')} at the end. Other Asterisk instances running on the "
      f"machine during the run (other engineers' test stacks): {len(others)}"
      + ("" if not others else " — " + "; ".join(f"`{o}`" for o in others)))
    w("")

    w("## Targets\n")
    w("| target | measured | verdict |")
    w("| --- | --- | --- |")
    for target, figure, verdict in ((verdicts(results) if has_local(results) else [])
                                    + sip_verdicts(results)):
        w(f"| {target} | {figure} | {verdict} |")
    w("")

    if has_local(results):
        local_sections(results, w)
    sip_sections(results, w)

    for extra in also or []:
        est = extra.get("settings", {})
        w("## The same, without announcements to waiting callers (a second run)\n")
        w(f"`{extra.get('command', '?')}`, {extra.get('started', '?')} (UTC): the same set-up "
          "with the queue's announcements off (hotline `announce_every: 0`; app_queue "
          "`announce-frequency` and `periodic-announce-frequency` 0), to separate how each "
          "queue dispatches from what announcing costs. "
          f"{est.get('agents', '?')} agents, {fmt(est.get('measure'), 0)} s per size"
          + (f"; the harness had to start the hotline's music again "
             f"{len(extra['music_restored'])} times in it" if "music_restored" in extra else "")
          + ".\n")
        dispatch_table(extra, w)
        w("Holding the full queue (CPU in % of one core):\n")
        w("| waiting | hotline: Asterisk | hotline: ivr | hotline: PostgreSQL | "
          "app_queue: Asterisk |")
        w("| ---: | ---: | ---: | ---: | ---: |")
        for size in measured_sizes(extra):
            per = extra["sizes"][size]
            hh, ha = per["hotline"]["hold"], per["app_queue"]["hold"]

            def pct2(phase: dict[str, Any], who: str) -> float:
                return float(phase["cpu"].get(who, math.nan)) / phase["phase_seconds"] * 100

            w(f"| {int(size):,} | {fmt(pct2(hh, 'asterisk'))}% | {fmt(pct2(hh, 'ivr'))}% | "
              f"{fmt(pct2(hh, 'postgres'))}% | {fmt(pct2(ha, 'asterisk'))}% |")
        w("")
        if extra.get("timeouts"):
            w("Dispatches that did not ring within 20 s: " + ", ".join(
                f"{t['queue']} at {t['size']} ({t['mode']}): {t['count']}"
                for t in extra["timeouts"]) + ".\n")

    notes = list(results.get("notes", []))
    if results.get("originate_failures"):
        notes.append(f"{results['originate_failures']} originates were refused by Asterisk")
    errors = results.get("ivr_log_errors", [])
    if errors:
        notes.append(f"{len(errors)} ERROR lines in the ivr log during the run; first: "
                     f"`{errors[0][:200]}`")
    else:
        notes.append("no ERROR line in the ivr log during the run")
    notes.append(f"the observer app received {results.get('observer_events', 0):,} ARI events")
    if "hotline_announcements" in results:
        notes.append(f"the hotline played {results['hotline_announcements']:,} announcement "
                     "playbacks to waiting callers (ARI playbacks other than the greeting) "
                     "in the run")
    w("## Notes from this run\n")
    for n in notes:
        w(f"- {n}")
    w("")
    if DISCUSSION.exists():
        w(DISCUSSION.read_text(encoding="utf-8").rstrip() + "\n")
    return "\n".join(out)
