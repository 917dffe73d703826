"""The harness's side of ARI: place and hang up calls, and watch agents' phones ring.

The observer is an ARI application of its own (not the hotline's) subscribed to every
channel (`subscribeAll=true`). It keeps, per agent phone, each pair of Local channels
dialled to it with Asterisk's own timestamps of the events (ChannelCreated, Ringing, Up,
entered a bridge, destroyed), so dispatch latency is measured outside the call-control
process and the same way for both queues.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp

from dialplan.render import VIRTUAL_PHONE_CONTEXT

log = logging.getLogger(__name__)

PHONE_LEG = re.compile(rf"^Local/(\d+)@{VIRTUAL_PHONE_CONTEXT}-([0-9a-f]+);([12])$")


def basic_auth(user: str, password: str) -> str:
    """An HTTP Basic Authorization header value."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def ari_time(stamp: str) -> float:
    """An ARI event timestamp ('2025-05-06T15:11:00.123+0000') as epoch seconds."""
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


class AriRest:
    """The few REST calls the harness makes."""

    def __init__(self, url: str, user: str, password: str, limit: int = 8):
        self.base = url.rstrip("/") + "/ari"
        self._session = aiohttp.ClientSession(
            headers={"Authorization": basic_auth(user, password)},
            connector=aiohttp.TCPConnector(limit=limit), timeout=aiohttp.ClientTimeout(total=30))

    async def close(self) -> None:
        await self._session.close()

    async def request(self, method: str, path: str, **params: Any) -> tuple[int, Any]:
        body = params.pop("json_body", None)
        try:
            async with self._session.request(method, self.base + path, params=params,
                                             json=body) as r:
                text = await r.text()
                status = r.status
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            return 599, f"{type(e).__name__}: {e}"
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = text
        return status, data

    async def originate(self, endpoint: str, *, context: str, extension: str,
                        channel_id: str, other_id: str, caller_id: str,
                        variables: dict[str, str], timeout: int = 30) -> None:
        """Dial a Local channel; its far side runs `context,extension,1` once answered.
        Always ulaw on Local channels (else they negotiate a costly sample rate)."""
        status, data = await self.request(
            "POST", "/channels", endpoint=endpoint, context=context, extension=extension,
            priority="1", callerId=caller_id, timeout=str(timeout), formats="ulaw",
            channelId=channel_id, otherChannelId=other_id,
            json_body={"variables": variables})
        if status >= 300:
            raise RuntimeError(f"originate {endpoint} refused: {status} {data}")

    async def hangup(self, channel_id: str) -> bool:
        status, _ = await self.request("DELETE", f"/channels/{channel_id}")
        return status < 300

    async def rtp_statistics(self, channel_id: str) -> dict[str, Any] | None:
        """Asterisk's RTP counters of a channel (txcount, rxcount, ...), None if it has none."""
        status, data = await self.request("GET", f"/channels/{channel_id}/rtp_statistics")
        return dict(data) if status == 200 and isinstance(data, dict) else None

    async def channels(self) -> list[dict[str, Any]]:
        status, data = await self.request("GET", "/channels")
        return list(data) if status == 200 and isinstance(data, list) else []


@dataclass
class Pair:
    """The two Local channels of one call to an agent's phone (;1 dialled, ;2 the phone)."""

    phone: str
    base: str
    ids: dict[int, str] = field(default_factory=dict)
    created: float | None = None
    ringing: float | None = None
    up: float | None = None
    bridged: float | None = None
    gone: set[int] = field(default_factory=set)

    @property
    def ended(self) -> bool:
        return self.gone >= set(self.ids) and bool(self.ids)


class Observer:
    """Watches every channel through an ARI app of the harness's own."""

    def __init__(self, url: str, user: str, password: str, app: str = "bench-observer"):
        ws = url.replace("http://", "ws://").rstrip("/")
        self.ws_url = f"{ws}/ari/events?app={app}&subscribeAll=true"
        self.auth = {"Authorization": basic_auth(user, password)}
        self.pairs: dict[str, list[Pair]] = {}
        self.by_base: dict[str, Pair] = {}
        self.by_channel: dict[str, Pair] = {}
        self.queue_joined: dict[str, float] = {}  # app_queue caller id -> Queue() started
        self.events = 0
        self.playbacks = 0  # PlaybackStarted seen (the hotline's prompts and announcements)
        self.announcements = 0  # ... of them, those that are not the greeting
        self.greeting = "bench_hello"
        self.connected = asyncio.Event()
        self._cond = asyncio.Condition()
        self._session: aiohttp.ClientSession | None = None

    def count(self, phone: str) -> int:
        return len(self.pairs.get(phone, []))

    def pair(self, phone: str, index: int) -> Pair | None:
        found = self.pairs.get(phone, [])
        return found[index] if index < len(found) else None

    async def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until predicate() holds (re-checked at each observed event)."""
        async with self._cond:
            try:
                await asyncio.wait_for(self._cond.wait_for(predicate), timeout)
                return True
            except TimeoutError:
                return predicate()

    async def run(self) -> None:
        self._session = aiohttp.ClientSession(headers=self.auth)
        try:
            while True:
                try:
                    async with self._session.ws_connect(self.ws_url, heartbeat=20,
                                                        max_msg_size=64 * 1024 * 1024) as ws:
                        self.connected.set()
                        async for msg in ws:
                            if msg.type == aiohttp.WSMsgType.TEXT:
                                await self._handle(msg.data)
                            elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                                break
                except (aiohttp.ClientError, OSError) as e:
                    log.warning("observer: ARI events not reachable (%s)", e)
                self.connected.clear()
                await asyncio.sleep(0.5)
        finally:
            await self._session.close()

    async def _handle(self, raw: str) -> None:
        self.events += 1
        if '"type":"PlaybackStarted"' in raw:
            self.playbacks += 1
            media = str(json.loads(raw).get("playback", {}).get("media_uri", ""))
            if self.greeting not in media:
                self.announcements += 1
            return
        # Most events (callers' channels, holding bridges) are not looked at: skip them
        # before parsing, the holding bridge's events list every waiting caller.
        phone_event = VIRTUAL_PHONE_CONTEXT in raw
        queue_join = '"dialplan_app":"Queue"' in raw
        if not phone_event and not queue_join:
            return
        event = json.loads(raw)
        kind = event.get("type")
        channel = event.get("channel") or {}
        stamp = ari_time(event["timestamp"]) if "timestamp" in event else None
        if stamp is None:
            return
        if queue_join and kind == "ChannelDialplan":
            self.queue_joined.setdefault(channel.get("id", ""), stamp)
            await self._notify()
            return
        m = PHONE_LEG.match(channel.get("name", ""))
        if not m:
            return
        phone, half = m.group(1), int(m.group(3))
        base = f"{phone}-{m.group(2)}"
        pair = self.by_base.get(base)
        if pair is None:
            pair = Pair(phone, base)
            self.by_base[base] = pair
            self.pairs.setdefault(phone, []).append(pair)
        if half not in pair.ids:
            pair.ids[half] = channel["id"]
            self.by_channel[channel["id"]] = pair
        if kind == "ChannelCreated":
            pair.created = stamp if pair.created is None else min(pair.created, stamp)
        elif kind == "ChannelStateChange":
            state = channel.get("state")
            if state == "Ringing" and pair.ringing is None:
                pair.ringing = stamp
            elif state == "Up" and half == 1 and pair.up is None:
                pair.up = stamp
        elif kind == "ChannelEnteredBridge" and half == 1 and pair.bridged is None:
            pair.bridged = stamp
        elif kind == "ChannelDestroyed":
            pair.gone.add(half)
        await self._notify()

    async def _notify(self) -> None:
        async with self._cond:
            self._cond.notify_all()
