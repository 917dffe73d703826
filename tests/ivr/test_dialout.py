"""Calls out: the routes a number gets over the trunks, failover, and the worklist's reason."""

from __future__ import annotations

import pytest

from ivr import dialout
from tests.dialplan.test_trunks import load


def test_routes_follow_the_trunk_order_and_each_trunks_local_format() -> None:
    cfg = load()
    # A local landline: unicom wants the area code, telecom does not.
    assert [r.endpoint for r in dialout.routes(cfg, "63160000")] == [
        "PJSIP/037763160000@trunk-unicom", "PJSIP/63160000@trunk-telecom"]
    assert [r.endpoint for r in dialout.routes(cfg, "+86 138-0013-8000")] == [
        "PJSIP/13800138000@trunk-unicom", "PJSIP/13800138000@trunk-telecom"]
    assert dialout.routes(cfg, "110")[0].endpoint == "PJSIP/110@trunk-unicom"  # allowed


@pytest.mark.parametrize("number", [
    "0044207946000", "+442079460000", "13800138000&x", "1380013800A", "138/0013", "a@b",
    "13800138000,1", "120", "16800168000", "", "*#",
])
def test_no_route_is_built_from_a_number_the_plan_refuses(number: str) -> None:
    assert dialout.routes(load(), number) == ()


@pytest.mark.parametrize("state, cause, over", [
    ("Down", 34, True),  # 503 from the carrier: congested
    ("Down", 18, True),  # no reply at all from the carrier
    ("Down", 17, False),  # the citizen is busy: not the trunk's fault
    ("Ringing", 18, False),  # it rang: the citizen did not answer
    ("Down", 21, False),  # refused
])
def test_only_a_trunk_fault_before_ringing_fails_over(state: str, cause: int,
                                                       over: bool) -> None:
    event = {"type": "ChannelDestroyed", "cause": cause, "channel": {"state": state}}
    assert dialout.fails_over(event) is over


def test_the_worklist_is_told_why() -> None:
    assert dialout.end_reason({"cause": 17}) == "callback_busy"
    assert dialout.end_reason({"cause": 34}) == "callback_trunk_failed"
    assert dialout.end_reason({"cause": 19}) == "callback_no_answer"
    assert dialout.end_reason(None) == "callback_no_answer"
