"""CPU time and memory of processes, read from /proc (Linux)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces and parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2:].split()


def cpu_seconds(pid: int, children: bool = False) -> float:
    """utime + stime of a process (all its threads), in seconds; with children, also the
    CPU of its children that have exited and been waited for (cutime + cstime)."""
    f = _stat_fields(pid)
    ticks = int(f[11]) + int(f[12])
    if children:
        ticks += int(f[13]) + int(f[14])
    return ticks / TICK


def ppid(pid: int) -> int:
    return int(_stat_fields(pid)[1])


def rss_kib(pid: int) -> int:
    """Resident set size in KiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def children_of(parent: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if ppid(int(entry)) == parent:
                out.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return out


def tree_cpu_seconds(parent: int) -> float:
    """CPU of a process, its live children, and its exited children (PostgreSQL: the
    postmaster and its backends)."""
    total = cpu_seconds(parent, children=True)
    for child in children_of(parent):
        try:
            total += cpu_seconds(child)
        except (OSError, ValueError, IndexError):
            continue
    return total


def tree_rss_kib(parent: int) -> int:
    total = rss_kib(parent)
    for child in children_of(parent):
        try:
            total += rss_kib(child)
        except OSError:
            continue
    return total


@dataclass(frozen=True)
class MachineCpu:
    """Jiffies of the whole machine (all cores), to tell how busy it was."""

    busy: int
    total: int

    @classmethod
    def read(cls) -> MachineCpu:
        first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        values = [int(x) for x in first]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        total = sum(values[:8])  # guest time is already counted in user
        return cls(total - idle, total)


def busy_fraction(before: MachineCpu, after: MachineCpu) -> float:
    """Share of all cores' time that was busy between two readings (0..1)."""
    total = after.total - before.total
    return (after.busy - before.busy) / total if total > 0 else 0.0


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split(" ")[0]


def other_asterisks(own_pid: int | None) -> list[str]:
    """Command lines of Asterisk processes that are not ours (other stacks on the box)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == own_pid:
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"asterisk") and b"-C" in cmd:
            found.append(b" ".join(cmd).decode(errors="replace").strip())
    return found
