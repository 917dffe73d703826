"""`hotline config apply` and `rollback`: put a YAML live without dropping a call.

An apply, in order; each step that fails stops it with nothing changed:

1. validate the YAML (``dialplan.config``): mistakes are reported as ``file:line``;
2. render Asterisk's files and compare them with the ones Asterisk runs on; a change of
   where ARI, AMI, SIP or the desk listen cannot be made live and is refused (restart);
3. make the prompt audio (espeak-ng, cached) and connect to AMI (panoramisk);
4. write the changed files and prompts, each replaced atomically, keeping what they
   replaced; reload only the modules whose files changed (AMI ``Reload``) and check
   Asterisk's answer and its live dialplan and endpoints afterwards;
5. if Asterisk refuses or the check fails, put the previous files back and reload again:
   the last good configuration keeps running;
6. copy the YAML over the live configuration file (``HOTLINE_CONFIG``, by default
   ``config/hotline.yaml``), so ``hotline run`` starts with it next time;
7. record the version (``db.config_versions``) and send a ``config`` notice, on which the
   call-control service re-reads the YAML for its queue settings.

Reloading the dialplan, endpoints or music on hold leaves channels alone: a caller in the
queue's holding bridge keeps the line and the place (the place is a row in PostgreSQL).

Every attempt is recorded, failed ones with the reason. The YAML that is running when an
apply comes (``hotline run`` started with it) is first recorded as a ``baseline`` version
if it is not the last one recorded, so it can be rolled back to. ``rollback N`` applies
version N's YAML again through the same steps.
"""

from __future__ import annotations

import asyncio
import dataclasses
import getpass
import logging
import os
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import asyncpg
from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol

from db import config_versions as store
from db import events, migrate
from db.config_versions import ConfigVersion
from dialplan import config, prompts, render
from dialplan.config import HotlineConfig
from hotline.asterisk import AsteriskError, AsteriskInstance, locate
from hotline.runtime import Runtime

log = logging.getLogger(__name__)

# Only one apply or rollback at a time per database (any constant distinct from migrate's).
LOCK_ID = 0x48434647
RESTART_HINT = "make stop && make run"
HEADER = "; Rendered by hotline"
AMI_TIMEOUT = 30.0

# What AMI's `Reload` is given (Module=...) when a rendered file changes.
RELOADS: dict[str, str] = {
    "pjsip.conf": "res_pjsip.so",
    "musiconhold.conf": "res_musiconhold.so",
    "ari.conf": "res_ari.so",
    "http.conf": "http",
    "manager.conf": "manager",
    "logger.conf": "logger",
    "rtp.conf": "res_rtp_asterisk.so",
    "queues.conf": "app_queue.so",
    "features.conf": "features",
    "indications.conf": "indications",
    "cdr.conf": "cdr",
    "cel.conf": "cel",
    "acl.conf": "acl",
    "udptl.conf": "udptl",
    "pjproject.conf": "res_pjproject.so",
    # Last: by then the endpoints and music-on-hold classes it names are in place.
    "extensions.conf": "pbx_config.so",
}
# Files Asterisk reads only when it starts (ccss: "Module does not support reload").
START_ONLY = ("asterisk.conf", "modules.conf", "stasis.conf", "ccss.conf")


# What a lost or refusing database raises (asyncpg's connection errors are not all
# PostgresError).
DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


class ApplyError(Exception):
    """An apply, rollback or listing could not be done (plain-words message)."""


@dataclass(frozen=True)
class ApplyResult:
    """What an apply or rollback did; ``message`` is meant for the operator as it is."""

    ok: bool
    message: str
    version_id: int | None = None
    changed: tuple[str, ...] = ()
    reloaded: tuple[str, ...] = ()
    prompts: tuple[str, ...] = ()


# -- deciding what to do (pure) -------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Which rendered files changed, what to reload for them, and why a restart is needed."""

    changed: tuple[str, ...]
    reloads: tuple[str, ...]
    restart_reasons: tuple[str, ...]


def body(text: str | None) -> str | None:
    """A rendered file without its "Rendered by hotline from <file>" header line.

    The header names the YAML it came from, which says nothing about what Asterisk does,
    so it is left out when deciding whether a file changed.
    """
    if text is None:
        return None
    if text.startswith(HEADER):
        return text.split("\n", 1)[1] if "\n" in text else ""
    return text


def changed_files(old: Mapping[str, str | None], new: Mapping[str, str]) -> tuple[str, ...]:
    """The names of new files whose content differs from (or is missing in) the old set."""
    return tuple(sorted(n for n, text in new.items() if body(old.get(n)) != body(text)))


def reload_modules(changed: Iterable[str]) -> tuple[str, ...]:
    """The AMI Reload modules for these changed files, in RELOADS' order, each once."""
    wanted = set(changed)
    return tuple(module for name, module in RELOADS.items() if name in wanted)


def _setting(conf: str, section: str, key: str) -> str | None:
    """A value from an Asterisk .conf file (first match of key in [section])."""
    current = None
    for raw in conf.splitlines():
        line = raw.split(";", 1)[0].strip()
        if line.startswith("["):
            current = line[1:].split("]", 1)[0].strip()
        elif current == section and "=" in line:
            k, v = line.split("=", 1)
            if k.strip() == key:
                return v.lstrip(">").strip()
    return None


def listen_addresses(files: Mapping[str, str | None]) -> dict[str, str]:
    """Where the rendered files make Asterisk listen: service -> address:port."""
    out: dict[str, str] = {}
    http = files.get("http.conf")
    if http:
        out["ARI (http.conf)"] = (f"{_setting(http, 'general', 'bindaddr')}:"
                                  f"{_setting(http, 'general', 'bindport')}")
    manager = files.get("manager.conf")
    if manager:
        out["AMI (manager.conf)"] = (f"{_setting(manager, 'general', 'bindaddr')}:"
                                     f"{_setting(manager, 'general', 'port')}")
    pjsip = files.get("pjsip.conf")
    if pjsip:
        out["SIP (pjsip.conf)"] = str(_setting(pjsip, "transport-udp", "bind"))
    return out


def restart_reasons(
    old_files: Mapping[str, str | None],
    new_files: Mapping[str, str],
    old_desk_port: int | None,
    new_desk_port: int,
    old_agi_port: int | None = None,
    new_agi_port: int | None = None,
) -> tuple[str, ...]:
    """Why this change cannot be made while the hotline runs (empty: it can)."""
    reasons: list[str] = []
    old_at, new_at = listen_addresses(old_files), listen_addresses(new_files)
    for what, was in old_at.items():
        now = new_at.get(what)
        if now is not None and now != was:
            reasons.append(f"{what} would move from {was} to {now}")
    if old_desk_port is not None and old_desk_port != new_desk_port:
        reasons.append(f"the agent desk would move from port {old_desk_port} to {new_desk_port}")
    if old_agi_port is not None and new_agi_port is not None and old_agi_port != new_agi_port:
        # Call control listens for FastAGI on the old port until it restarts.
        reasons.append(f"the progress lookup (FastAGI) would move from port {old_agi_port} "
                       f"to {new_agi_port}")
    for name in changed_files(old_files, new_files):
        if name in START_ONLY:
            reasons.append(f"{name} changed, and Asterisk reads it only when it starts")
        elif name not in RELOADS:
            reasons.append(f"{name} changed, and it cannot be reloaded live")
    return tuple(reasons)


def make_plan(
    old_files: Mapping[str, str | None],
    new_files: Mapping[str, str],
    old_desk_port: int | None,
    new_desk_port: int,
    old_agi_port: int | None = None,
    new_agi_port: int | None = None,
) -> Plan:
    """Decide what an apply changes, reloads, or why it must be refused."""
    changed = changed_files(old_files, new_files)
    return Plan(changed, reload_modules(changed),
                restart_reasons(old_files, new_files, old_desk_port, new_desk_port,
                                old_agi_port, new_agi_port))


def changed_prompts(dest: Path, wavs: Mapping[str, Path]) -> dict[str, Path]:
    """The built prompts whose audio differs from what Asterisk has in dest (or lacks)."""
    out: dict[str, Path] = {}
    for pid, wav in sorted(wavs.items()):
        current = _read_bytes(dest / f"{pid}.wav")
        if current is None or current != wav.read_bytes():
            out[pid] = wav
    return out


def who() -> str:
    """The operating-system user applying, as recorded with the version."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid {os.getuid()}"
    sudo = os.environ.get("SUDO_USER")
    return f"{user} (sudo {sudo})" if sudo and sudo != user else user


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace a file whole: readers see the old or the new one, never half of it.

    A prompt being played keeps its open (old) file, instead of hearing it rewritten.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)  # os.open's mode is filtered by the umask
    os.replace(tmp, path)


# -- AMI --------------------------------------------------------------------------------------


class AmiError(Exception):
    """AMI is not reachable, or Asterisk refused or failed a check (plain-words message)."""


class AmiClient(Protocol):
    """What an apply needs of an AMI connection (a fake one in unit tests)."""

    async def send(self, action: dict[str, str]) -> list[Mapping[str, Any]]:
        """Send an action; return the response and any events of its list."""
        ...


class _AsDebug(logging.LoggerAdapter):
    """panoramisk's own log lines ("Connection lost"...) as our debug lines: the apply
    reports what went wrong in plain words itself."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        super().log(logging.DEBUG, msg, *args, **kwargs)


class _Protocol(AMIProtocol):
    """panoramisk's protocol, logging through _AsDebug from its first line on."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        # The banner may arrive before the Manager hands the protocol its own logger.
        self.log = _AsDebug(log, {})


class PanoramiskAmi:
    """An AMI connection through panoramisk, logged in."""

    def __init__(self, manager: Manager):
        self.manager = manager

    async def send(self, action: dict[str, str]) -> list[Mapping[str, Any]]:
        """Send an action; return the response and any events of its list."""
        try:
            answer = await asyncio.wait_for(self.manager.send_action(dict(action)), AMI_TIMEOUT)
        except TimeoutError:
            raise AmiError(f"Asterisk did not answer AMI's {action['Action']} within "
                           f"{AMI_TIMEOUT:.0f} s") from None
        return list(answer) if isinstance(answer, list) else [answer]


@asynccontextmanager
async def ami_session(host: str, port: int, user: str, secret: str,
                      timeout: float = 10) -> AsyncIterator[PanoramiskAmi]:
    """Connect and log in to AMI; close the connection at the end."""
    where = f"{host}:{port}"
    # No events (the hotline reads them over ARI), and no reconnects or pings: this
    # connection lives for one apply only.
    manager = Manager(host=host, port=port, username=user, secret=secret, events="off",
                      ping_delay=3600, reconnect_timeout=3600, log=_AsDebug(log, {}),
                      protocol_factory=_Protocol)
    try:
        try:
            await asyncio.wait_for(manager.connect(), timeout)
        except (OSError, TimeoutError):
            raise AmiError(f"Asterisk's manager interface (AMI) is not reachable on {where}: "
                           "is the hotline running (`make run`)?") from None
        login = manager.authenticated_future
        if login is None:
            raise AmiError(f"could not log in to AMI on {where}")
        try:
            answer = await asyncio.wait_for(asyncio.shield(login), timeout)
        except TimeoutError:
            raise AmiError(f"AMI on {where} did not answer the login") from None
        if not answer.success:
            raise AmiError(f"AMI on {where} refused the hotline's login "
                           f"({answer.get('Message', 'no reason given')}); are {where} and "
                           "var/secrets.json those of the running hotline?")
        yield PanoramiskAmi(manager)
    finally:
        manager.close()


def _first(answer: list[Mapping[str, Any]]) -> Mapping[str, Any]:
    return answer[0] if answer else {}


async def reload(ami: AmiClient, module: str) -> None:
    """Reload one module; raise AmiError with Asterisk's reason if it refuses."""
    first = _first(await ami.send({"Action": "Reload", "Module": module}))
    if first.get("Response") != "Success":
        reason = first.get("Message") or "no reason given"
        raise AmiError(f"Asterisk refused to reload {module}: {reason}")


async def dialplan_extensions(ami: AmiClient, context: str) -> set[str]:
    """The extensions Asterisk's live dialplan has in a context (empty if it has none)."""
    answer = await ami.send({"Action": "ShowDialPlan", "Context": context})
    first = _first(answer)
    if first.get("Response") != "Success":
        if "did not find context" in str(first.get("Message", "")).lower():
            return set()
        raise AmiError(f"Asterisk would not show its dialplan: {first.get('Message')}")
    return {str(m["Extension"]) for m in answer[1:]
            if m.get("Event") == "ListDialplan" and m.get("Extension")}


async def pjsip_endpoints(ami: AmiClient) -> set[str]:
    """The PJSIP endpoints Asterisk has configured now."""
    answer = await ami.send({"Action": "PJSIPShowEndpoints"})
    first = _first(answer)
    if first.get("Response") != "Success":
        if "no endpoints" in str(first.get("Message", "")).lower():
            return set()
        raise AmiError(f"Asterisk would not list its SIP endpoints: {first.get('Message')}")
    return {str(m["ObjectName"]) for m in answer[1:]
            if m.get("Event") == "EndpointList" and m.get("ObjectName")}


async def verify(ami: AmiClient, cfg: HotlineConfig, reloaded: Iterable[str]) -> None:
    """Check that Asterisk runs what was just reloaded; raise AmiError if not."""
    pong = _first(await ami.send({"Action": "Ping"}))
    if pong.get("Response") != "Success":
        raise AmiError("Asterisk did not answer a ping after the reload")
    modules = set(reloaded)
    if "pbx_config.so" in modules:
        # Patterns ("_X.": not a hotline number) are not numbers.
        live = await dialplan_extensions(ami, render.INBOUND_CONTEXT)
        have = {e for e in live if not e.startswith("_")}
        want = {n.number for n in cfg.numbers}
        if have != want:
            raise AmiError(f"after the reload Asterisk's dialplan answers the numbers "
                           f"{', '.join(sorted(have)) or 'none'}, not "
                           f"{', '.join(sorted(want))}")
    if "res_pjsip.so" in modules:
        # Desk phones, softphones and the carriers' trunks: each is an endpoint.
        want = {p.id for p in cfg.phones.values() if p.type in ("pjsip", "webrtc")}
        want |= {t.endpoint for t in cfg.trunks}
        missing = want - await pjsip_endpoints(ami)
        if missing:
            raise AmiError("after the reload Asterisk lacks the SIP phone(s) or trunk(s) "
                           f"{', '.join(sorted(missing))}")


# -- writing and putting back -------------------------------------------------------------------


class Swap:
    """New files written into Asterisk's folders, with what they replaced, to put back."""

    def __init__(self, inst: AsteriskInstance):
        self.inst = inst
        self.etc = inst.host(inst.dirs.etc)
        self.sounds = inst.host(f"{inst.dirs.data}/sounds/{render.PROMPT_DIR}")
        self.old_files: dict[str, str | None] = {}
        self.old_prompts: dict[str, bytes | None] = {}

    def write(self, files: Mapping[str, str], wavs: Mapping[str, Path]) -> None:
        """Write the files and prompts (each atomically), having kept what they replace."""
        # Everything is read before anything is written, so a failure half-way through
        # can still put every file back.
        for name in files:
            self.old_files[name] = _read_text(self.etc / name)
        for pid in wavs:
            self.old_prompts[pid] = _read_bytes(self.sounds / f"{pid}.wav")
        for pid, wav in wavs.items():
            _write_atomic(self.sounds / f"{pid}.wav", wav.read_bytes())
        self.inst.write_config(dict(files))

    def put_back(self) -> None:
        """Restore what write replaced (and remove what it added)."""
        self.inst.write_config({n: t for n, t in self.old_files.items() if t is not None})
        for name, text in self.old_files.items():
            if text is None:
                (self.etc / name).unlink(missing_ok=True)
        for pid, data in self.old_prompts.items():
            if data is None:
                (self.sounds / f"{pid}.wav").unlink(missing_ok=True)
            else:
                _write_atomic(self.sounds / f"{pid}.wav", data)

    async def undo(self, ami: AmiClient, modules: Iterable[str]) -> list[str]:
        """Put the previous files back and reload them; return what went wrong, if anything."""
        problems: list[str] = []
        try:
            self.put_back()
        except OSError as e:
            problems.append(f"the previous files could not be put back ({e})")
        for module in modules:
            try:
                await reload(ami, module)
            except (AmiError, OSError, ConnectionError) as e:
                problems.append(f"reloading {module} again failed ({e})")
        return problems


async def swap_and_reload(
    inst: AsteriskInstance,
    ami: AmiClient,
    cfg: HotlineConfig,
    files: Mapping[str, str],
    wavs: Mapping[str, Path],
    modules: tuple[str, ...],
) -> Swap:
    """Write the changed files and prompts, reload and check; on failure, put all back.

    Raises ApplyError saying what Asterisk refused and whether the previous configuration
    is running again. Returns the Swap, so that a later step can still undo it.
    """
    swap = Swap(inst)
    try:
        swap.write(files, wavs)
        for module in modules:
            await reload(ami, module)
        await verify(ami, cfg, modules)
    except (AmiError, OSError, ConnectionError) as e:
        problems = await swap.undo(ami, modules)
        raise ApplyError(_undone(str(e), problems)) from None
    except BaseException:
        # Interrupted (Ctrl-C): do not leave Asterisk half-way between two versions.
        await swap.undo(ami, modules)
        raise
    return swap


def _undone(what: str, problems: list[str]) -> str:
    if not problems:
        return f"{what}. The previous configuration was put back and is running."
    return (f"{what}. Putting the previous configuration back also went wrong: "
            f"{'; '.join(problems)}. Asterisk may run a mix of both: restart the hotline "
            f"({RESTART_HINT}).")


# -- the apply --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    """A YAML to put live: from a file (apply) or from a stored version (rollback)."""

    text: str
    name: str  # how errors name it: the file's path, or "version N"
    path: Path | None
    origin: str
    rollback_of: int | None = None


@asynccontextmanager
async def _database(rt: Runtime) -> AsyncIterator[asyncpg.Connection]:
    try:
        conn = await asyncpg.connect(rt.dsn(), timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as e:
        raise ApplyError(f"the database is not reachable ({e}): is the hotline running "
                         "(`make run`)?") from None
    try:
        # The running services migrate at start; one started before this version of the
        # code lacks the versions table.
        await migrate.apply(conn)
        yield conn
    finally:
        await conn.close()


def _read_candidate(path: Path) -> tuple[str, Path]:
    """The YAML file's text (read once: what is validated is what is applied) and where
    it really is (to tell whether it is the live file itself)."""
    try:
        return path.read_text(encoding="utf-8"), path.resolve()
    except OSError as e:
        raise config.ConfigError([(str(path), 0, f"cannot read the file: {e.strerror}")]
                                 ) from None
    except UnicodeDecodeError:
        raise config.ConfigError([(str(path), 0, "the file is not UTF-8 text")]) from None


async def apply(rt: Runtime, yaml_path: str | Path) -> ApplyResult:
    """Put the YAML at yaml_path live; see the module's docstring for the steps."""
    path = Path(yaml_path)
    try:
        text, real_path = _read_candidate(path)
    except config.ConfigError as e:
        return ApplyResult(False, f"{e}\nnothing was applied; the running configuration is "
                                  "unchanged")
    cand = _Candidate(text, str(path), real_path, store.APPLY)
    try:
        cfg = config.loads(text, str(path))
    except config.ConfigError as e:
        return await _invalid(rt, cand, e)
    try:
        async with _database(rt) as conn:
            return await _apply_locked(rt, conn, cand, cfg)
    except ApplyError as e:
        return ApplyResult(False, str(e))
    except DB_ERRORS as e:
        return ApplyResult(False, _db_lost(e))


def _db_lost(e: BaseException) -> str:
    return (f"the database connection failed during the apply ({e}); `hotline config "
            "versions` and `hotline status` show what is running")


async def rollback(rt: Runtime, version_id: int) -> ApplyResult:
    """Apply an earlier version's YAML again (it must have been live once)."""
    try:
        async with _database(rt) as conn:
            version = await store.get(conn, version_id)
            if version is None:
                raise ApplyError(f"there is no configuration version {version_id}; "
                                 "`hotline config versions` lists them")
            if not version.ran:
                raise ApplyError(f"version {version_id} never ran (it failed: "
                                 f"{_first_line(version.error)}); roll back to one that did")
            cand = _Candidate(version.yaml, f"version {version_id}", None, store.ROLLBACK,
                              version_id)
            try:
                cfg = config.loads(version.yaml, cand.name)
            except config.ConfigError as e:
                # The checks may have become stricter since the version was applied.
                await _record_failed(conn, cand, str(e))
                raise ApplyError(f"{e}\nversion {version_id} no longer validates; nothing was "
                                 "applied") from None
            return await _apply_locked(rt, conn, cand, cfg)
    except ApplyError as e:
        return ApplyResult(False, str(e))
    except DB_ERRORS as e:
        return ApplyResult(False, _db_lost(e))


async def versions(rt: Runtime, limit: int = 50) -> list[ConfigVersion]:
    """The newest configuration versions first; raises ApplyError without a database."""
    try:
        async with _database(rt) as conn:
            return await store.list_versions(conn, limit)
    except DB_ERRORS as e:
        raise ApplyError(f"the versions could not be read from the database ({e})") from None


async def _invalid(rt: Runtime, cand: _Candidate, e: config.ConfigError) -> ApplyResult:
    """A YAML with mistakes: nothing is written; the attempt is recorded if possible."""
    message = (f"{e}\n{len(e.problems)} problem(s); nothing was applied, the running "
               "configuration is unchanged")
    try:
        async with _database(rt) as conn:
            version = await _record_failed(conn, cand, str(e))
    except (ApplyError, *DB_ERRORS):
        return ApplyResult(False, message)
    return ApplyResult(False, f"{message} (recorded as failed version {version.id})",
                       version.id)


async def _record_failed(conn: asyncpg.Connection, cand: _Candidate,
                         error: str) -> ConfigVersion:
    return await store.record(
        conn, yaml_text=cand.text, applied_by=who(), status=store.FAILED, origin=cand.origin,
        source=cand.name, error=error, rollback_of=cand.rollback_of,
    )


def _first_line(text: str | None) -> str:
    return (text or "").strip().split("\n", 1)[0]


async def _apply_locked(rt: Runtime, conn: asyncpg.Connection, cand: _Candidate,
                        cfg: HotlineConfig) -> ApplyResult:
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_ID):
        raise ApplyError("another `hotline config apply` or `rollback` is running; try again "
                         "when it has finished")
    try:
        return await _apply(rt, conn, cand, cfg)
    except ApplyError as e:
        try:
            version = await _record_failed(conn, cand, str(e))
        except DB_ERRORS as db_error:
            return ApplyResult(False, f"{e} (the attempt could not be recorded: {db_error})")
        return ApplyResult(False, f"{e} (recorded as failed version {version.id})",
                           version.id)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_ID)


async def _apply(rt: Runtime, conn: asyncpg.Connection, cand: _Candidate,
                 cfg: HotlineConfig) -> ApplyResult:
    live_path = rt.config_path
    in_place = cand.path == live_path
    # The rendered files name the live file, which is what `hotline run` renders from.
    cfg = dataclasses.replace(cfg, source=str(live_path))
    try:
        inst = AsteriskInstance(locate(), rt.var)
    except AsteriskError as e:
        raise ApplyError(str(e)) from None
    secrets = rt.secrets(cfg)
    new_files = render.render(cfg, inst.dirs, secrets)
    etc = inst.host(inst.dirs.etc)
    try:
        old_files = {name: _read_text(etc / name) for name in new_files}
    except OSError as e:
        raise ApplyError(f"cannot read Asterisk's files in {etc} ({e}); run this as the user "
                         "who runs the hotline") from None
    if old_files.get("extensions.conf") is None:
        raise ApplyError(f"Asterisk has no configuration in {etc} yet: start the hotline "
                         "first (`make run`)")

    live_text, live_cfg = _live(live_path)
    last = await store.last_good(conn)
    last = await _record_baseline(conn, inst, secrets, old_files, live_path, live_text,
                                  live_cfg, last, cand)
    # Where the desk listens now: the live file, unless it is the candidate itself.
    running = live_cfg if live_cfg is not None and not in_place else _config_of(last)
    old_desk = running.system.desk_port if running is not None else None
    old_agi = running.system.agi_port if running is not None else None

    plan = make_plan(old_files, new_files, old_desk, cfg.system.desk_port, old_agi,
                     cfg.system.agi_port)
    if plan.restart_reasons:
        where = (f"it is already in place as {live_path}" if in_place
                 else f"put it in place as {live_path}")
        # Moving a listener live would cut off the services connected to it.
        raise ApplyError(
            "needs a restart: " + "; ".join(plan.restart_reasons)
            + ". Nothing was changed: this cannot be applied while the hotline runs. To make "
            f"it take effect, {where} and restart the hotline: {RESTART_HINT}"
        )
    try:
        wavs = prompts.build(cfg.prompts, rt.prompts_dir, cfg.speech_rate)
        inst.prepare({})  # the folders and sound links; the prompts go in atomically below
    except prompts.PromptError as e:
        raise ApplyError(f"the prompts could not be made: {e}") from None
    except OSError as e:
        raise ApplyError(f"Asterisk's folders could not be prepared: {e}") from None
    sounds = inst.host(f"{inst.dirs.data}/sounds/{render.PROMPT_DIR}")
    new_wavs = changed_prompts(sounds, wavs)

    sha = store.sha256_of(cand.text)
    live_same = in_place or live_text == cand.text
    if not plan.changed and not new_wavs and last is not None and last.sha256 == sha \
            and live_same:
        return ApplyResult(True, f"nothing to apply: this is version {last.id}, which is "
                                 "already running", last.id)
    keep_copy = (not live_same and live_text is not None
                 and not await store.known_sha256(conn, store.sha256_of(live_text)))

    ami_at = listen_addresses(old_files).get("AMI (manager.conf)", "")
    host, _, port = ami_at.rpartition(":")
    if not host or not port.isdigit():
        host, port = cfg.system.bind, str(cfg.system.ami_port)
    changed = {n: new_files[n] for n in plan.changed}
    try:
        async with ami_session(host, int(port), secrets.ami_user, secrets.ami_secret) as ami:
            swap = await swap_and_reload(inst, ami, cfg, changed, new_wavs, plan.reloads)
            try:
                saved = None if live_same else _replace_live(live_path, cand.text, keep_copy)
            except OSError as e:
                problems = await swap.undo(ami, plan.reloads)
                raise ApplyError(_undone(f"{live_path} could not be written ({e})",
                                         problems)) from None
    except AmiError as e:
        raise ApplyError(f"{e}. Nothing was changed.") from None

    try:
        async with conn.transaction():
            version = await store.record(
                conn, yaml_text=cand.text, applied_by=who(), status=store.APPLIED,
                origin=cand.origin, source=cand.name, rollback_of=cand.rollback_of,
            )
            if cand.origin == store.ROLLBACK and last is not None and last.sha256 != sha:
                await store.mark_rolled_back(conn, last.id)
            await events.notify(conn, events.CONFIG, version=version.id)
    except DB_ERRORS as e:
        return ApplyResult(False, f"{cand.name} is live in Asterisk and in {live_path}, but "
                                  f"could not be recorded ({e}); the call-control service "
                                  "reads it when it next starts")
    return ApplyResult(True, _applied_message(version.id, cand, plan, new_wavs, live_path,
                                              saved),
                       version.id, plan.changed, plan.reloads, tuple(new_wavs))


def _live(path: Path) -> tuple[str | None, HotlineConfig | None]:
    """The live YAML's text and, if it validates, its configuration."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None, None
    try:
        return text, config.loads(text, str(path))
    except config.ConfigError:
        return text, None


def _config_of(version: ConfigVersion | None) -> HotlineConfig | None:
    if version is None:
        return None
    try:
        return config.loads(version.yaml, f"version {version.id}")
    except config.ConfigError:
        return None


async def _record_baseline(
    conn: asyncpg.Connection,
    inst: AsteriskInstance,
    secrets: render.Secrets,
    running_files: Mapping[str, str | None],
    live_path: Path,
    live_text: str | None,
    live_cfg: HotlineConfig | None,
    last: ConfigVersion | None,
    cand: _Candidate,
) -> ConfigVersion | None:
    """Record the running YAML as a version when it is not the last recorded one.

    So that the configuration `hotline run` started with can be rolled back to. It counts
    as running only if it is not the candidate being applied and Asterisk's files are the
    ones it renders to (an edit since the start would not be running).
    """
    if live_text is None or live_cfg is None or cand.path == live_path:
        return last
    if last is not None and last.sha256 == store.sha256_of(live_text):
        return last
    rendered = render.render(dataclasses.replace(live_cfg, source=str(live_path)), inst.dirs,
                             secrets)
    if changed_files(running_files, rendered):
        return last
    return await store.record(conn, yaml_text=live_text, applied_by=who(),
                              status=store.APPLIED, origin=store.BASELINE,
                              source=str(live_path))


def _replace_live(live_path: Path, text: str, keep_copy: bool) -> Path | None:
    """Put the applied YAML in place as the live file; keep unrecorded edits as a copy."""
    saved = None
    mode = 0o644
    if live_path.exists():
        mode = live_path.stat().st_mode & 0o777
        if keep_copy:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            saved = live_path.with_name(f"{live_path.name}.{stamp}.unapplied")
            _write_atomic(saved, live_path.read_bytes(), mode)
    live_path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(live_path, text.encode("utf-8"), mode)
    return saved


def _applied_message(version_id: int, cand: _Candidate, plan: Plan, wavs: Mapping[str, Path],
                     live_path: Path, saved: Path | None) -> str:
    what = f"rolled back to version {cand.rollback_of}" if cand.origin == store.ROLLBACK \
        else f"applied {cand.name}"
    lines = [f"{what}: now running as version {version_id}"]
    if plan.changed:
        lines.append(f"  Asterisk files changed: {', '.join(plan.changed)}")
        lines.append(f"  reloaded: {', '.join(plan.reloads)}")
    else:
        lines.append("  Asterisk files: unchanged")
    if wavs:
        lines.append(f"  prompts renewed: {', '.join(sorted(wavs))}")
    lines.append(f"  {live_path} holds it: `hotline run` starts with it")
    if saved is not None:
        lines.append(f"  the edits in {live_path} that were never applied are kept in {saved}")
    return "\n".join(lines)
