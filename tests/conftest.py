"""The real stack, started once per test session: PostgreSQL, Asterisk, call control, desk.

It runs `hotline run` itself (the command `make run` uses) on its own ports and state
folder (var/test), so it can run beside a `make run` of the same checkout.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
import wave
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import hypothesis
import pytest
import yaml

from db import events
from db.crypto import load_keyring
from dialplan import config as hotline_config
from dialplan import prompts, render
from hotline.postgres import local_dsn
from ivr.ari import Ari
from tests.link import CuttableLink
from tests.sip import FarEnd, far_end

# The workflow tests' own PostgreSQL (fixtures pg_dsn, conn).
pytest_plugins = ["tests.workflow_db"]

# Property tests draw the same examples every run, so `make test` passes or fails on the
# code, not on luck; HOTLINE_FUZZ_RANDOM=1 draws fresh ones to hunt for new failures (a
# failure found that way becomes an explicit example in its test).
hypothesis.settings.register_profile("fixed", derandomize=True, database=None)
hypothesis.settings.register_profile("random", database=None)
hypothesis.settings.load_profile("random" if os.environ.get("HOTLINE_FUZZ_RANDOM") else "fixed")

ROOT = Path(__file__).resolve().parents[1]
# HOTLINE_TEST_SLOT=N runs a second, separate stack (own state folder and ports), so two
# test runs on one machine do not stop each other's.
_SLOT = int(os.environ.get("HOTLINE_TEST_SLOT", "0"))
VAR = ROOT / "var" / ("test" if _SLOT == 0 else f"test{_SLOT}")
PORTS = {"ari_port": 18088 + _SLOT * 100, "ami_port": 15038 + _SLOT * 100,
         "sip_port": 15060 + _SLOT * 100, "desk_port": 18080 + _SLOT * 100,
         "agi_port": 14573 + _SLOT * 100}
PG_PORT = 55433 + _SLOT
# The demo carrier (the shipped trunk `demo`): SIPp citizens call from 127.0.0.2, and the
# hotline's calls out reach a SIPp far end there, on a port of this slot.
CARRIER_IP = "127.0.0.2"
CARRIER_PORT = 15070 + _SLOT * 100
# A second carrier, trunk `backup` at 127.0.0.6: calls out go there when the demo trunk
# fails (tests/ivr/test_trunk_bad_input_e2e.py).
BACKUP_IP = "127.0.0.6"
BACKUP_PORT = 15072 + _SLOT * 100
# A carrier's far end that vanished without a BYE is noticed after this many seconds without
# RTP (60 in production): short, for the tests.
RTP_TIMEOUT = 8
SIP_TARGET = f"127.0.0.1:{PORTS['sip_port']}"
# Call control reaches ARI through a link the tests can cut (tests/link.py).
ARI_LINK_PORT = PORTS["ari_port"] + 1


def _test_config() -> Path:
    """The shipped YAML, on test ports, with short ring time and a phone nobody answers."""
    data = yaml.safe_load((ROOT / "config" / "hotline.yaml").read_text(encoding="utf-8"))
    data["system"].update(PORTS)
    data["trunks"][0]["host"] = f"{CARRIER_IP}:{CARRIER_PORT}"
    data["trunks"][0]["rtp_timeout"] = RTP_TIMEOUT
    data["trunks"].append({"id": "backup", "name": "备用运营商（SIPp，127.0.0.6）",
                           "match": [BACKUP_IP], "host": f"{BACKUP_IP}:{BACKUP_PORT}"})
    data["dial_out"]["trunks"] = ["demo", "backup"]
    # The duty room's network: a SIP desk phone registers from 127.0.0.4 (agent_sip on the
    # shipped phone 8101); 127.0.0.5 plays a phone outside it.
    data["system"]["phone_networks"] = ["127.0.0.1/32", "127.0.0.4/32"]
    data["agents"].append({"login": "agent_sip", "name": "周军", "phone": "8101",
                           "initial_password": "hotline"})
    data["dial_out"]["ring_seconds"] = 15
    # Test runs call the same numbers back again and again (var/test is kept between runs);
    # the cap itself is tested in tests/db/test_dialguard.py.
    data["dial_out"]["max_per_number_per_hour"] = 100
    data["queues"]["duty"]["ring_timeout"] = 6
    data["queues"]["duty"]["wrap_up"] = 3
    data["phones"].append({"id": "8004", "type": "virtual", "answer_after": 1})
    data["agents"].append({"login": "lead1", "name": "陈主任", "role": "supervisor",
                           "phone": "8004", "initial_password": "hotline"})
    # Prompts spoken faster than the shipped 175 words a minute (hotline.speech_rate), and
    # shorter wording of the longest ones (10-15 s as shipped): every call of the tests
    # waits through them, and the tests time their keys by `prompt_seconds`.
    data["hotline"]["speech_rate"] = 240
    data["prompts"].update({
        "welcome_12345": "您好，这里是市长热线，请稍候。",
        "menu_63160000": "热线请按1，线索请按2，查询请按3，进度请按4。",
        "ask_callback": "请输入回拨号码，按井号结束。",
        "please_hold": "请稍候，如需回拨请按1。",
        "voice_message": "坐席全忙，请留言，按井号结束。",
        "callback_ok": "已保留排队位置，请挂机。",
        "progress_ask_case": "请输入工单编号，按井号结束。",
        "progress_ask_code": "请输入查询码。",
        "progress_wrong": "编号或查询码不对。",
        "progress_gave_up": "查询未成功，再见。",
        "progress_bye": "再见。",
        "callback_confirm": "回拨号码：",
        "callback_keys": "确认按1，等候按2。",
        "callback_agent": "正在回拨。",
        "voice_message_thanks": "留言已记录。",
    })
    # One test number per strategy, each with its own queue and a short greeting.
    data["prompts"]["t_hello"] = "您好"
    for number, queue, extra in (
        ("96001", "t_ring_all", {"strategy": "ring_all"}),
        ("96002", "t_round_robin", {"strategy": "round_robin"}),
        ("96003", "t_fewest", {"strategy": "fewest_calls"}),
        ("96004", "t_priority", {"priority_weight": 2}),
        ("96005", "t_overflow", {"max_wait": 8, "announce_every": 3}),
        ("96006", "t_callback", {"callback_key": "1", "announce_every": 0}),
    ):
        data["queues"][queue] = {"name": queue, "ring_timeout": 6, "wrap_up": 1, **extra}
        data["numbers"].append({"number": number, "name": queue, "greeting": "t_hello",
                                "queue": queue, "service": "hotline"})
    data["numbers"][-3].pop("service")
    data["numbers"][-3]["menu"] = {
        "prompt": "t_hello", "timeout": 1, "default": "hotline",
        "options": {"1": "hotline", "9": {"service": "hotline", "priority": 3}},
    }
    # The progress lookup by phone (tests/ivr/test_progress_e2e.py): key 1.
    data["numbers"].append({"number": "96007", "name": "t_progress", "greeting": "t_hello",
                            "menu": {"prompt": "t_hello", "timeout": 3, "default": "hotline",
                                     "options": {"1": "progress"}}})
    data["phones"].append({"id": "8009", "type": "virtual", "answer_after": "never"})
    data["agents"].append({"login": "agent3", "name": "王芳", "phone": "8009",
                           "initial_password": "hotline"})
    # A softphone at the desk: agent_web's browser (tests/agent_desk/test_softphone_browser.py),
    # registering with the secret generated at start (none in the YAML).
    data["phones"].append({"id": "8201", "type": "webrtc"})
    data["agents"].append({"login": "agent_web", "name": "李娜", "phone": "8201",
                           "initial_password": "hotline"})
    VAR.mkdir(parents=True, exist_ok=True)
    # The linkage units (with their handlers) and the knowledge base are read from beside
    # the YAML, as in a real install.
    for name in ("units.yaml", "knowledge.yaml"):
        (VAR / name).write_bytes((ROOT / "config" / name).read_bytes())
    path = VAR / "hotline.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class Stack:
    """Handles on the running hotline for tests."""

    config: Path
    env: dict[str, str]
    dsn: str
    desk_url: str
    ari_url: str
    ari_user: str
    ari_password: str
    proc: subprocess.Popen[bytes]
    ari_link: CuttableLink

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the `hotline` command against this stack."""
        return subprocess.run(
            [sys.executable, "-m", "hotline.cli", *args], env=self.env, cwd=ROOT,
            capture_output=True, text=True, check=check, timeout=60,
        )

    def status(self) -> dict[str, Any]:
        r = self.cli("status", "--json", check=False)
        try:
            return dict(json.loads(r.stdout))
        except ValueError:
            return {"error": r.stderr[-2000:]}  # not up yet: the caller asks again

    def call(self, number: str, caller: str, *extra: str) -> str:
        """Place a citizen call on a Local channel (keys and sounds timed inside Asterisk;
        SIP calls are tests/sip.py's); return the citizen-side channel id."""
        out = self.cli("call", number, "--from", caller, "--local", *extra).stdout
        return out.split("channel ")[1].split()[0]

    def prompt_seconds(self, prompt: str) -> float:
        """How long a generated prompt plays (with the wording of this stack's YAML: an
        earlier wording's file may still be in the cache)."""
        cfg = hotline_config.load(self.config)
        wav = prompts.prompt_file(VAR / "prompts", prompt, cfg.prompts[prompt], cfg.speech_rate)
        with wave.open(str(wav)) as w:
            return w.getnframes() / w.getframerate()

    def keyring(self) -> Any:
        return load_keyring(VAR / "keys.json")

    def ari(self, subscribe_all: bool = False) -> Ari:
        # A name of its own: two observers of one name would keep replacing each other.
        return Ari(self.ari_url, self.ari_user, self.ari_password,
                   f"hotline-test-observer-{uuid.uuid4().hex[:8]}",
                   subscribe_all=subscribe_all)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    config = _test_config()
    link = CuttableLink(ARI_LINK_PORT, PORTS["ari_port"])
    env = dict(os.environ, HOTLINE_VAR=str(VAR), HOTLINE_CONFIG=str(config),
               HOTLINE_PG_PORT=str(PG_PORT), HOTLINE_PG_FAST="1",
               HOTLINE_ARI_URL=f"http://127.0.0.1:{ARI_LINK_PORT}")
    env.pop("DATABASE_URL", None)
    env.pop("HOTLINE_KEYS", None)
    env.pop("HOTLINE_KEY_FILE", None)
    subprocess.run([sys.executable, "-m", "hotline.cli", "stop"], env=env, cwd=ROOT,
                   capture_output=True)
    log = (VAR / "run.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "hotline.cli", "run"], env=env, cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        s = _wait_until_up(config, env, proc, link)
    except BaseException:
        # Whatever failed, never leave the stack running for the next run to trip on.
        _stop(proc, link)
        raise
    yield s
    _stop(proc, link)


def _stop(proc: subprocess.Popen[bytes], link: CuttableLink) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
    link.close()


def _wait_until_up(config: Path, env: dict[str, str], proc: subprocess.Popen[bytes],
                   link: CuttableLink) -> Stack:
    secrets = None
    s = None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"hotline run exited {proc.returncode}; see {VAR / 'run.log'}")
        secrets = (json.loads((VAR / "secrets.json").read_text())
                   if (VAR / "secrets.json").exists() else None)
        if secrets and "pg_password" in secrets:
            s = Stack(config, env, local_dsn(PG_PORT, secrets["pg_password"]),
                      f"http://127.0.0.1:{PORTS['desk_port']}",
                      f"http://127.0.0.1:{PORTS['ari_port']}", secrets["ari_user"],
                      secrets["ari_password"], proc, link)
            st = s.status()
            if st.get("components") and all(c["ok"] for c in st["components"].values()):
                break
        time.sleep(1)
    else:
        pytest.fail(f"the hotline did not come up in 240 s; see {VAR}")
    assert s is not None
    return s


@pytest.fixture
async def carrier(tmp_path: Path) -> AsyncIterator[FarEnd]:
    """The demo carrier's far end for calls out (SIPp): it rings, answers after a second,
    and reports what it saw (number dialled, caller ID, P-Asserted-Identity)."""
    far = await far_end(CARRIER_IP, CARRIER_PORT, answer_after=1.0, hold=60,
                        log_dir=tmp_path / "carrier")
    yield far
    await far.stop()


@pytest.fixture
async def db(stack: Stack) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(stack.dsn)
    yield conn
    await conn.close()


@pytest.fixture
async def clean(stack: Stack, db: asyncpg.Connection) -> AsyncIterator[None]:
    """Each test starts with no live call and every agent logged out."""
    await _hang_up_everything(stack, db)
    yield
    await _hang_up_everything(stack, db)


async def _hang_up_everything(stack: Stack, db: asyncpg.Connection) -> None:
    await db.execute("UPDATE agents SET state = 'logged_out', reason = NULL, after_call = NULL,"
                     " wrap_up_until = NULL")
    await db.execute("UPDATE announcement SET mode = 'off', text = ''")
    await db.execute("DELETE FROM desk_sessions")
    # One test's wrong passwords must not lock the next one out.
    await db.execute("DELETE FROM login_throttle")
    # Nor one test's flood shut an address out of the next (the SIP guard reopens at once).
    if await db.fetchval("UPDATE sip_bans SET lifted_at = now(), lifted_by = 'test cleanup' "
                         "WHERE lifted_at IS NULL RETURNING true"):
        await events.notify(db, events.SIP_BANS)
    async with stack.ari() as ari:
        for ch in await ari.channels():
            await ari.channel(ch["id"]).hangup()
    # A caller waiting to be called back has no channel left to hang up: end that call.
    await db.execute("UPDATE calls SET state = 'ended', ended_at = now(), "
                     "end_reason = 'test_cleanup' WHERE state = 'waiting' "
                     "AND callback_at IS NOT NULL")
    await wait_until(db, "SELECT count(*) = 0 FROM calls WHERE state <> 'ended'", timeout=20)
    await db.execute("UPDATE agents SET state = 'logged_out', reason = NULL")


async def wait_until(db: asyncpg.Connection, sql: str, *args: Any, timeout: float = 30) -> Any:
    """Poll a query until it returns a true value (the system under test is asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await db.fetchval(sql, *args)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for: {sql} {args}")
        await asyncio.sleep(0.2)


class DeskClient:
    """An agent at the desk: HTTP session with cookie and CSRF, plus the WebSocket."""

    def __init__(self, base: str):
        self.base = base
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.messages: list[dict[str, Any]] = []
        self._reader: asyncio.Task[None] | None = None
        self._new = asyncio.Event()

    async def login(self, login: str, password: str = "hotline") -> dict[str, Any]:
        async with self.http.post(f"{self.base}/api/login",
                                  json={"login": login, "password": password}) as r:
            body = await r.json()
            assert r.status == 200, body
        self.csrf = body["csrf"]
        return body["agent"]

    async def request(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        headers = {"X-Hotline-CSRF": self.csrf}
        async with self.http.request(method, f"{self.base}{path}", headers=headers, **kw) as r:
            return r.status, await r.json()

    async def set_state(self, state: str) -> dict[str, Any]:
        status, body = await self.request("POST", "/api/agent/state", json={"state": state})
        assert status == 200, body
        return body["agent"]

    async def connect_ws(self) -> None:
        self.ws = await self.http.ws_connect(f"{self.base}/ws")
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.messages.append(json.loads(msg.data))
                self._new.set()

    async def expect(self, kind: str, timeout: float = 30, **match: Any) -> dict[str, Any]:
        """Wait for a pushed message of this type (and matching fields)."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for m in self.messages[seen:]:
                if m.get("type") == kind and all(
                    _dig(m, k) == v for k, v in match.items()
                ):
                    return m
            seen = len(self.messages)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                kinds = [m.get("type") for m in self.messages]
                raise AssertionError(f"no {kind} {match} pushed within {timeout} s; got {kinds}")
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), remaining)
            except TimeoutError:
                pass

    async def close(self) -> None:
        if self._reader:
            self._reader.cancel()
        if self.ws:
            await self.ws.close()
        await self.http.close()


def _dig(message: dict[str, Any], dotted: str) -> Any:
    value: Any = message
    for part in dotted.split("__"):
        value = value.get(part) if isinstance(value, dict) else None
    return value


@pytest.fixture
async def desk(stack: Stack) -> AsyncIterator[Any]:
    """A factory of logged-in desk clients, closed at the end of the test."""
    clients: list[DeskClient] = []

    async def make(login: str) -> DeskClient:
        c = DeskClient(stack.desk_url)
        clients.append(c)
        await c.login(login)
        await c.connect_ws()
        return c

    yield make
    for c in clients:
        await c.close()


def closed_port() -> int:
    """A loopback port nothing listens on (for "not reachable" tests)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def new_id() -> str:
    return uuid.uuid4().hex[:8]


__all__ = ["Stack", "DeskClient", "wait_until", "render", "new_id"]
