"""A caller hears the progress of their case: a FastAGI service (panoramisk) in the
call-control process.

The dialplan context hotline-progress runs ``AGI(agi://127.0.0.1:<agi_port>/progress)``.
The caller keys the case number and #, then the six-digit code given at intake; the
status is spoken in Mandarin. A wrong or unknown pair gets "工单编号或查询码不正确" and
another try, three in all, then a goodbye. Never silence: a database failure gives a plain
apology. The outcome is left in the channel variables HOTLINE_PROGRESS (found, not_found,
gave_up, error) and HOTLINE_PROGRESS_TRIES.

Fixed sentences are prompts built at start (dialplan.config.DEFAULT_PROMPTS); only the
sentence about the case is spoken at run time (espeak-ng), cached by its text.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
from panoramisk.fast_agi import Application, Request

from casework import progress
from casework.progress import Progress
from db.crypto import Keyring
from dialplan import prompts
from dialplan.render import PROGRESS_AGI_SCRIPT, PROMPT_DIR
from dialplan.speech import DIGITS, speak

log = logging.getLogger(__name__)

MAX_TRIES = 3
DIGIT_TIMEOUT_MS = 10_000  # for the first key after the prompt and between keys
MAX_CASE_DIGITS = 20  # case numbers are the date and a sequence: 14 digits today
# A GET DATA that ends this soon with nothing keyed was ended by a stray # (e.g. one
# pressed after the six-digit code): ask again once instead of counting it as a try.
STRAY_KEY_SECONDS = 1.5

# (conn, case number, code, now, the calling number's blind index or None when withheld)
Lookup = Callable[[asyncpg.Connection, str, str, datetime, bytes | None],
                  Awaitable[Progress | None]]
# The blind index of a calling number, or None when there is no number to index.
CallerIndex = Callable[[str], bytes | None]
Say = Callable[[str], Awaitable[str | None]]


class AgiHangup(Exception):
    """The caller hung up (or Asterisk closed the AGI session)."""


class AgiSession:
    """AGI commands on one FastAGI request, with a hang-up turned into AgiHangup."""

    def __init__(self, request: Any):
        self.request = request

    async def command(self, line: str) -> dict[str, Any]:
        try:
            result: dict[str, Any] = await self.request.send_command(line)
        except (ValueError, OSError, asyncio.IncompleteReadError) as e:
            # panoramisk cannot parse the empty line of a closed socket: the call is gone.
            raise AgiHangup(f"{line.split()[0]}: the AGI session closed") from e
        if result.get("error") == "AGIResultHangup" or result.get("status_code") == 511:
            raise AgiHangup(f"{line.split()[0]}: {result.get('msg') or 'dead channel'}")
        return result

    async def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> str:
        """Play the prompt (a key interrupts it) and collect keys until #, max_digits or
        the timeout; the digits keyed ('' for none)."""
        result = await self.command(f"GET DATA {_path(prompt)} {timeout_ms} {max_digits}")
        if result.get("error"):
            return ""  # -1: the prompt failed or the call went; the next command tells
        value = result.get("result") or ("",)
        # ASCII digits only: str.isdigit() also passes '²' and '٣'.
        return "".join(c for c in str(value[0]) if c in "0123456789")

    async def stream(self, *files: str, escape: str = "") -> str:
        """Play prompts to the end, or until one of the escape keys: the key ('' for
        none). A prompt that cannot be played is skipped."""
        for f in files:
            result = await self.command(f'STREAM FILE {_path(f)} "{escape}"')
            if result.get("error"):
                continue
            value = str((result.get("result") or ("0",))[0])
            # The key's character code; only a DTMF key counts (chr(99999999) would raise).
            if value.isascii() and value.isdigit() and 0 < int(value) < 128 \
                    and chr(int(value)) in "0123456789*#ABCD":
                return chr(int(value))
        return ""

    async def set_var(self, name: str, value: str) -> None:
        await self.command(f'SET VARIABLE {name} "{value}"')


def _path(prompt: str) -> str:
    """A prompt as AGI names it: the hotline's prompts live in sounds/hotline/."""
    return prompt if "/" in prompt else f"{PROMPT_DIR}/{prompt}"


def spoken_date(day: date) -> str:
    """A date as a Mandarin speaker says it: 二零二五年五月三日."""
    year = "".join(DIGITS[int(d)] for d in str(day.year))
    return f"{year}年{speak(day.month)}月{speak(day.day)}日"


def sentence(p: Progress) -> str:
    """What the caller hears about their case (no personal data is in a Progress)."""
    parts = [f"您的工单{p.status_words}。"]
    if p.unit:
        parts.append(f"承办单位：{p.unit}。")
    if p.due and p.status in ("pending", "assigned", "accepted", "returned"):
        parts.append(f"办理期限：{spoken_date(p.due)}。")
        if p.late:
            parts.append("目前已超过办理期限，热线正在督促办理。")
    if p.summary:
        parts.append(f"办理结果：{p.summary}")
    return "".join(parts)


class Speaker:
    """Speaks a sentence at run time (espeak-ng, Mandarin) into Asterisk's sounds, once per
    text."""

    def __init__(self, sounds: Path | None, rate: int = prompts.DEFAULT_RATE):
        self.sounds = sounds  # <astdatadir>/sounds/hotline on this machine
        self.rate = rate  # the YAML's speech_rate, as for every other prompt
        self._lock = asyncio.Lock()
        self._made: dict[str, str] = {}

    async def __call__(self, text: str) -> str | None:
        """The prompt (as AGI names it) that speaks text; None when it cannot be made."""
        if self.sounds is None:
            log.error("progress lookup: no Asterisk folder known; cannot speak the status")
            return None
        async with self._lock:  # one espeak-ng at a time; a text is made only once
            if text in self._made:
                return self._made[text]
            pid = "progress_say_" + hashlib.sha256(
                f"{self.rate}\n{text}".encode()).hexdigest()[:16]
            target = self.sounds / f"{pid}.wav"
            if not target.exists():
                loop = asyncio.get_running_loop()
                wavs = await loop.run_in_executor(
                    None, prompts.build, {pid: text}, self.sounds.parent / ".runtime", self.rate)
                tmp = self.sounds / f".{pid}.tmp"
                shutil.copyfile(wavs[pid], tmp)
                os.replace(tmp, target)  # Asterisk never sees a half-written file
            self._made[text] = f"{PROMPT_DIR}/{pid}"
            return self._made[text]


class ProgressLine:
    """The FastAGI handler: one caller's lookup, start to hang-up."""

    def __init__(self, pool: Any, say: Say, lookup: Lookup = progress.lookup,
                 caller_index: CallerIndex = lambda _number: None):
        self.pool = pool
        self.say = say
        self.lookup = lookup
        self.caller_index = caller_index

    async def handle(self, request: Request) -> None:
        agi = AgiSession(request)
        try:
            outcome = await self.run(agi)
            log.info("progress lookup: %s", outcome)
        except AgiHangup as e:
            log.info("progress lookup: the caller hung up (%s)", e)

    async def _ask(self, agi: AgiSession, before: list[str], question: str,
                   max_digits: int) -> str:
        """Say what comes before (the caller may start keying during it), then ask."""
        keyed = ""
        for f in before:
            started = time.monotonic()
            key = await agi.stream(f, escape="0123456789#")
            if key == "#" and time.monotonic() - started < STRAY_KEY_SECONDS:
                key = await agi.stream(f, escape="0123456789")  # a stray # cut it short
            if key.isdigit():
                keyed = key
                break
        started = time.monotonic()
        rest = await agi.get_data(question, DIGIT_TIMEOUT_MS, max_digits - len(keyed))
        if not keyed and not rest and time.monotonic() - started < STRAY_KEY_SECONDS:
            rest = await agi.get_data(question, DIGIT_TIMEOUT_MS, max_digits)
        return keyed + rest

    async def run(self, agi: AgiSession) -> str:
        """Ask, look up, speak; return the outcome (found, gave_up or error)."""
        # Wrong tries are counted per calling number (casework/progress.py): its blind
        # index, from the channel's caller ID as Asterisk gives it to AGI.
        headers = getattr(agi.request, "headers", None) or {}
        caller = self.caller_index(str(headers.get("agi_callerid") or ""))
        await agi.command("ANSWER")
        before: list[str] = []  # what the caller hears before the next question
        for attempt in range(1, MAX_TRIES + 1):
            case_no = await self._ask(agi, before, "progress_ask_case", MAX_CASE_DIGITS)
            code = ""
            if case_no:
                code = await self._ask(agi, [], "progress_ask_code", progress.CODE_DIGITS)
            await agi.set_var("HOTLINE_PROGRESS_TRIES", str(attempt))
            if not case_no or not code:
                await agi.set_var("HOTLINE_PROGRESS", "not_found")
                before = ["progress_no_input"]
                continue
            try:
                async with self.pool.acquire() as conn:
                    found = await self.lookup(conn, case_no, code, datetime.now(UTC),
                                              caller)
            except (asyncpg.PostgresError, OSError, TimeoutError):
                log.exception("progress lookup: the database could not be asked")
                await agi.set_var("HOTLINE_PROGRESS", "error")
                await agi.stream("progress_unavailable")
                await agi.command("HANGUP")
                return "error"
            if found is None:
                await agi.set_var("HOTLINE_PROGRESS", "not_found")
                before = ["progress_wrong"]
                continue
            await agi.set_var("HOTLINE_PROGRESS", "found")
            status = await self.say(sentence(found))
            if status is None:
                await agi.stream("progress_unavailable")
            else:
                await agi.stream(status, "progress_bye")
            await agi.command("HANGUP")
            return "found"
        await agi.set_var("HOTLINE_PROGRESS", "gave_up")
        await agi.stream(*before, "progress_gave_up")
        await agi.command("HANGUP")
        return "gave_up"


class _EofGuard:
    """A stream reader whose read() raises at end of file: panoramisk reads the AGI
    environment in a loop until a blank line, which would spin forever on a peer that
    closes before sending one (a port check, say)."""

    def __init__(self, reader: asyncio.StreamReader):
        self._reader = reader

    async def read(self, n: int = -1) -> bytes:
        data = await self._reader.read(n)
        if not data:
            raise ConnectionResetError("closed before the AGI environment was sent")
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)


class _Application(Application):
    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await super().handler(_EofGuard(reader), writer)
        except ConnectionResetError:
            writer.close()


def application(line: ProgressLine) -> Application:
    """panoramisk's FastAGI application with the progress lookup as script 'progress'."""
    app = _Application()
    app.add_route(PROGRESS_AGI_SCRIPT, line.handle)
    return app


def blind_caller(keyring: Keyring) -> CallerIndex:
    """The calling number's blind index under the keyring, None for no number (withheld,
    'anonymous', empty)."""
    def index(number: str) -> bytes | None:
        try:
            return keyring.blind_index(number)
        except ValueError:  # no digits
            return None
    return index


async def serve(pool: asyncpg.Pool, port: int, sounds: Path | None, keyring: Keyring,
                host: str = "127.0.0.1",
                rate: int = prompts.DEFAULT_RATE) -> asyncio.Server | None:
    """Start the FastAGI server; None (logged) when the port cannot be had, in which case
    the dialplan plays progress_unavailable to callers."""
    app = application(ProgressLine(pool, Speaker(sounds, rate),
                                   caller_index=blind_caller(keyring)))
    try:
        server = await asyncio.start_server(app.handler, host, port)
    except OSError as e:
        log.error("the progress lookup (FastAGI) cannot listen on %s:%d: %s", host, port, e)
        return None
    log.info("progress lookup (FastAGI) on %s:%d", host, port)
    return server
