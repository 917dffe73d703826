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
# espeak-ng's speed in words a minute (`hotline: speech_rate:`); 175 is its own default.
DEFAULT_RATE = 175
RATES = (80, 450)  # what espeak-ng accepts and a caller can still follow
# Prompt ids name files (cache and Asterisk sounds): a safe file-name stem, nothing else.
PROMPT_ID = re.compile(r"[a-z][a-z0-9_]{0,63}")


class PromptError(Exception):
    """A prompt could not be made into audio (plain-words message)."""


def prompt_file(cache_dir: Path, pid: str, text: str, rate: int = DEFAULT_RATE) -> Path:
    """Where the audio of a prompt with this text is (or will be) cached: the name holds a
    digest of the voice, the rate and the text, so a reworded prompt gets a file of its own."""
    # The default rate is left out of the digest: files made before the rate could be set
    # stay valid.
    spoken = f"{VOICE}\n{text}" if rate == DEFAULT_RATE else f"{VOICE}\n{rate}\n{text}"
    digest = hashlib.sha256(spoken.encode()).hexdigest()[:16]
    return cache_dir / f"{pid}-{digest}.wav"


def espeak_argv(wav: Path, rate: int = DEFAULT_RATE) -> list[str]:
    """The espeak-ng command that speaks standard input into wav. It never holds the text:
    a text on the command line could be taken as an option (-f reads a file aloud)."""
    if not RATES[0] <= rate <= RATES[1]:
        raise PromptError(f"speech rate {rate} is not between {RATES[0]} and {RATES[1]}")
    # --stdin: the whole input at once (not line by line); -b 1: it is UTF-8, whatever
    # the locale of the process.
    return ["espeak-ng", "-v", VOICE, "-s", str(int(rate)), "-b", "1", "-w", str(wav),
            "--stdin"]


def espeak(text: str, wav: Path, rate: int = DEFAULT_RATE) -> subprocess.CompletedProcess[bytes]:
    """Speak text into wav at `rate` words a minute; the finished process, for its return
    code and stderr."""
    return subprocess.run(espeak_argv(wav, rate), input=text.encode("utf-8"),
                          capture_output=True)


def build(prompts: dict[str, str], cache_dir: Path,
          rate: int = DEFAULT_RATE) -> dict[str, Path]:
    """Make (or reuse) a WAV for every prompt, spoken at `rate`; return prompt id -> file."""
    for tool, package in (("espeak-ng", "espeak-ng"), ("sox", "sox")):
        if not shutil.which(tool):
            raise PromptError(f"{tool} is not installed (Debian package {package}); "
                              "`make run` installs it")
    cache_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for pid, text in sorted(prompts.items()):
        if not PROMPT_ID.fullmatch(pid):  # it becomes a file name below
            raise PromptError(f"prompt id {pid!r} must be lower-case letters, digits or _")
        final = prompt_file(cache_dir, pid, text, rate)
        if not final.exists():
            raw = cache_dir / f".{pid}.raw.wav"
            spoken = espeak(text, raw, rate)
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
