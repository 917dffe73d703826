"""Per-channel event inboxes, so a call's flow can wait for its own events in order."""

from __future__ import annotations

import asyncio
from typing import Any

from ivr.ari import Event


class ChannelGone(Exception):
    """The channel hung up or left the application while a flow was waiting on it."""


DTMF = "0123456789*#ABCD"

# Why a caller's line ended, when it was not their hang-up: it died without a BYE.
RTP_TIMEOUT = "rtp_timeout"  # no RTP for the trunk's rtp_timeout seconds
SESSION_EXPIRED = "session_expired"  # the carrier let the session timer (RFC 4028) lapse
LINE_LOST = (RTP_TIMEOUT, SESSION_EXPIRED)
# Asterisk's soft hang-up of kind AST_SOFTHANGUP_DEV: on a carrier's leg, only
# res_pjsip_sdp_rtp's RTP timeout sends it ("Disconnecting channel ... for lack of audio
# RTP activity"); ChannelHangupRequest carries that kind as its cause.
SOFTHANGUP_DEV = 1
# Q.850 18, "no user responding", from SIP 408: pjsip ends a session whose timer expired
# without a refresh (or whose refresh went unanswered) with 408.
NO_USER_RESPONSE = 18


def hangup_reason(request: Event | None, default: str = "caller_hangup") -> str:
    """Why a caller's channel ended, from the first ChannelHangupRequest Asterisk sent for
    it: the RTP timeout, the session timer, or (anything else) `default`."""
    if request is None:
        return default
    cause = request.get("cause")
    if request.get("soft") and cause == SOFTHANGUP_DEV:
        return RTP_TIMEOUT
    if not request.get("soft") and (request.get("tech_cause") == 408
                                    or cause == NO_USER_RESPONSE):
        return SESSION_EXPIRED
    return default


class Inbox:
    """The events of one channel, and the DTMF digits it has sent so far."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.digits: list[str] = []
        self.gone = False
        self.hangup: Event | None = None  # the first ChannelHangupRequest (hangup_reason)

    def put(self, event: Event) -> None:
        if event.get("type") == "ChannelDtmfReceived":
            digit = event.get("digit")
            # One key per event; anything else is not a key (an empty one broke menus).
            if isinstance(digit, str) and len(digit) == 1 and digit in DTMF:
                self.digits.append(digit)
        if event.get("type") == "ChannelHangupRequest" and self.hangup is None:
            self.hangup = event
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
