"""The benchmark harness's pure parts: percentiles and the report (no services)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench import report, stack
from bench.stats import percentile, ratio, summary
from dialplan import config, render
from dialplan.render import AsteriskDirs, Secrets


def test_percentile_interpolates_between_ranks() -> None:
    values = [10.0, 20.0, 30.0, 40.0]
    assert percentile(values, 0) == 10.0
    assert percentile(values, 100) == 40.0
    assert percentile(values, 50) == pytest.approx(25.0)
    assert percentile(values, 99) == pytest.approx(39.7)
    assert percentile([5.0], 99) == 5.0
    assert percentile(list(range(1, 101)), 50) == pytest.approx(50.5)


def test_percentile_ignores_order_and_refuses_bad_p() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summary_and_ratio() -> None:
    s = summary([1.0, 2.0, 3.0, float("nan")])
    assert s["n"] == 3 and s["p50"] == 2.0 and s["max"] == 3.0 and s["mean"] == 2.0
    assert summary([])["n"] == 0 and math.isnan(summary([])["p99"])
    assert ratio(1.0, 4.0) == 0.25
    assert math.isnan(ratio(1.0, 0.0)) and math.isnan(ratio(math.nan, 1.0))


def _phase(cpu: dict[str, float], seconds: float = 10.0, **extra: object) -> dict[str, object]:
    return {"phase_seconds": seconds, "cpu": cpu, "busy": 0.5, "load": "1.0", **extra}


def _results(size: int = 1000, ring_ms: float = 30.0, lost: int = 0) -> dict[str, object]:
    samples = []
    for queue, ms in (("hotline", ring_ms), ("app_queue", 500.0)):
        for i in range(100):
            for mode in ("ready", "hangup"):
                t = 1000.0 + i
                samples.append({"queue": queue, "size": size, "mode": mode, "login": "b1",
                                "t_before": t, "t_after": t + 0.002,
                                "created": t + ms / 1000 - 0.001, "ringing": t + ms / 1000,
                                "claim": t + 0.005 if queue == "hotline" else None})
    cpu = {"asterisk": 1.0, "ivr": 0.5, "postgres": 0.4, "desk": 0.1, "harness": 0.2}
    mem = {"asterisk": 100.0, "ivr": 50.0, "postgres": 200.0, "desk": 50.0, "harness": 40.0}
    fill = {"calls": size, "placed": size, "full": True, "waiting": size, "admitted": size,
            "admitted_per_s": 20.0, "admission_ms": summary([1150.0, 1160.0]),
            "memory": mem, **_phase(cpu)}
    per = {q: {"fill": fill, "hold": _phase(cpu, 10.0),
               "measure": {"dispatches": 200, "waiting_after": size, **_phase(cpu, 25.0)}}
           for q in ("hotline", "app_queue")}
    adm = {"offered": 1200, "rate": 20.0, "seconds": 60.0, "hold": 10.0,
           "failed_originates": 0, "admitted": 1200 - lost, "lost": lost,
           "admitted_per_s": 20.0, "admission_ms": summary([1150.0, 1190.0]),
           "waiting_at_end": 200, "memory": mem, **_phase(cpu, 70.0)}
    return {"sizes": {str(size): per}, "admission": {"hotline": adm, "app_queue": adm},
            "samples": samples, "timeouts": [], "notes": [], "settings": {"agents": 10},
            "machine": {"nproc": 2}, "versions": {}, "command": "python -m bench.run"}


def test_report_renders_side_by_side_with_verdicts() -> None:
    text = report.render(_results())
    assert "| 1,000 | agent made ready | 100 / 100 | 30.0 ms |" in text
    assert "0.060×" in text  # 30 ms / 500 ms
    verdicts = {t: v for t, _, v in report.verdicts(_results())}
    assert verdicts["p99 dispatch ≤ 50 ms with 1,000 waiting"] == "met"
    assert verdicts["20 new calls/s for 60 s, zero lost"] == "met"


def test_report_says_missed_and_not_measured() -> None:
    slow = {t: v for t, _, v in report.verdicts(_results(ring_ms=80.0, lost=3))}
    assert slow["p99 dispatch ≤ 50 ms with 1,000 waiting"] == "**missed**"
    assert slow["20 new calls/s for 60 s, zero lost"] == "**missed**"
    small = {t: v for t, _, v in report.verdicts(_results(size=100))}
    assert small["p99 dispatch ≤ 50 ms with 1,000 waiting"].startswith("not measured")


def test_report_adds_a_second_run_in_its_own_section() -> None:
    second = _results(size=100)
    second["command"] = "python -m bench.run --no-announcements"
    text = report.render(_results(), [second])
    assert "## The same, without announcements" in text
    assert "python -m bench.run --no-announcements" in text
    assert "in its own section, in the second run" in text


def test_bench_render_extras_leave_the_production_files_alone() -> None:
    shipped = Path(__file__).resolve().parents[2] / "config" / "hotline.yaml"
    cfg = config.load(shipped)
    dirs = AsteriskDirs(base="/srv/x", modules="/usr/lib/asterisk/modules")
    secrets = Secrets("ari", "ari-pass", "ami", "ami-secret", phones={"8101": "generated-x1"})
    plain = render.render(cfg, dirs, secrets)
    assert render.render(cfg, dirs, secrets, extra=None) == plain
    agents = stack.bench_agents(3)
    extra = stack.appqueue_extra(agents, "s3cret", 1, cfg.queues["duty"])
    with_bench = render.render(cfg, dirs, secrets, extra=extra)
    for name, body in plain.items():
        assert with_bench[name].startswith(body)  # only appended to
    queues = with_bench["queues.conf"]
    assert queues.count("member => Local/") == 3
    assert "member => Local/7001@hotline-virtual-phone/n,0,bench001" in queues
    assert "retry = 1" in queues and "wrapuptime = 0" in queues
    duty = cfg.queues["duty"]
    if duty.announce_every:
        assert f"announce-frequency = {duty.announce_every}" in queues
    manager = with_bench["manager.conf"]
    assert "[hotline-bench]" in manager and "write = agent" in manager
    # The production AMI user keeps its narrow rights.
    assert plain["manager.conf"] in manager and "write = system,reporting" in plain["manager.conf"]
    assert "Queue(benchq)" in with_bench["extensions.conf"]
    assert "benchq" not in plain["queues.conf"] and "hotline-bench" not in plain["manager.conf"]
