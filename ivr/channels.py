"""Per-channel event inboxes, so a call's flow can wait for its own events in order."""

from __future__ import annotations

import asyncio
from typing import Any

from ivr.ari import Event


class ChannelGone(Exception):
    """The channel hung up or left the application while a flow was waiting on it."""


DTMF = "0123456789*#ABCD"


class Inbox:
    """The events of one channel, and the DTMF digits it has sent so far."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.digits: list[str] = []
        self.gone = False

    def put(self, event: Event) -> None:
        if event.get("type") == "ChannelDtmfReceived":
            digit = event.get("digit")
            # One key per event; anything else is not a key (an empty one broke menus).
            if isinstance(digit, str) and len(digit) == 1 and digit in DTMF:
                self.digits.append(digit)
        if event.get("type") in ("StasisEnd", "ChannelDestroyed", "ChannelHangupRequest"):
            self.gone = True
        self.queue.put_nowait(event)

    async def next(self, timeout: float | None) -> Event | None:
        """The next event, None on timeout; ChannelGone once the channel has left."""
        if self.gone and self.queue.empty():
            raise ChannelGone()
        try:
            event = await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None
        if event.get("type") in ("StasisEnd", "ChannelDestroyed", "ChannelHangupRequest"):
            raise ChannelGone()
        return event

    def take_digits(self) -> str:
        out = "".join(self.digits)
        self.digits.clear()
        return out


class Inboxes:
    """Routes ARI events to the inbox of the channel they concern."""

    def __init__(self) -> None:
        self._boxes: dict[str, Inbox] = {}

    def open(self, channel_id: str) -> Inbox:
        box = self._boxes.get(channel_id)
        if box is None:
            box = self._boxes[channel_id] = Inbox()
        return box

    def has(self, channel_id: str) -> bool:
        """Whether a flow of this process is following the channel."""
        return channel_id in self._boxes

    def close(self, channel_id: str) -> None:
        self._boxes.pop(channel_id, None)

    def route(self, event: dict[str, Any]) -> None:
        channel_id = None
        if "channel" in event:
            channel = event["channel"]
            channel_id = channel.get("id") if isinstance(channel, dict) else None
        else:
            for key in ("playback", "recording"):
                about = event.get(key)
                target = str(about.get("target_uri", "")) if isinstance(about, dict) else ""
                if target.startswith("channel:"):
                    channel_id = target.split(":", 1)[1]
        if isinstance(channel_id, str) and channel_id in self._boxes:
            self._boxes[channel_id].put(event)
