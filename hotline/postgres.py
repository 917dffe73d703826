"""A project-local PostgreSQL cluster, used when DATABASE_URL is not set."""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger(__name__)


class PostgresError(Exception):
    """The local cluster could not be set up or started (plain-words message)."""


def _bindir() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if versions:
        return Path(versions[-1]).parent
    raise PostgresError(
        "PostgreSQL is not installed: `make run` installs it (Debian package postgresql), "
        "or set DATABASE_URL to an existing database"
    )


def _run_as() -> list[str]:
    # PostgreSQL refuses to run as root; run it as the 'postgres' user when we are root.
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
    return ["runuser", "-u", "postgres", "--"]


# Where a cluster goes when the postgres user cannot reach the folder asked for (a checkout
# under root's home or a mktemp -d folder, both 0700): one folder per asked-for path.
RELOCATED = Path("/var/lib/hotline-postgres")


def _reachable_by_others(path: Path) -> bool:
    """Whether a user other than the owner can get to path: every existing folder above it
    lets others through (o+x)."""
    for folder in path.parents:
        if folder.exists() and not os.stat(folder).st_mode & 0o001:
            return False
    return True


def cluster_dir(datadir: Path) -> Path:
    """Where the cluster asked for in datadir really lives. As root, PostgreSQL runs as
    'postgres', which cannot enter a folder only root may (root's home on Debian is 0700):
    such a cluster lives under RELOCATED instead, named after the path asked for."""
    datadir = datadir.resolve()
    if os.geteuid() != 0 or datadir.is_relative_to(RELOCATED) \
            or _reachable_by_others(datadir):
        return datadir
    tag = hashlib.sha256(str(datadir).encode()).hexdigest()[:10]
    return RELOCATED / tag / datadir.name


def _owner_for(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


def local_dsn(port: int, password: str) -> str:
    """The DSN of the project-local cluster on this port."""
    return f"postgresql://hotline:{quote(password, safe='')}@127.0.0.1:{port}/hotline"


def is_running(datadir: Path) -> bool:
    """Whether the cluster in datadir has a live postmaster."""
    pidfile = cluster_dir(datadir) / "postmaster.pid"
    if not pidfile.exists():
        return False
    try:
        pid = int(pidfile.read_text().split()[0])
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError, IndexError):
        return False
    except PermissionError:
        return True
    return True


def start(datadir: Path, port: int, password: str, durable: bool = True) -> str:
    """Create (once) and start the cluster in datadir on 127.0.0.1:port; return its DSN.

    The superuser 'hotline' logs in with a password over TCP (scram-sha-256); durable=False
    (tests only) turns fsync off for speed.
    """
    bindir = _bindir()
    prefix = _run_as()
    asked = datadir.resolve()
    datadir = cluster_dir(asked)
    if datadir != asked:
        log.info("PostgreSQL cannot enter %s (a folder only root may enter): the cluster is "
                 "kept in %s", asked, datadir)
    if not (datadir / "PG_VERSION").exists():
        datadir.mkdir(parents=True, exist_ok=True)
        if datadir != asked:
            datadir.parent.chmod(0o700)
            _owner_for(datadir.parent)
        _owner_for(datadir)
        log.info("creating a PostgreSQL cluster in %s", datadir)
        pwfile = datadir.parent / ".pwfile"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        _owner_for(pwfile)
        try:
            r = subprocess.run(
                prefix + [str(bindir / "initdb"), "-D", str(datadir), "-U", "hotline",
                          "--auth-host=scram-sha-256", "--auth-local=peer",
                          f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8"],
                capture_output=True, text=True,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if r.returncode != 0:
            raise PostgresError(f"initdb failed in {datadir}: {r.stderr.strip()[-500:]}")
    if not is_running(datadir):
        logfile = datadir.parent / "postgres.log"
        logfile.touch()
        _owner_for(logfile)
        opts = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='' "
                "-c max_connections=200")
        if not durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        r = subprocess.run(
            prefix + [str(bindir / "pg_ctl"), "-D", str(datadir), "-l", str(logfile),
                      "-o", opts, "-w", "-t", "60", "start"],
            capture_output=True, text=True,
        )
        if r.returncode != 0:
            tail = logfile.read_text(errors="replace")[-800:]
            raise PostgresError(f"PostgreSQL did not start on port {port}: {tail.strip()}")
    _ensure_database(bindir, port, password)
    return local_dsn(port, password)


def _ensure_database(bindir: Path, port: int, password: str) -> None:
    psql = [str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "hotline",
            "-d", "postgres", "-tAc"]
    env = dict(os.environ, PGPASSWORD=password)
    deadline = time.monotonic() + 30
    while True:
        r = subprocess.run(psql + ["SELECT 1 FROM pg_database WHERE datname='hotline'"],
                           capture_output=True, text=True, env=env)
        if r.returncode == 0:
            break
        if time.monotonic() > deadline:
            raise PostgresError(f"PostgreSQL on port {port} does not answer: {r.stderr.strip()}")
        time.sleep(0.3)
    if r.stdout.strip() != "1":
        subprocess.run(psql + ["CREATE DATABASE hotline"], check=True, capture_output=True,
                       env=env)


def stop(datadir: Path) -> None:
    """Stop the cluster in datadir if it runs (fast shutdown)."""
    datadir = cluster_dir(datadir)
    if not is_running(datadir):
        return
    subprocess.run(
        _run_as() + [str(_bindir() / "pg_ctl"), "-D", str(datadir), "-m", "fast", "-w", "stop"],
        capture_output=True,
    )


def pg_dump(dsn: str) -> str:
    """The whole database as SQL text (used to prove nothing personal is stored in clear)."""
    r = subprocess.run([str(_bindir() / "pg_dump"), "--no-owner", dsn],
                       capture_output=True, text=True, check=True)
    return r.stdout
