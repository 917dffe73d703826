"""The bench's SIP callers: parsing SIPp's trace, the SIP report sections, the bench YAML
and dialplan that route the demo trunk's calls to both queues (pure: no services)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import report, sipload, stack
from bench.run import sip_not_held
from bench.stats import summary
from dialplan import config, render
from dialplan.render import AsteriskDirs, Secrets


def _line(at: float, direction: str, call_id: str, cseq: str, first: str) -> str:
    return "\t".join(["2026-12-05", "06:00:00.000000", f"{at:.6f}", direction, call_id, cseq,
                      first])


SHORT_LOG = "\n".join([
    # call 1: answered 12 ms after its INVITE
    _line(100.000, "S", "1-9@127.0.0.2", "CSeq:1 INVITE", "INVITE sip:12345@127.0.0.1 SIP/2.0"),
    _line(100.002, "R", "1-9@127.0.0.2", "CSeq:1 INVITE", "SIP/2.0 100 Trying"),
    _line(100.012, "R", "1-9@127.0.0.2", "CSeq:1 INVITE", "SIP/2.0 200 OK"),
    _line(100.013, "S", "1-9@127.0.0.2", "CSeq:1 ACK", "ACK sip:127.0.0.1 SIP/2.0"),
    # ...a session-timer re-INVITE from Asterisk and our 200: not the call's answer
    _line(160.000, "R", "1-9@127.0.0.2", "CSeq:31000 INVITE", "INVITE sip:carrier SIP/2.0"),
    _line(160.001, "S", "1-9@127.0.0.2", "CSeq:31000 INVITE", "SIP/2.0 200 OK"),
    # call 2: INVITE retransmitted twice, answered 6 s after the first one
    _line(101.000, "S", "2-9@127.0.0.2", "CSeq:1 INVITE", "INVITE sip:12345@127.0.0.1 SIP/2.0"),
    _line(101.500, "S", "2-9@127.0.0.2", "CSeq:1 INVITE", "INVITE sip:12345@127.0.0.1 SIP/2.0"),
    _line(102.500, "S", "2-9@127.0.0.2", "CSeq:1 INVITE", "INVITE sip:12345@127.0.0.1 SIP/2.0"),
    _line(107.000, "R", "2-9@127.0.0.2", "CSeq:1 INVITE", "SIP/2.0 200 OK"),
    _line(107.010, "R", "2-9@127.0.0.2", "CSeq:1 INVITE", "SIP/2.0 200 OK"),  # retransmitted
    # call 3: refused
    _line(102.000, "S", "3-9@127.0.0.2", "CSeq:1 INVITE", "INVITE sip:12345@127.0.0.1 SIP/2.0"),
    _line(102.100, "R", "3-9@127.0.0.2", "CSeq:1 INVITE", "SIP/2.0 503 Service Unavailable"),
    # call 4: no answer yet
    _line(103.000, "S", "4-9@127.0.0.2", "CSeq:1 INVITE", "INVITE sip:12345@127.0.0.1 SIP/2.0"),
    "a line that is not SIPp's",
])


def test_invites_time_each_call_from_its_first_invite_to_its_200() -> None:
    calls = sipload.invites(SHORT_LOG)
    assert set(calls) == {"1-9@127.0.0.2", "2-9@127.0.0.2", "3-9@127.0.0.2", "4-9@127.0.0.2"}
    one, two = calls["1-9@127.0.0.2"], calls["2-9@127.0.0.2"]
    assert one.answer_ms == pytest.approx(12.0) and one.sends == 1 and one.final == 200
    assert two.answer_ms == pytest.approx(6000.0) and two.sends == 3
    assert calls["3-9@127.0.0.2"].final == 503 and calls["3-9@127.0.0.2"].answered is None
    assert calls["4-9@127.0.0.2"].final is None


def test_answer_figures_count_slow_refused_and_retransmitted_invites() -> None:
    calls = sipload.invites(SHORT_LOG).values()
    f = sipload.answer_figures(calls)
    assert f["invites"] == 4 and f["answered"] == 2 and f["unanswered"] == 2
    assert f["slow"] == 1  # answered after 5 s or more
    assert f["invite_retransmissions"] == 2
    assert f["refused"] == {"503": 1}
    assert f["answer_ms"]["max"] == pytest.approx(6000.0)
    # Only the INVITEs sent in the window.
    assert sipload.answer_figures(calls, since=100.5, until=102.0)["invites"] == 1
    # Never answered: refused, or unanswered 30 s after the INVITE (younger: still ringing).
    assert f["never_answered"] == 1
    assert sipload.answer_figures(calls, now=110.0)["never_answered"] == 1
    assert sipload.answer_figures(calls, now=140.0)["never_answered"] == 2


def test_a_size_is_not_held_when_lost_failing_retransmitting_or_saturated() -> None:
    figures = {"failed": 0, "failures": {}, "retransmissions": 0}
    ok = {"fill": {"full": True, "why": ""}, "hold": {"busy": 0.6}}
    assert sip_not_held(ok, 0, figures) == []
    why = sip_not_held({"fill": {"full": True, "why": ""}, "hold": {"busy": 0.99}}, 2,
                       {"failed": 1, "failures": {"UnexpectedMessage": 1},
                        "retransmissions": 28})
    assert why == ["2 lost", "1 SIPp call(s) failed (UnexpectedMessage 1)",
                   "28 SIP retransmissions", "machine saturated (99% busy holding them)"]
    short = sip_not_held({"fill": {"full": False, "why": "not filled in time"}}, 0, figures)
    assert short == ["not filled (not filled in time)"]


def test_others_cpu_is_the_machines_busy_time_not_measured() -> None:
    phase = {"phase_seconds": 10.0, "busy": 0.5, "cpu": {"asterisk": 6.0, "sipp": 2.0}}
    # 2 cores half busy = 100% of one core; measured 80%: others 20%.
    assert report.others_pct(phase, 2) == pytest.approx(20.0)


def test_caller_numbers_differ_and_look_like_mobiles() -> None:
    numbers = sipload.caller_numbers("6450705", 1500)
    assert len(set(numbers)) == 1500
    assert all(len(n) == 11 and n.startswith("1705") for n in numbers)


def _phase(cpu: dict[str, float], seconds: float = 10.0, **extra: Any) -> dict[str, Any]:
    return {"phase_seconds": seconds, "cpu": cpu, "busy": 0.5, "load": "1.0", **extra}


def _sip_admission(p99: float, lost: int = 0, failed: int = 0) -> dict[str, Any]:
    cpu = {"asterisk": 6.0, "ivr": 1.2, "postgres": 1.8, "sipp": 1.0, "harness": 0.1}
    return {"offered": 1200, "rate": 20.0, "seconds": 60.0, "hold": 10.0, "invites": 1200,
            "answered": 1200 - failed, "failed": failed, "retransmissions": 0, "slow": 0,
            "answer_ms": summary([4.0, 5.0, p99]), "reached": 1200 - lost, "lost": lost,
            **_phase(cpu, 60.0)}


def _sip_size(size: int, held: bool) -> dict[str, Any]:
    cpu = {"asterisk": 3.0, "ivr": 0.1, "postgres": 0.2, "sipp": 1.0}
    fill = {"calls": size, "full": True, "waiting": size, "invites": size, "answered": size,
            "failed": 0, "retransmissions": 0, "answer_ms": summary([5.0, 9.0]),
            **_phase(cpu)}
    hold = {"waiting": size, "rtp_sampled": 20, "tx_per_s": summary([50.0] * 20),
            "rx_per_s": summary([33.3] * 20), "silent": 0, "announcements": 40,
            **_phase(cpu)}
    end = {"invites": size + 100, "answered": size + 100, "failed": 0, "retransmissions": 0,
           "answer_ms": summary([5.0, 12.0]), "lost": 0 if held else 2, "held": held,
           "why_not": [] if held else ["2 lost"]}
    return {"fill": fill, "hold": hold, "end": end,
            "measure": {"dispatches": 100, "announcements": 60, **_phase(cpu, 25.0)}}


def _sip_results(p99: float = 15.0, lost: int = 0) -> dict[str, Any]:
    samples = [{"queue": q, "size": 100, "mode": mode, "login": "b1", "t_before": 10.0 + i,
                "t_after": 10.001 + i, "created": 10.0 + i + ms / 1000 - 0.001,
                "ringing": 10.0 + i + ms / 1000,
                "claim": 10.003 + i if q == "hotline" else None, "callers": "sip"}
               for q, ms in (("hotline", 20.0), ("app_queue", 600.0))
               for mode in ("ready", "hangup") for i in range(40)]
    sip = {"admission": {"hotline": _sip_admission(p99, lost), "app_queue": _sip_admission(4.0)},
           "sizes": {"100": {"hotline": _sip_size(100, True), "app_queue": _sip_size(100, True)},
                     "300": {"hotline": _sip_size(300, True),
                             "app_queue": _sip_size(300, False)}},
           "samples": samples, "timeouts": [], "not_run": [500]}
    return {"sizes": {}, "admission": {}, "sip": sip, "notes": [],
            "music_restored": ["SIP fill 100"],
            "settings": {"agents": 10, "local": False, "sip": True, "rtp_ports": "21000-23999"},
            "machine": {"nproc": 2}, "versions": {}, "command": "python -m bench.run --sip-only"}


def test_sip_verdicts_admission_and_largest_size_held() -> None:
    verdicts = {t.split(":")[0]: (f, v) for t, f, v in report.sip_verdicts(_sip_results())}
    figure, verdict = verdicts["SIP"]
    assert verdict == "met" and "1,200 answered" in figure and "0 lost" in figure
    held = next(f for t, f, _ in report.sip_verdicts(_sip_results()) if "held" in t)
    assert "hotline 300" in held and "app_queue 100" in held
    assert report.sip_held(_sip_results()["sip"], "app_queue") == [100]


def test_sip_verdict_missed_when_slow_or_lost() -> None:
    slow = report.sip_verdicts(_sip_results(p99=1500.0))[0][2]
    lost = report.sip_verdicts(_sip_results(lost=3))[0][2]
    assert slow == lost == "**missed**"


def test_a_sip_only_report_has_the_sip_sections_and_not_the_local_ones() -> None:
    text = report.render(_sip_results())
    assert "## SIP callers from the carrier trunk (SIPp)" in text
    assert "### Admission: 20 new SIP calls/s for 60 s" in text
    assert "| hotline | 1,200 of 1,200 | 1,200 | 0 | 0 |" in text
    assert "### Holding SIP callers" in text
    assert "| 300 | app_queue | 300 of 300 |" in text and "| **no**: 2 lost |" in text
    assert "Largest size held: hotline 300; app_queue 100 (not run: 500)" in text
    assert "### Dispatch latency with SIP callers waiting" in text
    assert "| 100 | agent made ready | 40 / 40 | 20.0 ms |" in text
    assert "## Dispatch latency: agent free" not in text  # no Local-channel callers
    assert "| p99 dispatch ≤ 50 ms" not in text  # (the Local callers' target row)
    assert "It had to 1 times in this run (SIP fill 100): the ivr under test did not" in text


def test_the_report_says_when_the_hotline_kept_its_music_and_which_code_ran() -> None:
    results = _sip_results()
    results["music_restored"] = []
    results["code"] = {"head": "7d4ab1c", "changed": ["ivr/queue.py"]}
    text = report.render(results)
    assert "It never had to in this run: the ivr under test starts the music" in text
    assert "commit `7d4ab1c` with uncommitted changes to `ivr/queue.py`" in text


def test_the_bench_yaml_keeps_the_demo_trunk_and_gets_its_own_rtp_ports(
    tmp_path: Path,
) -> None:
    path = stack.write_config(stack.bench_agents(2), 0.3, var=tmp_path)
    cfg = config.load(path)
    trunk = next(t for t in cfg.trunks if t.id == stack.TRUNK)
    assert sipload.TRUNK_IP in trunk.match or any(
        m.startswith(sipload.TRUNK_IP) for m in trunk.match)
    assert cfg.system.rtp_ports == (21000, 23999)
    assert cfg.system.sip_port == stack.PORTS["sip_port"]
    files = render.render(cfg, AsteriskDirs(base="/srv/x", modules="/m"),
                          Secrets("ari", "p", "ami", "s", phones={}),
                          extra=stack.appqueue_extra(stack.bench_agents(2), "s3cret", 1,
                                                     cfg.queues[stack.QUEUE],
                                                     render.trunk_context(trunk)))
    ext = files["extensions.conf"]
    context = render.trunk_context(trunk)
    # The trunk's own context sends 12345 to the hotline ...
    own = ext.split(f"[{context}]")[1].split("\n[")[0]
    assert "Goto(hotline-inbound,12345,1)" in own
    # ... and the bench adds app_queue's number to the same context.
    added = ext.rsplit(f"[{context}]", 1)[1]
    assert f"exten => {stack.APPQ_NUMBER},1,Goto({stack.APPQ_CONTEXT},{stack.APPQ_NUMBER},1)" \
        in added
