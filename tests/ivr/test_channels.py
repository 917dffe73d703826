"""Tests for ivr.channels: each call's flow waits on its own channel's events, in order."""

from __future__ import annotations

import asyncio

import pytest

from ivr.channels import ChannelGone, Inbox, Inboxes, hangup_reason


def dtmf(channel_id: str, digit: str) -> dict:
    return {"type": "ChannelDtmfReceived", "digit": digit, "channel": {"id": channel_id}}


def ended(channel_id: str, kind: str = "StasisEnd") -> dict:
    return {"type": kind, "channel": {"id": channel_id}}


def playback_finished(playback_id: str, target: str) -> dict:
    return {"type": "PlaybackFinished",
            "playback": {"id": playback_id, "target_uri": target, "state": "done"}}


async def test_inbox_collects_dtmf_digits() -> None:
    """Keys the caller presses are kept in order until the flow takes them."""
    box = Inbox()
    for d in "1380#":
        box.put(dtmf("c1", d))
    assert box.take_digits() == "1380#"
    assert box.take_digits() == ""
    box.put(dtmf("c1", "2"))
    assert box.take_digits() == "2"


async def test_inbox_next_returns_events_in_order() -> None:
    """The flow sees its channel's events in the order ARI sent them."""
    box = Inbox()
    box.put(dtmf("c1", "1"))
    box.put(dtmf("c1", "2"))
    first = await box.next(timeout=1)
    second = await box.next(timeout=1)
    assert first is not None and first["digit"] == "1"
    assert second is not None and second["digit"] == "2"


async def test_inbox_next_returns_none_on_timeout() -> None:
    """Waiting for a key that never comes ends with None (then the menu default applies)."""
    box = Inbox()
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await box.next(timeout=0.05) is None
    assert loop.time() - started < 1


async def test_inbox_next_wakes_up_on_a_later_event() -> None:
    """A flow already waiting gets an event put while it waits."""
    box = Inbox()
    waiter = asyncio.create_task(box.next(timeout=2))
    await asyncio.sleep(0)
    box.put(dtmf("c1", "5"))
    event = await asyncio.wait_for(waiter, 2)
    assert event is not None and event["digit"] == "5"


@pytest.mark.parametrize("kind", ["StasisEnd", "ChannelDestroyed", "ChannelHangupRequest"])
async def test_inbox_raises_channel_gone_after_hangup(kind: str) -> None:
    """Once the caller hangs up, waiting raises ChannelGone, now and on every later wait."""
    box = Inbox()
    box.put(ended("c1", kind))
    assert box.gone
    with pytest.raises(ChannelGone):
        await box.next(timeout=0.5)
    with pytest.raises(ChannelGone):
        await box.next(timeout=0.5)


async def test_inbox_delivers_events_before_the_hangup() -> None:
    """Keys pressed just before hanging up are still delivered before ChannelGone."""
    box = Inbox()
    box.put(dtmf("c1", "3"))
    box.put(ended("c1"))
    event = await box.next(timeout=0.5)
    assert event is not None and event["digit"] == "3"
    with pytest.raises(ChannelGone):
        await box.next(timeout=0.5)


async def test_inbox_waiter_is_woken_by_hangup() -> None:
    """A flow waiting (without timeout) is released by the hang-up, not left hanging."""
    box = Inbox()
    waiter = asyncio.create_task(box.next(timeout=None))
    await asyncio.sleep(0)
    box.put(ended("c1", "ChannelDestroyed"))
    with pytest.raises(ChannelGone):
        await asyncio.wait_for(waiter, 2)


async def test_inboxes_route_channel_events_to_their_inbox() -> None:
    """Events of two simultaneous calls do not mix."""
    boxes = Inboxes()
    a, b = boxes.open("chan-a"), boxes.open("chan-b")
    boxes.route(dtmf("chan-a", "1"))
    boxes.route(dtmf("chan-b", "9"))
    boxes.route(dtmf("chan-a", "2"))
    assert a.take_digits() == "12"
    assert b.take_digits() == "9"
    boxes.route(ended("chan-b"))
    assert b.gone and not a.gone


async def test_inboxes_open_returns_same_inbox() -> None:
    """Opening a channel twice gives the same inbox (no events lost to a second one)."""
    boxes = Inboxes()
    assert boxes.open("c1") is boxes.open("c1")


async def test_inboxes_route_playback_finished_by_target_uri() -> None:
    """PlaybackFinished (which has no 'channel') reaches the channel it played on."""
    boxes = Inboxes()
    a, b = boxes.open("chan-a"), boxes.open("chan-b")
    boxes.route(playback_finished("pb-1", "channel:chan-b"))
    assert a.queue.empty()
    event = await b.next(timeout=0.5)
    assert event is not None and event["playback"]["id"] == "pb-1"


async def test_inboxes_ignore_unknown_channels_and_bridges() -> None:
    """Events for channels without an inbox, bridge playbacks and channel-less events
    are dropped without error."""
    boxes = Inboxes()
    a = boxes.open("chan-a")
    boxes.route(dtmf("someone-else", "1"))
    boxes.route(playback_finished("pb-2", "bridge:chan-a"))
    boxes.route(playback_finished("pb-3", "channel:nobody"))
    boxes.route({"type": "BridgeCreated", "bridge": {"id": "br"}})
    boxes.route({"type": "PlaybackFinished", "playback": {"id": "pb-4"}})
    assert a.queue.empty()


async def test_inboxes_close_stops_routing() -> None:
    """After a call's flow is done, its channel's late events go nowhere."""
    boxes = Inboxes()
    a = boxes.open("chan-a")
    boxes.close("chan-a")
    boxes.close("chan-a")  # closing twice is harmless
    boxes.route(dtmf("chan-a", "1"))
    assert a.queue.empty()
    assert boxes.open("chan-a") is not a


def hangup_request(channel_id: str, **fields: object) -> dict:
    return {"type": "ChannelHangupRequest", "channel": {"id": channel_id}, **fields}


@pytest.mark.parametrize("fields, reason", [
    # What Asterisk 22 sends for a carrier's leg (seen in tests/ivr/test_trunk_bad_input_e2e):
    ({"cause": 16}, "caller_hangup"),  # their BYE
    ({}, "caller_hangup"),  # a BYE with no cause at all
    ({"cause": 1, "soft": True}, "rtp_timeout"),  # res_pjsip_sdp_rtp: no RTP for rtp_timeout
    ({"cause": 18, "tech_cause": 408}, "session_expired"),  # session timer, no refresh
    ({"cause": 32, "soft": True}, "caller_hangup"),  # hung up through ARI (us)
])
def test_why_a_callers_line_ended(fields: dict, reason: str) -> None:
    assert hangup_reason(hangup_request("c1", **fields)) == reason
    assert hangup_reason(None) == "caller_hangup"


async def test_inbox_keeps_the_first_hangup_request() -> None:
    """Asterisk may send two (the RTP timeout's, then the bridge's); the first says why."""
    box = Inbox()
    box.put(hangup_request("c1", cause=1, soft=True))
    box.put(hangup_request("c1", cause=16, soft=True))
    assert box.hangup is not None and hangup_reason(box.hangup) == "rtp_timeout"
    with pytest.raises(ChannelGone):
        await box.next(timeout=0.1)
