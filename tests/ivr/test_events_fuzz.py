"""Whatever Asterisk (or something pretending to be it) sends, call control keeps going:
ARI WebSocket messages that are not JSON, not objects, or objects of the wrong shapes are
dispatched without an exception escaping, and the events that are right still reach their
call; DTMF digits of any shape give the caller's menu, the callback-number question and
the queue's callback key only real keys; FastAGI result lines of any shape end the
progress lookup in order, never with an exception."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from panoramisk.utils import parse_agi_result

from dialplan import config
from dialplan.config import PROGRESS_SERVICE
from ivr import calls, progress
from ivr.ari import Ari
from ivr.channels import DTMF, ChannelGone, Inbox, Inboxes
from ivr.queue import LiveCall, QueueService

ROOT = Path(__file__).resolve().parents[2]
CFG = config.load(ROOT / "config" / "hotline.yaml")
FUZZ = settings(max_examples=80, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

TYPES = ["ChannelDtmfReceived", "StasisStart", "StasisEnd", "ChannelDestroyed",
         "ChannelHangupRequest", "PlaybackFinished", "RecordingFinished", "ChannelStateChange"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=10)
digits = json_values | st.text(max_size=3) | st.sampled_from(list(DTMF) + ["", "12", "x"])
channels = st.sampled_from(["c1", "c2"]).map(lambda c: {"id": c}) | json_values
events = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES) | json_values},
    optional={"channel": channels, "digit": digits, "args": json_values,
              "playback": st.fixed_dictionaries({}, optional={
                  "id": json_values, "target_uri": st.sampled_from(["channel:c1", "x"])})
              | json_values,
              "recording": json_values})
raw_messages = (events.map(json.dumps) | json_values.map(json.dumps) | st.text(max_size=50)
                | st.binary(max_size=50) | st.integers(1, 20000).map(lambda n: "[" * n))


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 10))


@FUZZ
@given(messages=st.lists(raw_messages, max_size=8))
def test_ari_dispatch_survives_anything_and_still_routes_good_events(
        messages: list[str | bytes], caplog: pytest.LogCaptureFixture) -> None:
    async def go() -> None:
        ari = Ari("http://127.0.0.1:1", "u", "p", "hotline")
        inboxes = Inboxes()
        box = inboxes.open("c1")
        seen: list[dict[str, Any]] = []

        async def route(event: dict[str, Any]) -> None:
            inboxes.route(event)

        async def dtmf(event: dict[str, Any]) -> None:
            seen.append(event)

        ari.on("*", route)
        ari.on("ChannelDtmfReceived", dtmf)
        for raw in messages:
            await ari._dispatch(raw)  # type: ignore[arg-type]
        assert all(d in DTMF and len(d) == 1 for d in box.digits), box.digits
        box.take_digits()
        seen.clear()
        await ari._dispatch(json.dumps({"type": "ChannelDtmfReceived", "digit": "5",
                                        "channel": {"id": "c1"}}))
        assert box.take_digits() == "5" and len(seen) == 1

    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="ivr.ari"):
        run(go())
    # Routing never failed (a failing handler is logged, and swallowed, by _safe).
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@FUZZ
@given(st.lists(digits, max_size=10))
def test_an_inbox_keeps_only_real_keys(keys: list[Any]) -> None:
    box = Inbox()
    for key in keys:
        box.put({"type": "ChannelDtmfReceived", "digit": key, "channel": {"id": "c1"}})
    taken = box.take_digits()
    assert taken == "".join(k for k in keys if isinstance(k, str) and len(k) == 1 and k in DTMF)


class FakeChannel:
    id = "c1"
    json: dict[str, Any] = {}


def _flow() -> calls.CallerFlow:
    async def nothing(*args: Any, **kwargs: Any) -> None:
        return None

    flow = calls.CallerFlow(CFG, None, None, nothing, nothing)  # type: ignore[arg-type]
    flow._play = nothing  # type: ignore[method-assign]
    return flow


@FUZZ
@given(st.lists(events, max_size=6))
def test_the_menu_answers_any_keys_with_a_configured_service(feed: list[dict[str, Any]]) -> None:
    number = CFG.number("63160000")
    assert number is not None and number.menu is not None
    number = dataclasses.replace(number, menu=dataclasses.replace(number.menu, timeout=0.01))
    box = Inbox()
    for event in feed:
        box.put(event)

    async def go() -> tuple[str, int] | None:
        try:
            return await _flow()._choose_service(FakeChannel(), box,  # type: ignore[arg-type]
                                                 number)
        except ChannelGone:
            return None  # the caller left: the flow ends the call

    chosen = run(go())
    if chosen is not None:
        service, priority = chosen
        assert service in CFG.services or service == PROGRESS_SERVICE
        assert isinstance(priority, int)


@FUZZ
@given(st.lists(events, max_size=8))
def test_the_callback_number_is_digits_or_none(feed: list[dict[str, Any]]) -> None:
    box = Inbox()

    async def go() -> str | None:
        async def keys(*args: Any, **kwargs: Any) -> None:
            for event in feed:  # the caller keys while the question plays
                box.put(event)

        flow = _flow()
        flow._play = keys  # type: ignore[method-assign]
        try:
            return await flow._ask_callback(FakeChannel(), box)  # type: ignore[arg-type]
        except ChannelGone:
            return None

    with mock.patch.object(calls, "CALLBACK_DIGIT_TIMEOUT", 0.01):
        number = run(go())
    assert number is None or (number.isascii() and number.isdigit())


@FUZZ
@given(digits)
def test_a_waiting_callers_key_offers_a_callback_only_for_the_callback_key(key: Any) -> None:
    queue = QueueService(CFG, None, None, Inboxes(), None, None)  # type: ignore[arg-type]
    spawned: list[Any] = []
    queue._spawn = lambda coro: (spawned.append(coro), coro.close())  # type: ignore
    live = LiveCall(call_id=__import__("uuid").uuid4(), caller_channel="c1", queue="duty")
    queue.by_caller["c1"] = live
    # As the service passes it on (ivr/service.py on_any).
    run(queue.caller_key("c1", str(key if key is not None else "")))
    wanted = CFG.queues["duty"].callback_key
    assert bool(spawned) == (bool(wanted) and str(key) == wanted)


AGI_LINES = st.one_of(
    st.text(max_size=30),
    st.builds("200 result={}{}".format,
              st.text(alphabet="0123456789-²٣x", min_size=0, max_size=12),
              st.sampled_from(["", " (timeout)", " (hangup)", " endpos=1234"])),
    st.sampled_from(["200 result=0", "200 result=-1", "200 result=49", "200 result=35",
                     "200 result=99999999", "200 result=178", "510 Invalid or unknown command",
                     "520-Invalid command syntax.", "HANGUP", "100 result=0 Trying...", ""]),
)


class FakeAgi:
    """A FastAGI request whose answers are the given result lines, parsed as panoramisk
    parses Asterisk's (a line it cannot parse raises, as on a closed socket)."""

    def __init__(self, lines: list[str]):
        self.lines = list(lines)

    async def send_command(self, command: str) -> dict[str, Any]:
        line = self.lines.pop(0) if self.lines else "HANGUP"
        result: dict[str, Any] = parse_agi_result(line)
        return result


class FakePool:
    def acquire(self) -> FakePool:
        return self

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


@FUZZ
@given(st.lists(AGI_LINES, max_size=25))
def test_the_progress_lookup_reads_only_digits_and_never_crashes(lines: list[str]) -> None:
    asked: list[tuple[str, str]] = []

    async def lookup(conn: Any, case_no: str, code: str, now: Any, caller: Any) -> None:
        asked.append((case_no, code))
        return None

    async def say(text: str) -> str | None:
        return None

    line = progress.ProgressLine(FakePool(), say, lookup)
    run(line.handle(FakeAgi(lines)))
    for case_no, code in asked:
        assert case_no.isascii() and case_no.isdigit() and code.isascii() and code.isdigit()


@pytest.mark.parametrize("line", ["200 result=99999999", "200 result=178", "200 result=٣"])
def test_agi_key_codes_that_used_to_crash(line: str) -> None:
    agi = progress.AgiSession(FakeAgi([line]))
    assert run(agi.stream("x", escape="0123456789#")) == ""
