"""Turn the prompt texts of the YAML into audio Asterisk can play (Mandarin TTS).

espeak-ng's Mandarin voice speaks the text; sox converts it to 8 kHz mono 16-bit WAV.
Files are cached by a hash of voice and text, so only changed prompts are spoken again.

Every text (the YAML's prompts, the supervisor's message to callers, the sentences of the
progress lookup) is spoken through espeak(): the text goes to espeak-ng on standard input,
never on its command line, so a text such as ``-f/etc/passwd`` is spoken, not obeyed.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

VOICE = "cmn"
# Prompt ids name files (cache and Asterisk sounds): a safe file-name stem, nothing else.
PROMPT_ID = re.compile(r"[a-z][a-z0-9_]{0,63}")


class PromptError(Exception):
    """A prompt could not be made into audio (plain-words message)."""


def prompt_file(cache_dir: Path, pid: str, text: str) -> Path:
    """Where the audio of a prompt with this text is (or will be) cached: the name holds a
    digest of the voice and the text, so a reworded prompt gets a file of its own."""
    digest = hashlib.sha256(f"{VOICE}\n{text}".encode()).hexdigest()[:16]
    return cache_dir / f"{pid}-{digest}.wav"


def espeak_argv(wav: Path) -> list[str]:
    """The espeak-ng command that speaks standard input into wav. It never holds the text:
    a text on the command line could be taken as an option (-f reads a file aloud)."""
    # --stdin: the whole input at once (not line by line); -b 1: it is UTF-8, whatever
    # the locale of the process.
    return ["espeak-ng", "-v", VOICE, "-s", "175", "-b", "1", "-w", str(wav), "--stdin"]


def espeak(text: str, wav: Path) -> subprocess.CompletedProcess[bytes]:
    """Speak text into wav (espeak-ng's own rate); the finished process, for its return
    code and stderr."""
    return subprocess.run(espeak_argv(wav), input=text.encode("utf-8"), capture_output=True)


def build(prompts: dict[str, str], cache_dir: Path) -> dict[str, Path]:
    """Make (or reuse) a WAV for every prompt; return prompt id -> file."""
    for tool, package in (("espeak-ng", "espeak-ng"), ("sox", "sox")):
        if not shutil.which(tool):
            raise PromptError(f"{tool} is not installed (Debian package {package}); "
                              "`make run` installs it")
    cache_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for pid, text in sorted(prompts.items()):
        if not PROMPT_ID.fullmatch(pid):  # it becomes a file name below
            raise PromptError(f"prompt id {pid!r} must be lower-case letters, digits or _")
        final = prompt_file(cache_dir, pid, text)
        if not final.exists():
            raw = cache_dir / f".{pid}.raw.wav"
            spoken = espeak(text, raw)
            if spoken.returncode != 0:
                err = spoken.stderr.decode("utf-8", "replace").strip()
                raise PromptError(f"espeak-ng could not speak prompt '{pid}': {err}")
            tmp = cache_dir / f".{pid}.tmp.wav"
            r = subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16",
                                "-e", "signed-integer", str(tmp)], capture_output=True, text=True)
            raw.unlink(missing_ok=True)
            if r.returncode != 0:
                raise PromptError(f"sox could not convert prompt '{pid}': {r.stderr.strip()}")
            tmp.replace(final)
        out[pid] = final
    return out
