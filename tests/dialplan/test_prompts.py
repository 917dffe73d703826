"""A prompt's text is spoken, never obeyed: espeak-ng gets it on standard input, so a text
such as ``-f/etc/passwd`` (in the YAML, the supervisor's message to callers, or a progress
sentence) cannot make espeak-ng read a file aloud to callers."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path
from typing import Any

import pytest

from dialplan import config, prompts
from ivr.progress import Speaker

ROOT = Path(__file__).resolve().parents[2]
# Texts an option parser would take for options: read a file, print and quit, another voice,
# write elsewhere, audio to stdout.
OPTION_LIKE = ["-f/etc/passwd", "-f /etc/passwd 请稍候", "--version", "--help",
               "-v en 你好", "--stdout", "-w/tmp/hotline-injected.wav", "-- -f/etc/passwd"]

needs_tts = pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")),
                               reason="espeak-ng and sox are not installed (`make test` does)")


def _seconds(wav: Path) -> float:
    with wave.open(str(wav)) as w:
        return w.getnframes() / w.getframerate()


@pytest.mark.parametrize("text", OPTION_LIKE)
def test_the_command_line_never_holds_the_text(text: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[list[str], dict[str, Any]]] = []

    def run(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[Any]:
        calls.append((argv, kw))
        if argv[0] == "sox":
            Path(argv[-1]).write_bytes(b"")  # the converted file build() moves into place
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(prompts.subprocess, "run", run)
    monkeypatch.setattr(prompts.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    prompts.build({"probe": text}, tmp_path)
    spoken = [(argv, kw) for argv, kw in calls if argv[0] == "espeak-ng"]
    assert len(spoken) == 1
    argv, kw = spoken[0]
    assert not any(text in arg for arg in argv), argv
    assert kw["input"] == text.encode("utf-8")
    assert argv == prompts.espeak_argv(tmp_path / ".probe.raw.wav")


@pytest.mark.parametrize("pid", ["../escape", "a/b", "-rf", "Upper", "", "a" * 65, "a\n"])
def test_a_prompt_id_that_is_no_plain_file_name_is_refused(pid: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(prompts.PromptError, match="prompt id"):
        prompts.build({pid: "您好"}, cache)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


@needs_tts
def test_minus_f_etc_passwd_is_spoken_not_read(tmp_path: Path) -> None:
    text = "-f/etc/passwd"
    wavs = prompts.build({"probe": text, "control": "x" + text,
                          "passwd": Path("/etc/passwd").read_text(encoding="utf-8")}, tmp_path)
    probe, control, passwd = (_seconds(wavs[k]) for k in ("probe", "control", "passwd"))
    # As long as saying the same string after a letter, and far shorter than the file.
    assert 0.5 * control <= probe <= control, (probe, control)
    assert probe * 10 < passwd, (probe, passwd)


@needs_tts
def test_a_file_named_after_minus_f_is_not_read_aloud(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("一二三四五六七八九十。" * 40, encoding="utf-8")
    wavs = prompts.build({"probe": f"-f{secret}", "control": f"x-f{secret}",
                          "secret": secret.read_text(encoding="utf-8")}, tmp_path / "cache")
    probe, control, whole = (_seconds(wavs[k]) for k in ("probe", "control", "secret"))
    assert 0.5 * control <= probe <= control, (probe, control)
    assert probe * 10 < whole, (probe, whole)


@needs_tts
@pytest.mark.parametrize("text", ["--version", "--help", "-v en 你好", "--stdout"])
def test_texts_starting_with_dashes_or_minus_v_are_spoken(text: str, tmp_path: Path) -> None:
    wavs = prompts.build({"probe": text, "control": "x" + text}, tmp_path)
    probe, control = _seconds(wavs["probe"]), _seconds(wavs["control"])
    assert probe >= 0.5 * control > 0, (probe, control)
    assert probe <= control, (probe, control)


@needs_tts
def test_minus_w_in_a_text_writes_no_file(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.wav"
    wavs = prompts.build({"probe": f"-w{elsewhere}"}, tmp_path / "cache")
    assert _seconds(wavs["probe"]) > 0.5
    assert not elsewhere.exists()


@needs_tts
async def test_the_progress_lookup_speaks_an_option_like_sentence(tmp_path: Path) -> None:
    sounds = tmp_path / "sounds" / "hotline"
    sounds.mkdir(parents=True)
    say = Speaker(sounds)
    probe = await say("-f/etc/passwd")
    control = await say("x-f/etc/passwd")
    assert probe and control
    probe_s = _seconds(sounds / f"{probe.rsplit('/', 1)[1]}.wav")
    control_s = _seconds(sounds / f"{control.rsplit('/', 1)[1]}.wav")
    assert 0.5 * control_s <= probe_s <= control_s, (probe_s, control_s)


def test_espeak_ng_is_run_only_by_dialplan_prompts() -> None:
    """One helper speaks every text: no other module starts espeak-ng itself."""
    others = [str(p.relative_to(ROOT))
              for pkg in ("dialplan", "ivr", "hotline", "casework", "agent_desk", "db")
              for p in (ROOT / pkg).rglob("*.py")
              if p != ROOT / "dialplan" / "prompts.py"
              and ('"espeak-ng"' in p.read_text(encoding="utf-8")
                   or "'espeak-ng'" in p.read_text(encoding="utf-8"))]
    assert others == []


def test_the_speech_rate_is_the_yamls_and_names_its_own_files(tmp_path: Path) -> None:
    """hotline.speech_rate: espeak-ng's -s, checked in the YAML, and part of the cache name
    (the shipped rate keeps the names files had before it could be set)."""
    assert prompts.espeak_argv(tmp_path / "x.wav", 240)[3:5] == ["-s", "240"]
    with pytest.raises(prompts.PromptError, match="between 80 and 450"):
        prompts.espeak_argv(tmp_path / "x.wav", 1000)
    same = prompts.prompt_file(tmp_path, "hello", "您好")
    assert prompts.prompt_file(tmp_path, "hello", "您好", prompts.DEFAULT_RATE) == same
    assert prompts.prompt_file(tmp_path, "hello", "您好", 240) != same

    text = (ROOT / "config" / "hotline.yaml").read_text()
    fast = config.loads(text.replace("  area_code: \"0377\"\n",
                                     "  area_code: \"0377\"\n  speech_rate: 240\n", 1), "h.yaml")
    assert fast.speech_rate == 240
    assert config.loads(text, "h.yaml").speech_rate == prompts.DEFAULT_RATE
    with pytest.raises(config.ConfigError, match="speech_rate must be a whole number"):
        config.loads(text.replace("  area_code: \"0377\"\n",
                                  "  area_code: \"0377\"\n  speech_rate: fast\n", 1), "h.yaml")
