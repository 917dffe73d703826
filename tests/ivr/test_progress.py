"""The progress lookup's FastAGI handler against a scripted Asterisk on a real socket
(the AGI protocol as Asterisk speaks it); the real Asterisk is in test_progress_e2e.py."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

import asyncpg

from casework.progress import Progress
from db.crypto import Keyring
from dialplan import config, render
from ivr import progress

FOUND = Progress(case_no="20250506000002", status="assigned", status_words="已转交承办单位办理",
                 unit="市住房和城乡建设局", due=date(2025, 5, 9), late=True, summary=None)


class FakePool:
    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[None]:
        yield None


async def _converse(line: progress.ProgressLine, keyed: list[str],
                    hang_up_after: int | None = None) -> list[str]:
    """Be Asterisk for one AGI session: answer each command, GET DATA with the next of
    `keyed`; return the commands received."""
    server = await asyncio.start_server(progress.application(line).handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"agi_network: yes\nagi_network_script: progress\nagi_channel: Local/x\n"
                 b"agi_callerid: 13800138000\n\n")
    commands: list[str] = []
    while True:
        raw = await asyncio.wait_for(reader.readline(), 5)
        if not raw:
            break
        cmd = raw.decode().strip()
        commands.append(cmd)
        if hang_up_after is not None and len(commands) > hang_up_after:
            writer.write(b"HANGUP\n")
            await writer.drain()
            continue
        if cmd.startswith("GET DATA"):
            answer = keyed.pop(0) if keyed else ""
            reply = f"200 result={answer}" if answer else "200 result= (timeout)"
        elif cmd.startswith("STREAM FILE"):
            reply = "200 result=0 endpos=8000"
        else:
            reply = "200 result=1" if cmd != "ANSWER" else "200 result=0"
        writer.write(reply.encode() + b"\n")
        await writer.drain()
        if cmd == "HANGUP":
            break
    writer.close()
    server.close()
    return commands


KEYS = Keyring({"k1": bytes(32)}, "k1", bytes(range(32)))


def _line(lookup: Any, said: list[str]) -> progress.ProgressLine:
    async def say(text: str) -> str:
        said.append(text)
        return "hotline/progress_say_test"
    return progress.ProgressLine(FakePool(), say, lookup,
                                 caller_index=progress.blind_caller(KEYS))


async def test_the_right_number_and_code_are_spoken_in_mandarin() -> None:
    asked: list[tuple[str, str]] = []

    callers: list[bytes | None] = []

    async def lookup(conn: asyncpg.Connection, case_no: str, code: str,
                     now: datetime, caller: bytes | None) -> Progress | None:
        asked.append((case_no, code))
        callers.append(caller)
        return FOUND
    said: list[str] = []
    commands = await _converse(_line(lookup, said), ["20250506000002", "123456"])
    assert asked == [("20250506000002", "123456")]
    # Counted under the calling number's blind index (never the number itself).
    assert callers == [KEYS.blind_index("13800138000")]
    assert commands[0] == "ANSWER"
    assert commands[1] == "GET DATA hotline/progress_ask_case 10000 20"
    assert commands[2] == "GET DATA hotline/progress_ask_code 10000 6"
    assert 'SET VARIABLE HOTLINE_PROGRESS "found"' in commands
    assert said == ["您的工单已转交承办单位办理。承办单位：市住房和城乡建设局。"
                    "办理期限：二零二五年五月九日。目前已超过办理期限，热线正在督促办理。"]
    assert commands[-3:] == ['STREAM FILE hotline/progress_say_test ""',
                             'STREAM FILE hotline/progress_bye ""', "HANGUP"]


async def test_three_wrong_tries_end_with_a_goodbye() -> None:
    async def lookup(*_: Any) -> Progress | None:
        return None
    commands = await _converse(_line(lookup, []), ["20250506000002", "111111"] * 3)
    asks = [c for c in commands if c.startswith("GET DATA hotline/progress_ask_case")]
    assert len(asks) == 3
    # Each further try is preceded by the reason, which the caller may interrupt by keying.
    assert commands.count('STREAM FILE hotline/progress_wrong "0123456789#"') == 2
    assert 'SET VARIABLE HOTLINE_PROGRESS_TRIES "3"' in commands
    assert commands[-4:] == ['SET VARIABLE HOTLINE_PROGRESS "gave_up"',
                             'STREAM FILE hotline/progress_wrong ""',
                             'STREAM FILE hotline/progress_gave_up ""', "HANGUP"]


async def test_a_database_failure_gives_an_apology_not_silence() -> None:
    async def lookup(*_: Any) -> Progress | None:
        raise OSError("connection refused")
    commands = await _converse(_line(lookup, []), ["20250506000002", "123456"])
    assert commands[-3:] == ['SET VARIABLE HOTLINE_PROGRESS "error"',
                             'STREAM FILE hotline/progress_unavailable ""', "HANGUP"]


async def test_a_caller_hanging_up_ends_the_session_quietly() -> None:
    async def lookup(*_: Any) -> Progress | None:
        raise AssertionError("never asked")
    commands = await _converse(_line(lookup, []), [], hang_up_after=1)
    assert commands == ["ANSWER", "GET DATA hotline/progress_ask_case 10000 20"]


async def test_a_peer_closing_before_the_agi_environment_does_not_spin() -> None:
    class Writer:
        closed = False

        def close(self) -> None:
            self.closed = True

        def get_extra_info(self, _: str) -> None:
            return None
    reader = asyncio.StreamReader()
    reader.feed_eof()
    writer = Writer()
    app = progress.application(_line(None, []))
    await asyncio.wait_for(app.handler(reader, writer), 2)
    assert writer.closed


def test_dates_are_said_the_way_callers_say_them() -> None:
    assert progress.spoken_date(date(2025, 12, 30)) == "二零二五年十二月三十日"
    assert progress.spoken_date(date(2026, 1, 2)) == "二零二六年一月二日"


def test_the_dialplan_reaches_the_lookup_and_asterisk_can_run_agi() -> None:
    cfg = config.load(Path(__file__).resolve().parents[2] / "config" / "hotline.yaml")
    cfg = dataclasses.replace(cfg, system=dataclasses.replace(cfg.system, agi_port=4999))
    extensions = render.render_extensions(cfg)
    assert "[hotline-progress]" in extensions
    assert "AGI(agi://127.0.0.1:4999/progress)" in extensions
    # res_agi cannot load without res_speech: neither may be left out.
    secrets = render.Secrets("a", "b", "c", "d", phones={"8101": "p"})
    modules = render.render(cfg, render.AsteriskDirs("/x", "/m"), secrets)["modules.conf"]
    assert "res_speech.so" not in modules and "res_agi.so" not in modules
    # 63160000's menu offers the lookup.
    number = cfg.number("63160000")
    assert number is not None and number.menu is not None
    menu = number.menu
    assert menu.options["4"].service == "progress"
    assert "查询办理进度请按4" in cfg.prompts[menu.prompt]


def test_a_withheld_or_empty_caller_id_has_no_index() -> None:
    index = progress.blind_caller(KEYS)
    assert index("anonymous") is None and index("") is None
    assert index("+86 138-0013-8000") == KEYS.blind_index("13800138000")
