"""The benchmark's own hotline: started with `hotline run`, in var/bench, on its own ports.

Like tests/conftest.py, but with M virtual agents whose phones answer after a short
delay, a short greeting and no wrap-up; plus, rendered into the same Asterisk, an
app_queue queue over the same phones (the comparison) and an AMI user allowed to pause
its members. The production render is untouched: the extra text goes through
`render(..., extra=...)` and only into this instance's files.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dialplan import config, render
from dialplan.render import PROMPT_DIR, VIRTUAL_PHONE_CONTEXT
from hotline.asterisk import AsteriskInstance, locate
from hotline.postgres import local_dsn
from hotline.runtime import Runtime

ROOT = Path(__file__).resolve().parents[1]
VAR = ROOT / "var" / "bench"
PORTS = {"ari_port": 19088, "ami_port": 16038, "sip_port": 16060, "desk_port": 19080}
# RTP of its own (the shipped 20000-20999 is what `make run` and the tests' stacks use):
# below SIPp's ports in tests/sip.py (24000+), room for 1,500 SIP callers.
RTP_PORTS = "21000-23999"
SIP_TARGET = f"127.0.0.1:{PORTS['sip_port']}"
# The shipped demo trunk: SIPp plays the carrier from 127.0.0.2 (its `match`). Its calls out
# (none in the bench) would go to a port nobody listens on.
TRUNK = "demo"
TRUNK_HOST = "127.0.0.2:16070"
PG_PORT = 55439
FIRST_PHONE = 7001
HOTLINE_NUMBER = "12345"
QUEUE = "duty"
# The app_queue side: a number in its own context, a queue, an AMI user of the bench's.
APPQ_NUMBER = "99000"
APPQ_CONTEXT = "hotline-bench"
APPQ = "benchq"
BENCH_AMI_USER = "hotline-bench"
GREETING_TEXT = "您好"


@dataclass(frozen=True)
class Agent:
    login: str
    phone: str

    @property
    def member(self) -> str:
        """The agent's phone as an app_queue member interface."""
        return f"Local/{self.phone}@{VIRTUAL_PHONE_CONTEXT}/n"


def bench_agents(count: int) -> list[Agent]:
    return [Agent(f"bench{i + 1:03d}", str(FIRST_PHONE + i)) for i in range(count)]


def write_config(agents: list[Agent], answer_after: float, var: Path = VAR,
                 announcements: bool = True) -> Path:
    """The shipped YAML on the bench's ports, with the bench's agents and phones."""
    data = yaml.safe_load((ROOT / "config" / "hotline.yaml").read_text(encoding="utf-8"))
    data["system"].update(PORTS)
    data["system"]["rtp_ports"] = RTP_PORTS
    trunks = [t for t in data.get("trunks", []) if t.get("id") == TRUNK]
    if not trunks:
        raise RuntimeError(f"config/hotline.yaml has no trunk {TRUNK!r}: SIP callers need it")
    trunks[0]["host"] = TRUNK_HOST
    duty = data["queues"][QUEUE]
    duty.update(wrap_up=0, ring_timeout=30, strategy="longest_idle")
    if not announcements:
        duty["announce_every"] = 0
    # A short greeting: the queue is what is measured, not the prompt.
    data["prompts"]["bench_hello"] = GREETING_TEXT
    for n in data["numbers"]:
        if n["number"] == HOTLINE_NUMBER:
            n["greeting"] = "bench_hello"
    data["phones"] = [{"id": a.phone, "type": "virtual", "answer_after": answer_after}
                      for a in agents]
    data["agents"] = [{"login": a.login, "name": f"压测{a.login[-3:]}", "phone": a.phone,
                       "initial_password": "hotline"} for a in agents]
    var.mkdir(parents=True, exist_ok=True)
    path = var / "hotline.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def announcements(queue: Any) -> str:
    """app_queue's settings for what the hotline's queue tells waiting callers (the same
    period, position, expected wait and periodic prompt), so both queues do that work."""
    every = int(getattr(queue, "announce_every", 0) or 0)
    position = bool(getattr(queue, "announce_position", False))
    wait = bool(getattr(queue, "announce_wait", False))
    prompt = getattr(queue, "periodic_prompt", None)
    lines = [f"announce-frequency = {every if every and (position or wait) else 0}",
             f"announce-position = {'yes' if position else 'no'}",
             f"announce-holdtime = {'yes' if wait else 'no'}"]
    if every and prompt:
        lines += [f"periodic-announce = {PROMPT_DIR}/{prompt}",
                  f"periodic-announce-frequency = {every}"]
    else:
        lines += ["periodic-announce-frequency = 0"]
    return "\n".join(lines) + "\n"


def appqueue_extra(agents: list[Agent], ami_secret: str, retry: int,
                   queue: Any, trunk_context: str | None = None) -> dict[str, str]:
    """What the bench adds to Asterisk's files: app_queue's queue and number (also through
    the trunk's context, so SIP callers from the carrier reach it as they reach 12345),
    an AMI user."""
    members = "".join(f"member => {a.member},0,{a.login}\n" for a in agents)
    queues = f"""
; --- added by bench/ for `make bench` only: Asterisk's own queue on the same phones ---
[{APPQ}]
strategy = leastrecent
timeout = 30
retry = {retry}
wrapuptime = 0
ringinuse = no
autofill = yes
autopause = no
joinempty = yes
leavewhenempty = no
musicclass = {getattr(queue, "music_on_hold", "default")}
{announcements(queue)}{members}"""
    extensions = f"""
; --- added by bench/ for `make bench` only: a number into app_queue ---
[{APPQ_CONTEXT}]
exten => {APPQ_NUMBER},1,NoOp(bench: app_queue)
 same => n,Answer()
 same => n,Playback({PROMPT_DIR}/bench_hello)
 same => n,Queue({APPQ})
 same => n,Hangup()
"""
    if trunk_context:
        # The trunk's context (rendered by the hotline) maps the called number; Asterisk
        # merges this second section of the same name into it.
        extensions += f"""
; --- added by bench/ for `make bench` only: app_queue's number from the carrier ---
[{trunk_context}]
exten => {APPQ_NUMBER},1,Goto({APPQ_CONTEXT},{APPQ_NUMBER},1)
"""
    manager = f"""
; --- added by bench/ for `make bench` only: pauses app_queue members, reads queue events ---
[{BENCH_AMI_USER}]
secret = {ami_secret}
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
read = agent
write = agent
"""
    return {"queues.conf": queues, "extensions.conf": extensions, "manager.conf": manager}


@dataclass
class Stack:
    """A running bench hotline and what the harness needs to talk to it."""

    config_path: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    runtime: Runtime
    dsn: str
    ari_url: str
    ari_user: str
    ari_password: str
    ami_port: int
    ami_secret: str
    agents: list[Agent]
    asterisk: AsteriskInstance
    notes: list[str] = field(default_factory=list)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hotline.cli", *args], env=self.env,
                              cwd=ROOT, capture_output=True, text=True, timeout=60)

    def status(self) -> dict[str, Any]:
        r = self.cli("status", "--json")
        try:
            return dict(json.loads(r.stdout))
        except ValueError:
            return {}

    def asterisk_pid(self) -> int:
        pidfile = self.asterisk.host(f"{self.asterisk.dirs.base}/run/asterisk.pid")
        return int(pidfile.read_text().strip())

    def desk_pid(self) -> int:
        return int((self.runtime.log_dir / "desk.pid").read_text().strip())

    def postmaster_pid(self) -> int:
        return int((self.runtime.pg_dir / "postmaster.pid").read_text().split()[0])

    def add_appqueue(self, retry: int) -> None:
        """Render this hotline's files plus the app_queue extras and load them."""
        cfg = config.load(self.config_path)
        trunk = next(t for t in cfg.trunks if t.id == TRUNK)
        files = render.render(cfg, self.asterisk.dirs, self.runtime.secrets(cfg),
                              extra=appqueue_extra(self.agents, self.ami_secret, retry,
                                                   cfg.queues[QUEUE],
                                                   render.trunk_context(trunk)))
        self.asterisk.write_config({k: files[k] for k in
                                    ("queues.conf", "extensions.conf", "manager.conf")})
        for command in ("dialplan reload", "module reload app_queue.so", "manager reload"):
            self.asterisk.ctl(command)
        shown = self.asterisk.ctl(f"queue show {APPQ}")
        members = sum(1 for line in shown.splitlines() if "Local/" in line)
        if members != len(self.agents):
            raise RuntimeError(f"app_queue did not load the bench queue: {shown[:400]!r}")
        context = render.trunk_context(trunk)
        shown = self.asterisk.ctl(f"dialplan show {APPQ_NUMBER}@{context}")
        if f"Goto({APPQ_CONTEXT},{APPQ_NUMBER},1)" not in shown.replace(" ", ""):
            raise RuntimeError(f"the trunk context {context} lacks app_queue's number "
                               f"{APPQ_NUMBER}: {shown[:400]!r}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.cli("stop")


def bench_env(config_path: Path, pg_fast: bool, var: Path = VAR) -> dict[str, str]:
    env = dict(os.environ, HOTLINE_VAR=str(var), HOTLINE_CONFIG=str(config_path),
               HOTLINE_PG_PORT=str(PG_PORT))
    for name in ("DATABASE_URL", "HOTLINE_KEYS", "HOTLINE_KEY_FILE", "HOTLINE_PG_FAST"):
        env.pop(name, None)
    if pg_fast:
        env["HOTLINE_PG_FAST"] = "1"
    return env


def ami_secret(var: Path = VAR) -> str:
    """The bench AMI user's secret, generated once (file mode 0600)."""
    path = var / "bench-ami.secret"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(18))
    return path.read_text().strip()


def start(agents: list[Agent], answer_after: float, pg_fast: bool, log: Any,
          announcements: bool = True, timeout: float = 300) -> Stack:
    """`hotline run` in var/bench; returns once every component reports ok."""
    var = VAR
    config_path = write_config(agents, answer_after, var, announcements)
    env = bench_env(config_path, pg_fast, var)
    subprocess.run([sys.executable, "-m", "hotline.cli", "stop"], env=env, cwd=ROOT,
                   capture_output=True, timeout=120)
    run_log = (var / "run.log").open("ab")
    log(f"starting the bench hotline (`hotline run`, HOTLINE_VAR={var}, log {var / 'run.log'})")
    proc = subprocess.Popen([sys.executable, "-m", "hotline.cli", "run"], env=env, cwd=ROOT,
                            stdout=run_log, stderr=subprocess.STDOUT)
    rt = Runtime(var=var.resolve(), config_path=config_path.resolve(), pg_port=PG_PORT)
    deadline = time.monotonic() + timeout
    stack: Stack | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"hotline run exited {proc.returncode}; see {var / 'run.log'}")
        if (var / "secrets.json").exists() and "pg_password" in json.loads(
                (var / "secrets.json").read_text()):
            if stack is None:
                s = rt.secrets()
                stack = Stack(
                    config_path=config_path, env=env, proc=proc, runtime=rt,
                    dsn=local_dsn(PG_PORT, rt.pg_password()),
                    ari_url=f"http://127.0.0.1:{PORTS['ari_port']}", ari_user=s.ari_user,
                    ari_password=s.ari_password, ami_port=PORTS["ami_port"],
                    ami_secret=ami_secret(var), agents=agents,
                    asterisk=AsteriskInstance(locate(), var.resolve()),
                )
            st = stack.status()
            if st.get("components") and all(c["ok"] for c in st["components"].values()):
                return stack
        time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    raise RuntimeError(f"the bench hotline did not come up in {timeout:.0f} s; see {var}")
