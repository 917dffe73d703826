"""The queue's holding bridges and a waiting caller's departure, without Asterisk: the
music comes back to an emptied holding bridge, and a line that died is told from a
hang-up (the end-to-end side: tests/ivr/test_trunk_bad_input_e2e.py)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from dialplan import config
from ivr import queue as queue_module
from ivr.channels import Inboxes
from ivr.queue import LiveCall, QueueService, holding_bridge_id

ROOT = Path(__file__).resolve().parents[2]
CFG = config.load(ROOT / "config" / "hotline.yaml")


def service() -> tuple[QueueService, Any]:
    ari = mock.Mock()
    ari.bridge.return_value.start_moh = mock.AsyncMock()
    return QueueService(CFG, ari, mock.Mock(), Inboxes(), mock.Mock(), mock.Mock()), ari


def left(bridge_id: str, channels: list[str]) -> dict[str, Any]:
    return {"type": "ChannelLeftBridge", "channel": {"id": "c1"},
            "bridge": {"id": bridge_id, "bridge_type": "holding", "channels": channels}}


@pytest.fixture(autouse=True)
def no_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queue_module, "MUSIC_RESTART_DELAY", 0)


async def settle(queue: QueueService) -> None:
    await asyncio.gather(*queue._tasks)


async def test_an_emptied_holding_bridge_gets_its_music_back() -> None:
    """Asterisk's music-on-hold channel leaves a holding bridge with the last caller; the
    next caller must not wait in silence."""
    queue, ari = service()
    duty = CFG.queues["duty"]
    await queue.left_bridge(left(holding_bridge_id("duty"), []))
    await settle(queue)
    ari.bridge.assert_called_once_with(holding_bridge_id("duty"))
    ari.bridge.return_value.start_moh.assert_awaited_once_with(duty.music_on_hold)


async def test_the_music_channel_asterisk_lists_does_not_count_as_a_caller() -> None:
    """Once started again, the music channel is among the bridge's channels."""
    queue, ari = service()
    await queue.left_bridge(left(holding_bridge_id("duty"), ["1796452919.32"]))
    await settle(queue)
    ari.bridge.return_value.start_moh.assert_awaited_once()


async def test_music_is_left_alone_while_callers_wait_or_in_other_bridges() -> None:
    queue, ari = service()
    queue.track(LiveCall(uuid.uuid4(), "c2", "duty"))
    await queue.left_bridge(left(holding_bridge_id("duty"), ["c2"]))  # c2 still waits
    await queue.left_bridge(left(f"hotline-call-{uuid.uuid4()}", []))  # a conversation
    await queue.left_bridge({"type": "ChannelLeftBridge", "bridge": ["not", "a", "bridge"]})
    await settle(queue)
    ari.bridge.return_value.start_moh.assert_not_awaited()


def test_a_waiting_callers_first_hangup_request_is_kept_until_they_leave() -> None:
    queue, _ = service()
    queue.track(LiveCall(uuid.uuid4(), "c1", "duty"))
    queue.caller_hangup_request({"type": "ChannelHangupRequest", "channel": {"id": "c1"},
                                 "cause": 1, "soft": True})
    queue.caller_hangup_request({"type": "ChannelHangupRequest", "channel": {"id": "c1"},
                                 "cause": 16, "soft": True})
    queue.caller_hangup_request({"type": "ChannelHangupRequest", "channel": {"id": "c9"}})
    queue.caller_hangup_request({"type": "ChannelHangupRequest", "channel": ["x"]})
    assert list(queue.hangup_requests) == ["c1"]
    assert queue.hangup_requests["c1"]["cause"] == 1
