"""Find, configure, start and stop the Asterisk the hotline runs on."""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from dialplan.render import AsteriskDirs

log = logging.getLogger(__name__)

DEFAULT_ROOT = Path(
    os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))
) / "hotline" / "asterisk-root"


class AsteriskError(Exception):
    """Asterisk is missing or would not start (plain-words message)."""


@dataclass(frozen=True)
class AsteriskInstall:
    """An installed Asterisk: the machine's own, or one inside a Debian sid root."""

    root: Path | None  # None: the machine's own asterisk

    @property
    def prefix(self) -> list[str]:
        return ["chroot", str(self.root)] if self.root else []

    def host_path(self, inner: str) -> Path:
        """Where a path Asterisk sees lies on this machine."""
        return self.root / inner.lstrip("/") if self.root else Path(inner)

    def modules_dir(self) -> str:
        found = sorted(glob.glob(str(self.host_path("/usr/lib/*/asterisk/modules"))))
        found += sorted(glob.glob(str(self.host_path("/usr/lib/asterisk/modules"))))
        if not found:
            raise AsteriskError("cannot find Asterisk's modules folder")
        inner = found[0]
        if self.root:
            inner = "/" + os.path.relpath(inner, self.root)
        return inner


def locate() -> AsteriskInstall:
    """The Asterisk to use: HOTLINE_ASTERISK_ROOT, the machine's own, or the cached sid root."""
    env_root = os.environ.get("HOTLINE_ASTERISK_ROOT")
    if env_root:
        return AsteriskInstall(Path(env_root))
    if shutil.which("asterisk"):
        return AsteriskInstall(None)
    if (DEFAULT_ROOT / ".hotline-ready").exists():
        return AsteriskInstall(DEFAULT_ROOT)
    raise AsteriskError(
        "no Asterisk found: run `make run` (it provisions one with "
        "scripts/provision-asterisk.sh) or install asterisk"
    )


def write_name_files(root: Path, hostname: str | None = None) -> None:
    """Give a chroot the name files a debootstrap root lacks.

    Without /etc/hosts every call's media set-up looks up the machine's own name (and
    A.ROOT-SERVERS.NET) through DNS; a hotline on a private line has none, so each look-up
    waits for a time-out and SIP calls are answered seconds late or lost under load. The
    machine's name can change between runs of one cached root, so this is written at
    every start. No resolv.conf nameserver: nothing of the hotline needs DNS.
    """
    name = hostname or socket.gethostname()
    names = " ".join(dict.fromkeys(n for n in (name, name.split(".")[0]) if n))
    hosts = ("# Written by hotline (hotline/asterisk.py) at every start.\n"
             "127.0.0.1\tlocalhost\n"
             f"127.0.1.1\t{names}\n"
             "::1\tlocalhost ip6-localhost ip6-loopback\n")
    files = {
        "etc/hosts": hosts,
        "etc/nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files\n"
                             "networks: files\nprotocols: files\nservices: files\n",
        "etc/hostname": f"{name}\n",
    }
    for rel, text in files.items():
        path = root / rel
        if not path.exists() or path.read_text(errors="replace") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(text)
            os.replace(tmp, path)


# What Asterisk may inherit from the environment: nothing of the hotline's (the database's
# address and password, the encryption keys, the ARI secret), which its dialplan functions
# (ENV()) and any module could read.
_ASTERISK_ENV = ("PATH", "LANG", "LC_ALL", "TZ")


def asterisk_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment Asterisk starts with: only _ASTERISK_ENV of ours."""
    source = os.environ if environ is None else environ
    env = {k: source[k] for k in _ASTERISK_ENV if k in source}
    env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    return env


class AsteriskInstance:
    """One running Asterisk with the hotline's rendered configuration."""

    def __init__(self, install: AsteriskInstall, var_dir: Path):
        self.install = install
        var_dir = var_dir.resolve()
        if install.root:
            tag = hashlib.sha256(str(var_dir).encode()).hexdigest()[:10]
            base = f"/srv/hotline/{tag}"
        else:
            base = str(var_dir / "asterisk")
        self.dirs = AsteriskDirs(base=base, modules=install.modules_dir())
        self.host_base = install.host_path(base)
        self.log_file = var_dir / "asterisk.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def host(self, inner: str) -> Path:
        return self.install.host_path(inner)

    def write_config(self, files: dict[str, str]) -> None:
        """Write rendered files atomically (each one replaced whole)."""
        etc = self.host(self.dirs.etc)
        etc.mkdir(parents=True, exist_ok=True)
        etc.chmod(0o700)  # the files hold the ARI and AMI credentials
        for name, body in files.items():
            tmp = etc / f".{name}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(body)
            os.replace(tmp, etc / name)

    def prepare(self, prompts: dict[str, Path]) -> None:
        """Lay out the instance's folders, link the system sounds, copy the prompts in."""
        if self.install.root:
            write_name_files(self.install.root)
        for sub in ("lib", "spool", "spool/hotline-fallback", "spool/recording", "run", "log",
                    "data/sounds/hotline", "data/agi-bin"):
            self.host(f"{self.dirs.base}/{sub}").mkdir(parents=True, exist_ok=True)
        # Voice messages wait here in the clear until call control seals them, and the
        # fallback's files hold callers' numbers: for Asterisk's user only.
        for sub in ("spool", "spool/hotline-fallback", "spool/recording"):
            self.host(f"{self.dirs.base}/{sub}").chmod(0o700)
        system = "/usr/share/asterisk"
        links = {
            "data/sounds/en": f"{system}/sounds/en",
            "data/moh": f"{system}/moh",
            "data/rest-api": f"{system}/rest-api",
            "data/static-http": f"{system}/static-http",
            # Asterisk's XML documentation: without it, stasis refuses its configuration.
            "data/documentation": f"{system}/documentation",
        }
        for sub, target in links.items():
            link = self.host(f"{self.dirs.base}/{sub}")
            if link.is_symlink() or link.exists():
                if os.readlink(link) == target:
                    continue
                link.unlink()
            os.symlink(target, link)  # resolved by Asterisk, inside its root
        dest = self.host(f"{self.dirs.data}/sounds/hotline")
        for pid, wav in prompts.items():
            shutil.copyfile(wav, dest / f"{pid}.wav")

    def _pidfile(self) -> Path:
        return self.host(f"{self.dirs.base}/run/asterisk.pid")

    def kill_stale(self) -> None:
        """Stop an Asterisk left running for this instance by an earlier, killed run."""
        pidfile = self._pidfile()
        if not pidfile.exists():
            return
        try:
            pid = int(pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (ValueError, OSError):
            return
        if b"asterisk" in cmdline and self.dirs.etc.encode() in cmdline:
            log.warning("stopping a stale Asterisk (pid %d) of this instance", pid)
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)

    def start(self) -> None:
        """Start Asterisk in the foreground of a child process (logs to asterisk.log)."""
        self.kill_stale()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        out = self.log_file.open("ab")
        cmd = self.install.prefix + [
            "asterisk", "-C", f"{self.dirs.etc}/asterisk.conf", "-f", "-n", "-q",
        ]
        log.info("starting Asterisk: %s", " ".join(cmd))
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, env=asterisk_env(),
        )

    def ctl(self, command: str) -> str:
        """Run an Asterisk CLI command through its control socket; return its output."""
        r = subprocess.run(
            self.install.prefix
            + ["asterisk", "-C", f"{self.dirs.etc}/asterisk.conf", "-rx", command],
            capture_output=True, text=True, timeout=30,
        )
        return r.stdout

    def stop(self, timeout: float = 10) -> None:
        """Stop the Asterisk this object started."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
