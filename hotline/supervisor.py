"""`hotline run`: bring the whole hotline up, keep it up, and take it down on Ctrl-C.

PostgreSQL (project-local unless DATABASE_URL is set), Asterisk with the rendered
configuration, the call-control service and the agent desk. A service that dies is
started again; Asterisk keeps callers in its bridges meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from casework import calendar as work_calendar
from casework import knowledge
from casework import units as unit_directory
from db import agents as agent_store
from db import pool as db_pool
from dialplan import config, prompts, render, speech
from hotline import postgres
from hotline.asterisk import AsteriskError, AsteriskInstance, locate
from hotline.runtime import Runtime
from ivr.ari import basic_auth

log = logging.getLogger(__name__)


class StartError(Exception):
    """A component could not be brought up (plain-words message)."""


def prepare_asterisk(rt: Runtime, cfg: config.HotlineConfig) -> AsteriskInstance:
    """Render the configuration, build the prompts and lay out Asterisk's folders."""
    inst = AsteriskInstance(locate(), rt.var)
    # The YAML's prompts, and the number words announcements are made of.
    wavs = prompts.build({**speech.WORDS, **cfg.prompts}, rt.prompts_dir, cfg.speech_rate)
    inst.prepare(wavs)
    inst.write_config(render.render(cfg, inst.dirs, rt.secrets(cfg)))
    return inst


async def wait_for_ari(cfg: config.HotlineConfig, rt: Runtime, timeout: float = 90) -> None:
    """Wait until Asterisk answers on ARI."""
    s = rt.secrets()
    url = f"http://{cfg.system.bind}:{cfg.system.ari_port}/ari/asterisk/info"
    deadline = time.monotonic() + timeout
    headers = {"Authorization": basic_auth(s.ari_user, s.ari_password)}
    async with aiohttp.ClientSession(headers=headers) as http:
        while True:
            try:
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=3)) as r:
                    if r.status == 200:
                        return
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass
            if time.monotonic() > deadline:
                raise StartError(f"Asterisk did not answer on ARI ({url}) within {timeout:.0f} s;"
                                 f" see {rt.var / 'asterisk.log'}")
            await asyncio.sleep(0.3)


async def wait_for_desk(cfg: config.HotlineConfig, timeout: float = 60) -> None:
    url = f"http://{cfg.system.bind}:{cfg.system.desk_port}/healthz"
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=3)) as r:
                    if r.status == 200:
                        return
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass
            if time.monotonic() > deadline:
                raise StartError(f"the agent desk did not come up on {url}")
            await asyncio.sleep(0.3)


async def prepare_database(rt: Runtime, cfg: config.HotlineConfig) -> None:
    """Migrate the schema and create or update the agents from the YAML."""
    pool = await db_pool.connect(rt.dsn(), retry_for=30, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await agent_store.sync_from_config(conn, cfg.agents)
            # The directory of linkage units (handler accounts too) and the knowledge base's
            # first entries, from files beside the YAML, on the first start only: afterwards
            # the admin edits them at the desk (or runs `hotline units import`), and a
            # restart must not undo that. A mistake in a file is logged, not fatal.
            first_units: list[str] = []
            if not await conn.fetchval("SELECT 1 FROM units LIMIT 1"):
                first_units = await unit_directory.load_if_present(
                    conn, rt.config_path.parent / "units.yaml", datetime.now(UTC))
            for problem in (
                first_units
                + await knowledge.seed_if_empty(
                    conn, rt.config_path.parent / "knowledge.yaml", datetime.now(UTC))):
                log.error("%s", problem)
            # Deadlines count working days: keep the holidays as current as the package.
            await work_calendar.seed_from_package(conn)
            warning = work_calendar.coverage_warning(await work_calendar.load(conn),
                                                     datetime.now(UTC))
            if warning:
                log.warning("%s", warning)
    finally:
        await pool.close()


class Service:
    """A child process that is started again if it dies."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log_file: Path):
        self.name, self.cmd, self.env, self.log_file = name, cmd, env, log_file
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def pid_file(self) -> Path:
        return self.log_file.with_suffix(".pid")

    def kill_stale(self) -> None:
        """Stop a copy left running by a `hotline run` that was killed outright."""
        try:
            pid = int(self.pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return
        if self.cmd[-1].encode() in cmdline:
            log.warning("stopping a stale %s (pid %d)", self.name, pid)
            os.kill(pid, signal.SIGKILL)

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.kill_stale()
        out = self.log_file.open("ab")
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.pid_file.write_text(str(self.proc.pid))

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            self.restarts += 1
            log.error("%s exited with %s; starting it again (see %s)", self.name,
                      self.proc.returncode, self.log_file)
            time.sleep(min(self.restarts, 5))
            self.start()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run(rt: Runtime, quiet: bool = False) -> int:
    """Bring everything up and supervise it until SIGINT/SIGTERM."""
    try:
        cfg = config.load(rt.config_path)
    except config.ConfigError as e:
        print(f"the configuration has mistakes; nothing was started:\n{e}", file=sys.stderr)
        return 2
    rt.var.mkdir(parents=True, exist_ok=True)
    if rt.pid_file.exists():
        try:
            os.kill(int(rt.pid_file.read_text()), 0)
            print(f"the hotline already runs (pid {rt.pid_file.read_text().strip()}); "
                  "`make stop` stops it", file=sys.stderr)
            return 1
        except (ValueError, ProcessLookupError):
            rt.pid_file.unlink()
    rt.pid_file.write_text(str(os.getpid()))
    started_pg = False
    asterisk: AsteriskInstance | None = None
    services: list[Service] = []
    stopping = False

    def on_signal(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        if rt.ensure_keys():
            log.info("created the encryption key file %s (mode 0600)", rt.key_file)
        if not os.environ.get("DATABASE_URL"):
            postgres.start(rt.pg_dir, rt.pg_port, rt.pg_password(), durable=rt.pg_durable)
            started_pg = True
        asyncio.run(prepare_database(rt, cfg))
        asterisk = prepare_asterisk(rt, cfg)
        asterisk.start()
        asyncio.run(wait_for_ari(cfg, rt))
        env = rt.service_env()
        env["HOTLINE_ASTERISK_DIR"] = str(asterisk.host_base)
        env["HOTLINE_RECORDINGS"] = str(rt.var / "recordings")
        services = _services(rt, env)
        for s in services:
            s.start()
        asyncio.run(wait_for_desk(cfg))
        if not quiet:
            _banner(cfg, rt)
        while not stopping:
            time.sleep(0.5)
            for s in services:
                if not stopping:
                    s.check()
            if asterisk.proc is not None and asterisk.proc.poll() is not None and not stopping:
                log.error("Asterisk exited (%s); starting it again", asterisk.proc.returncode)
                asterisk.start()
        return 0
    except (StartError, postgres.PostgresError, prompts.PromptError, AsteriskError, OSError,
            ConnectionError) as e:
        print(f"hotline could not start: {e}", file=sys.stderr)
        return 1
    finally:
        print("stopping the hotline…", file=sys.stderr)
        for s in reversed(services):
            s.stop()
        if asterisk is not None:
            asterisk.stop()
        if started_pg:
            postgres.stop(rt.pg_dir)
        rt.pid_file.unlink(missing_ok=True)


def _services(rt: Runtime, env: dict[str, str]) -> list[Service]:
    py = sys.executable
    # Only the SIP guard reads AMI (its security events, and reloading its ACL).
    guard_env = dict(env)
    if env:
        s = rt.secrets()
        guard_env.update(HOTLINE_AMI_USER=s.ami_user, HOTLINE_AMI_SECRET=s.ami_secret)
    return [
        Service("ivr", [py, "-m", "ivr"], env, rt.log_dir / "ivr.log"),
        Service("desk", [py, "-m", "agent_desk"], env, rt.log_dir / "desk.log"),
        Service("casework", [py, "-m", "casework"], env, rt.log_dir / "casework.log"),
        Service("sipguard", [py, "-m", "hotline.sipguard"], guard_env,
                rt.log_dir / "sipguard.log"),
    ]


def stop_leftovers(rt: Runtime) -> None:
    """Stop what a `hotline run` that died outright (kill -9, OOM) left running."""
    for s in _services(rt, {}):
        s.kill_stale()
    try:
        AsteriskInstance(locate(), rt.var).kill_stale()
    except AsteriskError:
        pass
    if not os.environ.get("DATABASE_URL"):
        postgres.stop(rt.pg_dir)


def _banner(cfg: config.HotlineConfig, rt: Runtime) -> None:
    s = cfg.system
    first = cfg.agents[0] if cfg.agents else None
    login = (f"{first.login} / {first.initial_password}"
             if first and first.initial_password else "(set in the YAML)")
    numbers = " and ".join(n.number for n in cfg.numbers)
    print(f"""
hotline is up ({cfg.name}; numbers {numbers})
  agent desk:   http://{s.bind}:{s.desk_port}/   login {login}
  test call:    .venv/bin/hotline call 12345 --from 13800138000
                .venv/bin/hotline call 63160000 --from 13900139000 --dtmf 2
  status:       .venv/bin/hotline status
  logs:         {rt.var}/log/ and {rt.var}/asterisk.log
Press Ctrl-C to stop everything.
""", flush=True)


def stop(rt: Runtime, timeout: float = 30) -> int:
    """Stop a running `hotline run` of this install (through its pid file)."""
    try:
        pid = int(rt.pid_file.read_text())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        rt.pid_file.unlink(missing_ok=True)
        stop_leftovers(rt)
        print("the hotline is not running")
        return 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            print("the hotline has stopped")
            return 0
        time.sleep(0.2)
    print(f"the hotline (pid {pid}) did not stop within {timeout:.0f} s", file=sys.stderr)
    return 1
