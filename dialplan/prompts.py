"""Turn the prompt texts of the YAML into audio Asterisk can play (Mandarin TTS).

espeak-ng's Mandarin voice speaks the text; sox converts it to 8 kHz mono 16-bit WAV.
Files are cached by a hash of voice and text, so only changed prompts are spoken again.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

VOICE = "cmn"


class PromptError(Exception):
    """A prompt could not be made into audio (plain-words message)."""


def prompt_file(cache_dir: Path, pid: str, text: str) -> Path:
    """Where the audio of a prompt with this text is (or will be) cached: the name holds a
    digest of the voice and the text, so a reworded prompt gets a file of its own."""
    digest = hashlib.sha256(f"{VOICE}\n{text}".encode()).hexdigest()[:16]
    return cache_dir / f"{pid}-{digest}.wav"


def build(prompts: dict[str, str], cache_dir: Path) -> dict[str, Path]:
    """Make (or reuse) a WAV for every prompt; return prompt id -> file."""
    for tool, package in (("espeak-ng", "espeak-ng"), ("sox", "sox")):
        if not shutil.which(tool):
            raise PromptError(f"{tool} is not installed (Debian package {package}); "
                              "`make run` installs it")
    cache_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for pid, text in sorted(prompts.items()):
        final = prompt_file(cache_dir, pid, text)
        if not final.exists():
            raw = cache_dir / f".{pid}.raw.wav"
            r = subprocess.run(["espeak-ng", "-v", VOICE, "-s", "175", "-w", str(raw), text],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise PromptError(f"espeak-ng could not speak prompt '{pid}': {r.stderr.strip()}")
            tmp = cache_dir / f".{pid}.tmp.wav"
            r = subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16",
                                "-e", "signed-integer", str(tmp)], capture_output=True, text=True)
            raw.unlink(missing_ok=True)
            if r.returncode != 0:
                raise PromptError(f"sox could not convert prompt '{pid}': {r.stderr.strip()}")
            tmp.replace(final)
        out[pid] = final
    return out
