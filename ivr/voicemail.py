"""Voice messages: a caller who waited too long (or called while nobody could answer)
leaves a message that becomes part of their case and goes on the callback worklist."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import wave
from collections.abc import Collection
from pathlib import Path

import asyncpg

from db import calls as call_store
from db import cases as case_store
from db import recordings, worklist
from db.crypto import Keyring
from dialplan.render import FALLBACK_SPOOL
from ivr import media
from ivr.ari import AriError, Channel, NotFound
from ivr.channels import ChannelGone, Inbox

log = logging.getLogger(__name__)
MAX_SECONDS = 120
FALLBACK_DIR = FALLBACK_SPOOL  # under Asterisk's spool: messages taken by the dialplan
UNKNOWN_DIALLED = "?"  # a fallback message whose dialled number was lost


class VoiceMessages:
    """Takes voice messages over ARI, and imports those the dialplan took on its own."""

    def __init__(self, pool: asyncpg.Pool, keyring: Keyring, asterisk_dir: Path | None,
                 store: Path, hotline_numbers: Collection[str] = ()):
        self.pool = pool
        self.keyring = keyring
        # The public numbers a fallback message may have been left on: nothing else is
        # ever stored as a call's dialled number (it is shown unmasked on the worklist).
        self.hotline_numbers = frozenset(hotline_numbers)
        self.spool = asterisk_dir / "spool" if asterisk_dir else None
        self.store = store

    def sounds_dir(self) -> Path | None:
        """Where Asterisk finds the hotline's prompts (on this machine)."""
        return self.spool.parent / "data" / "sounds" / "hotline" if self.spool else None

    async def take(self, channel: Channel, inbox: Inbox, call_id: uuid.UUID,
                   case_id: int | None) -> None:
        """Prompt, record until # or silence, thank, hang up; attach it to the case."""
        name = f"hotline-vm-{call_id}"
        try:
            await media.play(channel, inbox, media.prompt_media("voice_message"))
            await channel.ari.request("POST", f"/channels/{channel.id}/record", params={
                "name": name, "format": "wav", "maxDurationSeconds": MAX_SECONDS,
                "maxSilenceSeconds": 10, "beep": "true", "terminateOn": "#",
                "ifExists": "overwrite"})
            while True:  # the recording ends on #, silence, the limit or a hang-up
                event = await inbox.next(timeout=MAX_SECONDS + 30)
                if event is None or (event.get("type") in ("RecordingFinished",
                                                           "RecordingFailed")
                                     and event["recording"].get("name") == name):
                    break
            await media.play(channel, inbox, media.prompt_media("voice_message_thanks"))
        except (ChannelGone, NotFound):
            pass  # hung up while recording: what was said is kept
        except AriError as e:
            log.error("call %s: the voice message could not be recorded (%s)", call_id, e)
        await channel.hangup()
        await self._keep(name, call_id, case_id)

    async def _keep(self, name: str, call_id: uuid.UUID, case_id: int | None) -> None:
        if self.spool is None:
            return
        source = self.spool / "recording" / f"{name}.wav"
        for _ in range(20):  # Asterisk may still be closing the file
            if source.exists():
                break
            await asyncio.sleep(0.1)
        if not source.exists():
            log.info("call %s: no voice message was left", call_id)
            return
        size, seconds = source.stat().st_size, _seconds(source)
        target, key_id = await self._store(source, f"{call_id}.wav")
        async with self.pool.acquire() as conn:
            if case_id is not None and size > 44:  # more than a header
                await recordings.attach(conn, case_id, call_id, "voice_message", str(target),
                                        seconds, key_id)
            await worklist.add(conn, call_id, "voice_message")
        log.info("call %s: voice message kept", call_id)

    async def _store(self, source: Path, name: str) -> tuple[Path, str]:
        """Encrypt a recording into the store (the plaintext in the spool is removed);
        return the stored file and the data key id it is sealed under."""
        self.store.mkdir(parents=True, exist_ok=True)
        self.store.chmod(0o700)
        target = self.store / f"{name}.enc"
        key_id = await recordings.seal_file(self.pool, self.keyring, source, target)
        return target, key_id

    async def import_fallback(self) -> int:
        """Turn messages the dialplan recorded while call control was down into cases.

        The dialplan writes <id>.txt ("dialled caller") before recording <id>.wav and
        <id>.done when the call is over; a message is imported once done (or stale).
        """
        if self.spool is None:
            return 0
        folder = self.spool / FALLBACK_DIR
        count = 0
        for meta in sorted(folder.glob("*.txt")) if folder.exists() else []:
            done = meta.with_suffix(".done")
            if not done.exists() and time.time() - meta.stat().st_mtime < 600:
                continue  # still recording
            wav = meta.with_suffix(".wav")
            dialled, caller = self._metadata(meta.read_text(errors="replace"))
            async with self.pool.acquire() as conn, conn.transaction():
                call_id = await call_store.create(conn, f"fallback-{meta.stem}", dialled,
                                                  "fallback")
                case = await case_store.create(conn, self.keyring, call_id=call_id,
                                               dialled_number=dialled, service="hotline",
                                               caller_number=caller)
                await call_store.end(conn, call_id, "fallback_voice_message")
                if wav.exists() and wav.stat().st_size > 44:
                    seconds = _seconds(wav)
                    target, key_id = await self._store(wav, f"{call_id}.wav")
                    await recordings.attach(conn, case["id"], call_id, "voice_message",
                                            str(target), seconds, key_id)
                await worklist.add(conn, call_id, "voice_message")
            for leftover in (meta, done, wav):
                leftover.unlink(missing_ok=True)
            count += 1
            log.info("imported a voice message taken while call control was down: case %s",
                     case["case_no"])
        return count


    def _metadata(self, text: str) -> tuple[str, str | None]:
        """(dialled number, caller's number or None) from a fallback message's .txt:
        "dialled:<n> caller:<n>" (older files: "<n> <n>", or only the caller's number when
        the dialled one was lost). A dialled number that is no hotline number is never
        kept: it may be the caller's own."""
        fields = text.split()
        labelled = dict(f.split(":", 1) for f in fields if ":" in f)
        if labelled:
            dialled, caller = labelled.get("dialled", ""), labelled.get("caller", "")
        elif len(fields) >= 2:
            dialled, caller = fields[0], fields[1]
        else:
            dialled, caller = "", fields[0] if fields else ""
        if dialled not in self.hotline_numbers:
            dialled = UNKNOWN_DIALLED
        return dialled, caller if case_store.normalise_phone(caller) else None


def _seconds(wav: Path) -> float | None:
    try:
        with wave.open(str(wav)) as w:
            return round(w.getnframes() / w.getframerate(), 1)
    except (OSError, wave.Error, EOFError):
        return None
