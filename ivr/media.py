"""Playing prompts to one caller and waiting for them to end."""

from __future__ import annotations

import logging

from dialplan.render import PROMPT_DIR
from ivr.ari import AriError, Channel, NotFound
from ivr.channels import ChannelGone, Inbox

log = logging.getLogger(__name__)


def prompt_media(*prompts: str) -> list[str]:
    """ARI media URIs of the hotline's generated prompts."""
    return [f"sound:{PROMPT_DIR}/{p}" for p in prompts]


async def start(channel: Channel, media: list[str]) -> str | None:
    """Start playing (a failure is logged and skipped: a prompt is never worth a call)."""
    try:
        return await channel.play(",".join(media))
    except NotFound:
        raise ChannelGone() from None
    except AriError as e:
        log.error("prompt %s could not be played (%s); going on", media, e)
        return None


async def play(channel: Channel, inbox: Inbox, media: list[str], barge_in: bool = False) -> None:
    """Play media to the end (or until a key when barge_in)."""
    playback_id = await start(channel, media)
    if playback_id is None:
        return
    while True:
        event = await inbox.next(timeout=300)
        if event is None:
            return
        kind = event.get("type")
        playback = event.get("playback")
        if kind == "PlaybackFinished" and isinstance(playback, dict) \
                and playback.get("id") == playback_id:
            return
        if barge_in and kind == "ChannelDtmfReceived":
            await stop(channel, playback_id)
            return


async def stop(channel: Channel, playback_id: str) -> None:
    try:
        await channel.ari.request("DELETE", f"/playbacks/{playback_id}")
    except AriError:
        pass  # finished already
