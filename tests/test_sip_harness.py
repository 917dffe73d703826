"""The SIPp harness (tests/sip.py) against itself, without Asterisk: the citizen scenario
from 127.0.0.2 calls the far-end scenario on 127.0.0.4, over real SIP and RTP."""

from __future__ import annotations

import time
from pathlib import Path

from tests.sip import CallSpec, citizen_call, citizen_calls, far_end, free_port

CARRIER = "127.0.0.2"
FAR = "127.0.0.4"


async def test_calls_reach_the_far_end_with_their_numbers_and_rtp(tmp_path: Path) -> None:
    far = await far_end(FAR, free_port(FAR), answer_after=0.2, hold=30, rtp_echo=True,
                        log_dir=tmp_path)
    async with far:
        specs = [
            CallSpec(number="12345", caller="13800138000", pai="+8613800138000",
                     digits="21", digits_after=0.4, digit_gap=0.1, hold=2.0),
            CallSpec(number="63160000", caller="13900139000", anonymous=True, privacy=True,
                     hold=1.5),
        ]
        calls = await citizen_calls(far.address, specs, local_ip=CARRIER, rate=20,
                                    log_dir=tmp_path)
        async with calls:
            await calls.answered(2, timeout=5)
            # RTP arrives at the far end (it echoes and counts what it receives).
            echoed = await far.rtp_echoed()
            result = await calls.wait(timeout=10)
        far_result = await far.stop()

    result.check()
    assert result.created == result.successful == 2
    assert result.final_codes == {200: 2}
    assert len(set(result.call_ids)) == 2
    assert result.rtp_packets_sent, result.describe()
    assert echoed, far_result.describe()

    seen = {c.dialled: c for c in far.calls()}
    assert set(seen) == {"12345", "63160000"}
    first, second = seen["12345"], seen["63160000"]
    assert first.as_dict() == {"dialled": "12345", "caller_id": "13800138000",
                               "pai": "+8613800138000", "privacy": "none",
                               "outcome": "ended"}
    assert first.pai_header == f"<sip:+8613800138000@{CARRIER}>"
    assert second.caller_id == "anonymous" and second.pai is None
    assert second.privacy == "id"
    # Both calls hung up by the citizen's side (SIPp's BYE), seen as such by the far end.
    assert {c.ended_by for c in far.calls()} == {"remote"}
    assert sorted(c.call_id for c in far.calls()) == sorted(result.call_ids)

    by_number = {c.call_id: c for c in result.calls}
    pressed = by_number[first.call_id]
    assert [key for _, key in pressed.digits] == ["2", "1"]
    assert pressed.answered_at is not None and pressed.ended_by == "local"
    assert 0.3 < pressed.digits[0][0] - pressed.answered_at < 1.0
    assert pressed.ended_at is not None
    assert 1.8 < pressed.ended_at - pressed.answered_at < 3.0


async def test_refused_call_reports_the_final_code(tmp_path: Path) -> None:
    far = await far_end(FAR, free_port(FAR), answer_after=0.1, reject=486, log_dir=tmp_path)
    async with far:
        refused = await (await citizen_call(far.address, "12345", refused=True,
                                            log_dir=tmp_path)).wait(timeout=10)
        # The same refusal is a failure for a call that expects an answer.
        failed = await (await citizen_call(far.address, "12345", hold=1,
                                           log_dir=tmp_path)).wait(timeout=10)
        outcomes = [c.outcome for c in far.calls()]

    refused.check()
    assert refused.final_codes == {486: 1}
    assert not failed.ok
    assert failed.failed == 1 and failed.final_codes == {486: 1}
    assert outcomes == ["rejected", "rejected"]


async def test_a_call_nobody_answers_fails_within_its_bound(tmp_path: Path) -> None:
    started = time.monotonic()
    result = await (await citizen_call(f"{FAR}:{free_port(FAR)}", "12345", answer_timeout=1.0,
                                       log_dir=tmp_path)).wait(timeout=10)
    assert time.monotonic() - started < 5
    assert not result.ok and not result.timed_out
    assert result.failed == 1 and result.final_codes == {}
    assert result.failures == {"TimeoutOnRecv": 1}, result.describe()


async def test_a_ringing_far_end_sees_the_cancel(tmp_path: Path) -> None:
    far = await far_end(FAR, free_port(FAR), answer_after=None, log_dir=tmp_path)
    async with far:
        result = await (await citizen_call(far.address, "12345", answer_timeout=1.0,
                                           log_dir=tmp_path)).wait(timeout=10)
        [call] = await far.wait_for_calls(1, outcome="cancelled", timeout=8)
    assert not result.ok and result.calls[0].codes == [180]
    assert call.dialled == "12345"
