"""The caller's way in: answer, greeting, menu, callback number, case, then the queue.

No step may leave a caller in silence: a prompt that fails to play is logged and the
call goes on; a bad or missing menu key means a hotline matter; a caller who keys no
callback number still reaches an agent.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from db import calls as call_store
from db import cases as case_store
from db.crypto import Keyring, normalise_phone
from dialplan.config import PROGRESS_SERVICE, HotlineConfig, Number
from dialplan.render import FALLBACK_CONTEXT, PROGRESS_CONTEXT
from ivr import media
from ivr.ari import AriError, Channel, NotFound
from ivr.channels import LINE_LOST, ChannelGone, Inbox, hangup_reason
from ivr.voicemail import VoiceMessages

log = logging.getLogger(__name__)

CALLBACK_TRIES = 3
CALLBACK_DIGIT_TIMEOUT = 6.0
MIN_CALLBACK_DIGITS = 5


@dataclass(frozen=True)
class Announcement:
    """The duty supervisor's message, made into a prompt."""

    mode: str  # "emergency" or "after_hours"
    prompt: str


@dataclass(frozen=True)
class Arrival:
    """A caller that has been through the IVR and now goes into the queue."""

    call_id: uuid.UUID
    channel_id: str
    queue: str
    service: str
    case_id: int
    priority: int = 0


# A caller ID worth keeping: digits, with an optional leading +. Anything else (letters,
# "anonymous", dial-string characters such as & / @ ,) is no number at all.
CALLER_ID = re.compile(r"^\+?[0-9]{3,20}$")


def caller_number(channel: Channel, presentation: str = "") -> str | None:
    """The caller's number, or None when it is withheld or not a number.

    presentation is Asterisk's CALLERID(pres) for the call: a carrier's `Privacy: id`
    (or a restricted Remote-Party-ID) makes it `prohib_*`, and the citizen asked not to
    be identified, so the number is not kept even when the carrier delivered it.
    """
    if presentation.startswith("prohib"):
        return None
    number = channel.caller_number.strip()
    if not CALLER_ID.match(number) or len(normalise_phone(number)) < 3:
        return None
    return number


class CallerFlow:
    """Runs one caller's IVR; hands the call to `enqueue` at the end."""

    def __init__(self, cfg: HotlineConfig, pool: asyncpg.Pool, keyring: Keyring,
                 enqueue: Callable[[Arrival], Awaitable[None]],
                 on_gone: Callable[[uuid.UUID, str], Awaitable[None]]):
        self.cfg = cfg
        self.pool = pool
        self.keyring = keyring
        self.enqueue = enqueue
        self.on_gone = on_gone

    announcement: Announcement | None = None  # set by the service when a supervisor switches
    voicemail: VoiceMessages | None = None

    def default_service(self) -> str:
        """The service of a call whose caller chose none (the first in the YAML)."""
        return next(iter(self.cfg.services), "hotline")

    async def run(self, channel: Channel, inbox: Inbox, dialled: str, presentation: str = "",
                  trunk: str = "") -> None:
        """The whole flow for one channel that entered Stasis as an inbound call.

        presentation: CALLERID(pres) (a withheld number); trunk: the carrier trunk it came
        in on ("" for a call from an agent's phone or `hotline call`).
        """
        number = self.cfg.number(dialled)
        if number is None:
            # The dialplan only sends configured numbers here; one removed from the YAML
            # since still gets an agent, through the default queue.
            log.warning("call to %s, which is not a configured number: default queue", dialled)
            number = Number(number=dialled, name=dialled, greeting="",
                            queue=self.cfg.default_queue, service=self.default_service())
        try:
            async with self.pool.acquire() as conn:
                call_id = await call_store.create(conn, channel.id, dialled, number.queue,
                                                  trunk=trunk or None)
        except Exception:
            log.exception("a call on %s could not be recorded; sending it to the fallback",
                          dialled)
            await self._fallback(channel)
            return
        log.info("call %s arrived on %s (channel %s)", call_id, dialled, channel.id)
        try:
            await channel.answer()
            if number.greeting:
                await self._play(channel, inbox, number.greeting, barge_in=number.menu is not None)
            notice = self.announcement
            if notice is not None:  # the duty supervisor's emergency or after-hours message
                await self._play(channel, inbox, notice.prompt)
            service, priority = await self._choose_service(channel, inbox, number)
            if service == PROGRESS_SERVICE:
                # Self-service (ivr/progress.py): no case and no queue; the dialplan's
                # progress context runs the FastAGI lookup.
                async with self.pool.acquire() as conn:
                    await call_store.end(conn, call_id, "self_service_progress")
                log.info("call %s: to the progress lookup", call_id)
                await channel.continue_in_dialplan(PROGRESS_CONTEXT)
                return
            caller = caller_number(channel, presentation)
            callback = None if caller else await self._ask_callback(channel, inbox)
            async with self.pool.acquire() as conn:
                # A caller with a case still open is likely calling about it: a little ahead.
                if await case_store.has_open_case(conn, self.keyring, caller or callback or ""):
                    queue = self.cfg.queues.get(number.queue)
                    priority += queue.returning_caller_priority if queue else 0
                case = await case_store.create(
                    conn, self.keyring, call_id=call_id, dialled_number=dialled,
                    service=service, caller_number=caller, callback_number=callback,
                )
            log.info("call %s: case %s opened, service %s%s", call_id, case["case_no"], service,
                     "" if caller else " (caller ID withheld)")
            if notice is not None and notice.mode == "after_hours" and self.voicemail:
                # After hours: the message, then a voice message instead of the queue.
                async with self.pool.acquire() as conn:
                    await call_store.end(conn, call_id, "after_hours_voice_message")
                await self.voicemail.take(channel, inbox, call_id, case["id"])
                return
            await self.enqueue(Arrival(call_id, channel.id, number.queue, service, case["id"],
                                       priority))
        except (ChannelGone, NotFound):
            reason = hangup_reason(inbox.hangup)
            if reason in LINE_LOST:
                log.warning("call %s: the caller's line died in the IVR without a hang-up "
                            "(%s)", call_id, reason)
            else:
                log.info("call %s: caller hung up in the IVR", call_id)
            await self.on_gone(call_id, reason)
        except Exception:
            # Never leave the caller in silence: hand the call back to the dialplan's
            # fallback, which answers with a message.
            log.exception("call %s: the IVR failed; sending the caller to the fallback", call_id)
            await self._fallback(channel)
            await self.on_gone(call_id, "ivr_error")

    async def _fallback(self, channel: Channel) -> None:
        try:
            await channel.continue_in_dialplan(FALLBACK_CONTEXT)
        except AriError:
            await channel.hangup()

    async def _play(self, channel: Channel, inbox: Inbox, prompt: str,
                    barge_in: bool = False) -> None:
        await media.play(channel, inbox, media.prompt_media(prompt), barge_in)

    async def _choose_service(self, channel: Channel, inbox: Inbox,
                              number: Number) -> tuple[str, int]:
        """The service the caller wants and the priority it carries."""
        menu = number.menu
        if menu is None:
            return number.service or self.default_service(), number.priority
        if not inbox.digits:
            await self._play(channel, inbox, menu.prompt, barge_in=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + menu.timeout
        while not inbox.digits:
            remaining = deadline - loop.time()
            if remaining <= 0:
                log.info("menu on %s: no key within %.0f s, hotline matter", number.number,
                         menu.timeout)
                return menu.default, number.priority
            await inbox.next(timeout=remaining)
        key = inbox.take_digits()[0]
        if key in menu.options:
            option = menu.options[key]
            return option.service, number.priority + option.priority
        log.info("menu on %s: key %s is not an option, hotline matter", number.number, key)
        return menu.default, number.priority

    async def _ask_callback(self, channel: Channel, inbox: Inbox) -> str | None:
        """Ask a caller whose number is withheld for a callback number (# ends it)."""
        for attempt in range(1, CALLBACK_TRIES + 1):
            inbox.take_digits()
            await self._play(channel, inbox, "ask_callback", barge_in=True)
            entered = ""
            while True:
                if inbox.digits:
                    entered += inbox.take_digits()
                    if "#" in entered:
                        break
                    continue
                event = await inbox.next(timeout=CALLBACK_DIGIT_TIMEOUT)
                if event is None:
                    break
            digits = entered.split("#", 1)[0].replace("*", "")
            if len(digits) >= MIN_CALLBACK_DIGITS:
                return digits
            log.info("callback number attempt %d: %d digits, asking again", attempt, len(digits))
        log.info("no callback number given; the caller goes to an agent without one")
        return None
