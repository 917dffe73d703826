"""Live configuration apply: a new number goes live while a caller keeps waiting.

`hotline config apply` on the running test stack: Asterisk's live dialplan gains the
number (seen through AMI and by a real call to it), a waiting caller keeps its channel
and its place, a broken YAML changes nothing, and a rollback brings the first set back.
The stack's YAML (var/test/hotline.yaml) is what every other test runs on: it is put
back at the end whatever happens.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from panoramisk import Manager

from db import events
from dialplan import prompts
from dialplan.render import INBOUND_CONTEXT, PROMPT_DIR
from hotline.asterisk import AsteriskInstance, locate
from tests.conftest import PORTS, VAR, Stack, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean")]

NEW_GREETING = "您好，这里是反诈专线，您的来电正在接入值班坐席。"
NEW_HOLD = "坐席正忙，请您耐心等候。"


async def _ami(action: dict[str, str]) -> list[Any]:
    """One AMI action on the test stack's Asterisk (its response and events)."""
    secrets = json.loads((VAR / "secrets.json").read_text())
    manager = Manager(host="127.0.0.1", port=PORTS["ami_port"], username=secrets["ami_user"],
                      secret=secrets["ami_secret"], events="off", ping_delay=3600,
                      reconnect_timeout=3600)
    await manager.connect()
    try:
        assert (await manager.authenticated_future).success
        answer = await manager.send_action(action)
    finally:
        manager.close()
    return answer if isinstance(answer, list) else [answer]


async def _live_numbers() -> set[str]:
    """The hotline numbers in Asterisk's live dialplan, asked through AMI."""
    answer = await _ami({"Action": "ShowDialPlan", "Context": INBOUND_CONTEXT})
    return {m["Extension"] for m in answer
            if m.get("Event") == "ListDialplan" and not m["Extension"].startswith("_")}


async def _live_endpoints() -> set[str]:
    """The SIP endpoints Asterisk runs with, asked through AMI."""
    answer = await _ami({"Action": "PJSIPShowEndpoints"})
    return {m["ObjectName"] for m in answer if m.get("Event") == "EndpointList"}


def _asterisk() -> AsteriskInstance:
    return AsteriskInstance(locate(), VAR)


def _etc_file(name: str) -> str:
    inst = _asterisk()
    return (inst.host(inst.dirs.etc) / name).read_text(encoding="utf-8")


def _sound(pid: str) -> bytes:
    inst = _asterisk()
    return (inst.host(f"{inst.dirs.data}/sounds/{PROMPT_DIR}") / f"{pid}.wav").read_bytes()


def _version_of(output: str) -> int:
    m = re.search(r"now running as version (\d+)", output)
    assert m, output
    return int(m.group(1))


async def _still_waiting(stack: Stack, db: asyncpg.Connection, before: asyncpg.Record) -> None:
    """The caller is in the queue as before: same row state and place, same live channel."""
    row = await db.fetchrow("SELECT * FROM calls WHERE id = $1", before["id"])
    assert row["state"] == "waiting"
    assert row["entered_queue_at"] == before["entered_queue_at"]
    async with stack.ari() as ari:
        assert before["channel_id"] in {c["id"] for c in await ari.channels()}
        holding = {b["id"]: b for b in await ari.bridges()}[f"hotline-queue-{row['queue']}"]
    assert before["channel_id"] in holding["channels"]


async def test_apply_goes_live_without_dropping_a_waiting_caller_and_rolls_back(
    stack: Stack, db: asyncpg.Connection, tmp_path: Path
) -> None:
    original = stack.config.read_text(encoding="utf-8")
    cached_before = set((VAR / "prompts").glob("*.wav"))
    notices: list[dict[str, Any]] = []
    noticed = asyncio.Event()

    def on_notice(_c: Any, _pid: int, _channel: str, payload: str) -> None:
        notice = events.parse(payload)
        if notice and notice["kind"] == events.CONFIG:
            notices.append(notice)
            noticed.set()

    await db.add_listener(events.CHANNEL, on_notice)
    try:
        stack.call("12345", "13812340001")
        await wait_until(db, "SELECT count(*) FROM calls WHERE state = 'waiting'")
        before = await db.fetchrow("SELECT * FROM calls WHERE state = 'waiting'")
        data = yaml.safe_load(original)
        numbers = {str(n["number"]) for n in data["numbers"]}
        assert "12345" in numbers and "96110" not in numbers
        assert await _live_numbers() == numbers

        # Another public number with its own greeting, a changed prompt text, a SIP phone
        # and a music-on-hold class: the dialplan, endpoints and music are all reloaded.
        data["numbers"].append({"number": "96110", "name": "反诈专线",
                                "greeting": "welcome_96110", "service": "hotline",
                                "queue": "duty"})
        data["prompts"]["welcome_96110"] = NEW_GREETING
        data["prompts"]["please_hold"] = NEW_HOLD
        data["phones"].append({"id": "8199", "type": "pjsip", "secret": "Qz7-apply-Lm4Rt9Vx2"})
        data["queues"]["t_apply"] = {"name": "t_apply", "music_on_hold": "calm"}
        candidate = tmp_path / "hotline-96110.yaml"
        candidate.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                             encoding="utf-8")

        r = stack.cli("config", "apply", str(candidate), check=False)
        assert r.returncode == 0, r.stderr + r.stdout
        applied = _version_of(r.stdout)
        assert "Asterisk files changed: extensions.conf, musiconhold.conf, pjsip.conf" \
            in r.stdout
        assert "reloaded: res_pjsip.so, res_musiconhold.so, pbx_config.so" in r.stdout

        # Asterisk's live dialplan has the number, the prompts are in place, and the
        # applied YAML is now the one `hotline run` starts with.
        assert await _live_numbers() == numbers | {"96110"}
        assert "exten => 96110,1" in _etc_file("extensions.conf")
        assert "[calm]" in _etc_file("musiconhold.conf")
        assert await _live_endpoints() >= {"8199"}
        (greeting,) = (VAR / "prompts").glob("welcome_96110-*.wav")
        assert _sound("welcome_96110") == greeting.read_bytes()
        made = prompts.prompt_file(VAR / "prompts", "please_hold", NEW_HOLD,
                                   data["hotline"].get("speech_rate", prompts.DEFAULT_RATE))
        assert _sound("please_hold") == made.read_bytes()
        assert stack.config.read_text(encoding="utf-8") == candidate.read_text(encoding="utf-8")
        await _still_waiting(stack, db, before)

        # The call-control service is told which version to read.
        await asyncio.wait_for(noticed.wait(), 5)
        assert notices == [{"kind": "config", "version": applied}]

        # A real call to the new number reaches the queue.
        stack.call("96110", "13812340002")
        await wait_until(db, "SELECT count(*) FROM calls WHERE state = 'waiting' "
                             "AND dialled_number = '96110'")

        # A port cannot move under the running services: refused, nothing changes.
        moved = dict(data, system=dict(data["system"], ari_port=PORTS["ari_port"] + 1))
        moved_file = tmp_path / "hotline-moved.yaml"
        moved_file.write_text(yaml.safe_dump(moved, allow_unicode=True, sort_keys=False),
                              encoding="utf-8")
        r = stack.cli("config", "apply", str(moved_file), check=False)
        assert r.returncode != 0
        ari_port = PORTS["ari_port"]
        assert (f"ARI (http.conf) would move from 127.0.0.1:{ari_port} to "
                f"127.0.0.1:{ari_port + 1}") in r.stderr
        assert "make stop && make run" in r.stderr
        assert "Traceback" not in r.stderr

        # A YAML with a mistake: file:line, non-zero, nothing changes, calls still work.
        extensions = _etc_file("extensions.conf")
        broken = tmp_path / "hotline-broken.yaml"
        text = candidate.read_text(encoding="utf-8").replace(
            "greeting: welcome_96110", "greting: welcome_96110")
        broken.write_text(text, encoding="utf-8")
        line = next(i for i, t in enumerate(text.splitlines(), 1) if "greting" in t)
        r = stack.cli("config", "apply", str(broken), check=False)
        assert r.returncode != 0
        assert f"{broken}:{line}: unknown key 'greting'" in r.stderr
        assert "Traceback" not in r.stderr
        m = re.search(r"recorded as failed version (\d+)", r.stderr)
        assert m, r.stderr
        failed = int(m[1])
        assert _etc_file("extensions.conf") == extensions
        assert stack.config.read_text(encoding="utf-8") == candidate.read_text(encoding="utf-8")
        assert await _live_numbers() == numbers | {"96110"}
        stack.call("12345", "13812340003")
        await wait_until(db, "SELECT count(*) = 3 FROM calls WHERE state = 'waiting'")
        await _still_waiting(stack, db, before)

        # The versions: what ran before (recorded as it was), the applied one, the failed one.
        sha = hashlib.sha256(original.encode()).hexdigest()
        first = await db.fetchval("SELECT max(id) FROM config_versions WHERE sha256 = $1 "
                                  "AND status <> 'failed' AND id < $2", sha, applied)
        assert first is not None
        r = stack.cli("config", "versions")
        rows = {int(line.split()[0]): line for line in r.stdout.splitlines()[1:]}
        assert "applied" in rows[applied] and "running now" in rows[applied]
        assert "failed" in rows[failed] and "line " in rows[failed]
        assert first in rows
        assert rows[applied].split()[4] == hashlib.sha256(
            candidate.read_bytes()).hexdigest()[:12]

        # A version that never ran cannot be rolled back to.
        r = stack.cli("config", "rollback", str(failed), check=False)
        assert r.returncode != 0 and "never ran" in r.stderr

        # Rolling back to the first brings the number set and the file back.
        r = stack.cli("config", "rollback", str(first), check=False)
        assert r.returncode == 0, r.stderr + r.stdout
        assert f"rolled back to version {first}" in r.stdout
        assert await _live_numbers() == numbers
        assert "8199" not in await _live_endpoints()
        assert stack.config.read_text(encoding="utf-8") == original
        assert await db.fetchval("SELECT status FROM config_versions WHERE id = $1",
                                 applied) == "rolled_back"
        await _still_waiting(stack, db, before)
    finally:
        await db.remove_listener(events.CHANNEL, on_notice)
        if stack.config.read_text(encoding="utf-8") != original:
            restore = tmp_path / "original.yaml"
            restore.write_text(original, encoding="utf-8")
            r = stack.cli("config", "apply", str(restore), check=False)
            if r.returncode != 0:
                stack.config.write_text(original, encoding="utf-8")
        # Other tests find a prompt's audio by its id in the cache: leave one per prompt.
        for wav in set((VAR / "prompts").glob("*.wav")) - cached_before:
            wav.unlink()
