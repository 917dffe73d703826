"""A small asyncio client for Asterisk's REST Interface (ARI), on aiohttp.

Shaped like ari-py (which runs only on Python 2): channels and bridges are objects with
methods, and handlers are registered per event type. The events WebSocket reconnects
with a capped back-off; after every (re)connect the on_connect handlers run, because
ARI does not replay events that were missed while the socket was down.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

Event = dict[str, Any]
Handler = Callable[[Event], Awaitable[None]]


class AriError(Exception):
    """ARI answered with an error status."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(f"ARI {status}: {message}")


class NotFound(AriError):
    """The object is gone: channels can vanish at any moment, so this is normal."""


# Asterisk answers a request on a channel that has just gone with 400 ("Channel not
# found") or 422 ("Channel not in Stasis application") as well as with 404.
_GONE_HINTS = ("not found", "not in stasis", "not in a stasis", "channel not")


class Channel:
    """A channel, by id; every method may raise NotFound when the caller has gone."""

    def __init__(self, ari: Ari, channel_id: str, json_: Event | None = None):
        self.ari = ari
        self.id = channel_id
        self.json = json_ or {}

    @property
    def caller_number(self) -> str:
        return str(self.json.get("caller", {}).get("number") or "")

    async def answer(self) -> None:
        await self.ari.request("POST", f"/channels/{self.id}/answer")

    async def hangup(self, reason: str = "normal") -> bool:
        """Hang up; False when the channel was gone already."""
        try:
            await self.ari.request("DELETE", f"/channels/{self.id}", params={"reason": reason})
            return True
        except NotFound:
            return False

    async def play(self, media: str, playback_id: str | None = None) -> str:
        """Start playing media; return the playback id (PlaybackFinished carries it)."""
        params = {"media": media}
        path = f"/channels/{self.id}/play"
        if playback_id:
            path += f"/{playback_id}"
        result = await self.ari.request("POST", path, params=params)
        return str(result["id"])

    async def start_moh(self, moh_class: str = "default") -> None:
        await self.ari.request("POST", f"/channels/{self.id}/moh", params={"mohClass": moh_class})

    async def stop_moh(self) -> None:
        await self.ari.request("DELETE", f"/channels/{self.id}/moh")

    async def ring(self) -> None:
        await self.ari.request("POST", f"/channels/{self.id}/ring")

    async def continue_in_dialplan(self, context: str, extension: str = "s") -> None:
        """Leave the application and go on in the dialplan at context,extension,1."""
        await self.ari.request("POST", f"/channels/{self.id}/continue",
                               params={"context": context, "extension": extension,
                                       "priority": 1})

    async def get_var(self, name: str) -> str:
        r = await self.ari.request("GET", f"/channels/{self.id}/variable",
                                   params={"variable": name})
        return str(r.get("value", ""))


class Bridge:
    """A bridge, by id."""

    def __init__(self, ari: Ari, bridge_id: str):
        self.ari = ari
        self.id = bridge_id

    async def add(self, channel_id: str, role: str | None = None) -> None:
        params = {"channel": channel_id}
        if role:
            params["role"] = role
        await self.ari.request("POST", f"/bridges/{self.id}/addChannel", params=params)

    async def remove(self, channel_id: str) -> None:
        await self.ari.request("POST", f"/bridges/{self.id}/removeChannel",
                               params={"channel": channel_id})

    async def start_moh(self, moh_class: str = "default") -> None:
        await self.ari.request("POST", f"/bridges/{self.id}/moh", params={"mohClass": moh_class})

    async def destroy(self) -> bool:
        try:
            await self.ari.request("DELETE", f"/bridges/{self.id}")
            return True
        except NotFound:
            return False


class Ari:
    """One ARI application: REST calls plus the events WebSocket."""

    def __init__(self, base_url: str, user: str, password: str, app: str,
                 max_backoff: float = 10.0, subscribe_all: bool = False):
        self.base = base_url.rstrip("/") + "/ari"
        self.auth_header = basic_auth(user, password)
        self.app = app
        self.max_backoff = max_backoff
        self.connected = asyncio.Event()
        self._handlers: dict[str, list[Handler]] = {}
        self._on_connect: list[Callable[[], Awaitable[None]]] = []
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._ws_url = (
            base_url.replace("http://", "ws://").replace("https://", "wss://").rstrip("/")
            + f"/ari/events?app={app}&subscribeAll={'true' if subscribe_all else 'false'}"
        )

    async def __aenter__(self) -> Ari:
        # Fewer connections than Asterisk's HTTP session limit (rendered as 500), so a
        # burst of REST calls queues here instead of being refused there.
        self._session = aiohttp.ClientSession(
            headers={"Authorization": self.auth_header}, timeout=aiohttp.ClientTimeout(total=15),
            connector=aiohttp.TCPConnector(limit=32),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closed = True  # a run() still going stops instead of reconnecting
        if self._session:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use `async with Ari(...)` first")
        return self._session

    # -- REST -------------------------------------------------------------------------

    async def request(self, method: str, path: str, params: dict[str, Any] | None = None,
                      json_body: Any = None) -> Any:
        """One REST call; NotFound on 404, AriError on any other error status."""
        async with self.session.request(method, self.base + path, params=params,
                                        json=json_body) as r:
            text = await r.text()
            message = _message(text)
            if r.status == 404 or (r.status in (400, 422)
                                   and any(h in message.lower() for h in _GONE_HINTS)):
                raise NotFound(r.status, message)
            if r.status >= 400:
                raise AriError(r.status, message)
            return json.loads(text) if text else None

    def channel(self, channel_id: str, json_: Event | None = None) -> Channel:
        return Channel(self, channel_id, json_)

    def bridge(self, bridge_id: str) -> Bridge:
        return Bridge(self, bridge_id)

    async def create_bridge(self, bridge_id: str, kind: str, name: str = "") -> Bridge:
        """Create a bridge with a fixed id, or find it again if it exists (409)."""
        try:
            await self.request("POST", f"/bridges/{bridge_id}",
                               params={"type": kind, "name": name})
        except AriError as e:
            if e.status != 409:
                raise
        return Bridge(self, bridge_id)

    async def originate(self, endpoint: str, *, app_args: str = "", timeout: int = 30,
                        caller_id: str = "", formats: str | None = None,
                        context: str | None = None, extension: str | None = None,
                        variables: dict[str, str] | None = None,
                        channel_id: str | None = None) -> Channel:
        """Dial an endpoint: into this app (answered -> StasisStart) or into the dialplan."""
        params: dict[str, Any] = {"endpoint": endpoint, "timeout": timeout}
        if context:
            params.update(context=context, extension=extension or "s", priority=1)
        else:
            params.update(app=self.app, appArgs=app_args)
        if caller_id:
            params["callerId"] = caller_id
        if formats:
            params["formats"] = formats
        if channel_id:
            params["channelId"] = channel_id
        body = {"variables": variables} if variables else None
        result = await self.request("POST", "/channels", params=params, json_body=body)
        return Channel(self, result["id"], result)

    async def channels(self) -> list[Event]:
        return list(await self.request("GET", "/channels"))

    async def bridges(self) -> list[Event]:
        return list(await self.request("GET", "/bridges"))

    async def started_at(self) -> datetime | None:
        """When this Asterisk started (its status.startup_time), None if it does not say."""
        info = await self.request("GET", "/asterisk/info", params={"only": "status"})
        text = (info.get("status") or {}).get("startup_time") if isinstance(info, dict) else None
        try:
            return datetime.fromisoformat(text) if text else None
        except ValueError:
            return None

    # -- events -----------------------------------------------------------------------

    def on(self, event_type: str, handler: Handler) -> None:
        """Call handler(event) for every event of this type ('*' for all)."""
        self._handlers.setdefault(event_type, []).append(handler)

    def on_connect(self, handler: Callable[[], Awaitable[None]]) -> None:
        """Call handler() after every (re)connect of the events WebSocket."""
        self._on_connect.append(handler)

    async def run(self) -> None:
        """Keep the events WebSocket up forever, dispatching events in order."""
        first_delay = min(0.5, self.max_backoff)
        backoff = first_delay
        loop = asyncio.get_running_loop()
        while not self._closed:
            started = loop.time()
            try:
                async with self.session.ws_connect(self._ws_url, heartbeat=10,
                                                   timeout=aiohttp.ClientWSTimeout(ws_close=5),
                                                   receive_timeout=None) as ws:
                    log.info("ARI events connected (app %s)", self.app)
                    # Connected only once the handlers (reconcile) have run: whoever waits
                    # for it then sees Asterisk's state and ours agree again.
                    for cb in self._on_connect:
                        await self._safe(cb)
                    self.connected.set()
                    async for msg in ws:
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            await self._dispatch(msg.data)
                        elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                            break
                log.warning("ARI events WebSocket closed; reconnecting")
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                log.warning("ARI not reachable (%s); retrying in %.1f s", e, backoff)
            self.connected.clear()
            # A connection that lived a while resets the back-off; a flapping one does not.
            if loop.time() - started > 30:
                backoff = first_delay
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)

    async def _dispatch(self, raw: str) -> None:
        try:
            event = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nested thousands deep
            log.warning("ARI sent a message that is not JSON; ignored")
            return
        if not isinstance(event, dict):
            return
        for handler in self._handlers.get(str(event.get("type")), []) + self._handlers.get("*", []):
            await self._safe(handler, event)

    async def _safe(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        # One bad handler must not stop the events of every other call.
        try:
            await fn(*args)
        except NotFound:
            log.info("a channel or bridge vanished while handling an event")
        except Exception:
            log.exception("ARI event handler failed")


def basic_auth(user: str, password: str) -> str:
    """An HTTP Basic Authorization header value."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _message(text: str) -> str:
    try:
        return str(json.loads(text).get("message", text))
    except (ValueError, AttributeError):
        return text.strip()[:200]
