"""A citizen's call as the carrier delivers it: SIPp (Debian `sip-tester`) from the demo trunk.

`hotline call` places its call here by default, so a demo takes the real path: a SIP
INVITE from the address of a trunk (the shipped `demo` trunk is a carrier at 127.0.0.2),
A-law RTP and RFC 4733 digits from the pcap files the package installs, through the trunk's
context, caller ID from the header the trunk names. The scenario (`hotline/sipp/
uac_citizen.xml`) is the one the tests and `make bench` drive through tests/sip.py.

Planning (`plan_call`: which trunk, which address, the injection line, SIPp's arguments) is
apart from the effect (`place`: SIPp started in the background), so every refusal is a
plain sentence before anything runs. SIPp sends pcap audio through a raw socket: it needs
root (or CAP_NET_RAW); without it, `hotline call --local` places a Local channel instead.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from dialplan.config import HotlineConfig
from dialplan.trunks import Trunk

SCENARIO = Path(__file__).resolve().parent / "sipp" / "uac_citizen.xml"
PCAP_PACKAGE = "sip-tester"
PCAP_DIR = Path("/usr/share/sip-tester")
# The DTMF pcaps by key, as the scenario's -key names them (dtmf_<name>).
DTMF_NAMES = {**{d: d for d in "0123456789"}, "*": "star", "#": "pound"}
DIGITS_ALLOWED = set(DTMF_NAMES) | {","}  # "," is a one-second pause


class SipCallError(RuntimeError):
    """The call cannot go as SIP (plain words: what is missing and what to do)."""


class BadCall(SipCallError):
    """What was asked cannot be dialled at all (a number, caller or key that is wrong)."""


@dataclass(frozen=True)
class Pcaps:
    """The sip-tester package's RTP captures: A-law audio and one RFC 4733 event per key."""

    audio: Path
    dtmf: dict[str, Path]  # by key: "0".."9", "*", "#"

    def keys(self) -> list[str]:
        """SIPp -key arguments naming them for the scenario."""
        args = ["-key", "g711a", str(self.audio)]
        for key, path in sorted(self.dtmf.items()):
            args += ["-key", f"dtmf_{DTMF_NAMES[key]}", str(path)]
        return args


@functools.cache
def find_pcaps() -> Pcaps:
    """The pcap files of the installed sip-tester (dpkg -L), else of /usr/share/sip-tester."""
    files: list[Path] = []
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        listed = subprocess.run(["dpkg", "-L", PCAP_PACKAGE], capture_output=True, text=True,
                                timeout=20, check=False)
        if listed.returncode == 0:
            files = [Path(line) for line in listed.stdout.splitlines() if line.endswith(".pcap")]
    if not files and PCAP_DIR.is_dir():
        files = sorted(PCAP_DIR.glob("*.pcap"))
    by_name = {p.name: p for p in files if p.is_file()}
    wanted = {"audio": "g711a.pcap",
              **{key: f"dtmf_2833_{name}.pcap" for key, name in DTMF_NAMES.items()}}
    missing = sorted(name for name in wanted.values() if name not in by_name)
    if missing:
        raise SipCallError(f"pcap files missing: {', '.join(missing)} (looked in `dpkg -L "
                           f"{PCAP_PACKAGE}` and {PCAP_DIR}); apt-get install {PCAP_PACKAGE}")
    return Pcaps(audio=by_name[wanted["audio"]],
                 dtmf={key: by_name[wanted[key]] for key in DTMF_NAMES})


def sipp_binary() -> str:
    """The sipp program, or SipCallError saying how to install it."""
    found = shutil.which("sipp")
    if not found:
        raise SipCallError("SIPp is not installed: apt-get install sip-tester (binary 'sipp')")
    return found


@dataclass(frozen=True)
class CallSpec:
    """One citizen's call: one line of uac_citizen.xml's injection file."""

    number: str  # dialled: 12345, 63160000, ...
    caller: str = "13800138000"  # From user
    caller_name: str | None = None  # From display name (defaults to the number)
    pai: str | None = None  # P-Asserted-Identity: a number, or a whole URI/name-addr
    rpid: str | None = None  # Remote-Party-ID instead (a number or a name-addr)
    privacy: bool = False  # Privacy: id (else Privacy: none)
    anonymous: bool = False  # From: "Anonymous" <sip:anonymous@anonymous.invalid>
    digits: str = ""  # 0-9 * # and "," (1 s pause)
    digits_after: float = 2.0  # seconds after the answer
    digit_gap: float = 0.3  # seconds between digits (after each one's 0.2 s)
    hold: float = 30.0  # seconds after the answer before hanging up

    def csv_line(self, local_ip: str) -> str:
        """The injection line; ValueError (plain words) for what SIPp cannot send."""
        if self.pai and self.rpid:
            raise ValueError("one identity header per call: pai or rpid")
        bad = set(self.digits) - DIGITS_ALLOWED
        if bad:
            raise ValueError(f"digits {sorted(bad)}: SIPp plays 0-9 * # (and ',' pauses)")
        if self.digits and self.hold < self.digits_after:
            raise ValueError("hold counts from the answer: it must be >= digits_after")
        if self.anonymous:
            from_ = '"Anonymous" <sip:anonymous@anonymous.invalid>'
        else:
            name = self.caller if self.caller_name is None else self.caller_name
            from_ = f'"{name}" <sip:{self.caller}@{local_ip}>'
        ident = ""
        if self.pai:
            ident = f"P-Asserted-Identity: {_name_addr(self.pai, local_ip)}"
        elif self.rpid:
            ident = f"Remote-Party-ID: {_name_addr(self.rpid, local_ip)}"
        fields = [self.number, from_, ident, "id" if self.privacy else "none", self.digits,
                  ms(self.digits_after), ms(self.hold), ms(self.digit_gap)]
        for value in fields:
            if ";" in value or "\n" in value or "\r" in value:
                raise ValueError(f"{value!r}: SIPp's injection fields cannot hold ';' or "
                                 "line breaks")
        return ";".join(fields)


def _name_addr(value: str, local_ip: str) -> str:
    if value.startswith("<") or '"' in value:
        return value
    if value.startswith(("sip:", "sips:", "tel:")):
        return f"<{value}>"
    return f"<sip:{value}@{local_ip}>"


def ms(seconds: float) -> str:
    """Seconds as SIPp's whole milliseconds."""
    return str(max(0, round(seconds * 1000)))


# -- `hotline call` ------------------------------------------------------------------------

_NUMBER = re.compile(r"^\+?[0-9]{1,20}$")


@dataclass(frozen=True)
class SipCall:
    """What `place` runs: SIPp as the trunk's carrier, one call."""

    trunk: str
    local_ip: str
    target: str  # the hotline's SIP address, host:port
    spec: CallSpec
    run_dir: Path

    def argv(self, sipp: str, pcaps: Pcaps, sip_port: int, media_port: int) -> list[str]:
        bound = int(self.spec.hold + 60)  # SIPp ends by itself whatever happens
        return [sipp, self.target, "-sf", str(SCENARIO), "-inf", str(self.run_dir / "call.csv"),
                "-m", "1", "-t", "u1", "-i", self.local_ip, "-p", str(sip_port),
                "-bind_local", "-mi", self.local_ip, "-mp", str(media_port),
                "-ci", self.local_ip, "-nostdin", "-recv_timeout", "30000",
                "-timeout", f"{bound}s", "-timeout_error",
                "-trace_err", "-error_file", str(self.run_dir / "errors.log"),
                "-trace_logs", "-log_file", str(self.run_dir / "calls.log"),
                *pcaps.keys(), "-bg"]


def demo_trunk(cfg: HotlineConfig) -> tuple[Trunk, str] | None:
    """The first trunk whose carrier is one loopback address of this machine (the shipped
    `demo`), and that address; None when every trunk is a real carrier's."""
    for trunk in cfg.trunks:
        for match in trunk.match:
            net = ipaddress.ip_network(match, strict=False)
            if net.num_addresses == 1 and net.network_address.is_loopback:
                return trunk, str(net.network_address)
    return None


def plan_call(cfg: HotlineConfig, number: str, caller: str, *, dtmf: str = "",
              dtmf_delay: float = 1.0, hold: float = 600, log_dir: Path) -> SipCall:
    """The call `hotline call` places as SIP, or SipCallError saying why it cannot.

    caller: a number, or "withheld"/"anonymous" (an anonymous From with Privacy: id).
    dtmf: keys 0-9 * #, "w" a pause (one second over SIP).
    """
    found = demo_trunk(cfg)
    if found is None:
        raise SipCallError("no trunk has a carrier on this machine (a loopback `match` "
                           "address, like the shipped demo trunk's 127.0.0.2); use --local")
    trunk, local_ip = found
    if not _NUMBER.match(number):
        raise BadCall(f"{number!r} is not a number to dial")
    withheld = caller.lower() in ("withheld", "anonymous", "")
    if not withheld and not _NUMBER.match(caller):
        raise BadCall(f"the caller {caller!r} is not a number (or 'withheld')")
    keys = dtmf.replace("w", ",").replace("W", ",")
    bad = sorted(set(keys) - DIGITS_ALLOWED)
    if bad:
        raise BadCall(f"keys {''.join(bad)!r} cannot be sent over SIP: only 0-9 * # and w "
                      "(a pause)")
    if hold <= 0 or dtmf_delay < 0:
        raise BadCall("--hold must be above 0 seconds and --dtmf-delay not below 0")
    header = trunk.caller_id_from
    gap = 0.3
    # As over a Local channel, hold counts once the keys are pressed: a key takes its
    # 0.2 s tone and the gap, a pause one second.
    keying = sum(1.0 if k == "," else 0.2 + gap for k in keys)
    spec = CallSpec(number=number, caller="anonymous" if withheld else caller,
                    anonymous=withheld, privacy=withheld,
                    pai=None if withheld or header != "p_asserted_identity" else caller,
                    rpid=None if withheld or header != "remote_party_id" else caller,
                    digits=keys, digits_after=dtmf_delay, digit_gap=gap,
                    hold=(dtmf_delay + keying if keys else 0) + hold)
    run_dir = log_dir / f"call-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    target = f"{_host(cfg.system.sip_bind)}:{cfg.system.sip_port}"
    return SipCall(trunk.id, local_ip, target, spec, run_dir)


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _free_udp_port(ip: str, pair: bool = False) -> int:
    import socket

    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((ip, 0))
            port = int(s.getsockname()[1])
        if pair and port % 2:
            continue
        if pair:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                try:
                    s.bind((ip, port + 2))  # SIPp binds media_port + 2 as well
                except OSError:
                    continue
        return port
    raise SipCallError(f"no free UDP port on {ip}")


def place(call: SipCall) -> int:
    """Start SIPp in the background for the call; its process id."""
    sipp = sipp_binary()
    pcaps = find_pcaps()
    if os.geteuid() != 0:
        raise SipCallError("SIPp sends the caller's audio through a raw socket, which needs "
                           "root; run as root, or use --local for a Local channel")
    call.run_dir.mkdir(parents=True, exist_ok=True)
    (call.run_dir / "call.csv").write_text(
        "SEQUENTIAL\n" + call.spec.csv_line(call.local_ip) + "\n", encoding="utf-8")
    argv = call.argv(sipp, pcaps, _free_udp_port(call.local_ip),
                     _free_udp_port(call.local_ip, pair=True))
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=15,
                              cwd=call.run_dir, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        raise SipCallError(f"SIPp could not start: {e}") from None
    # With -bg the parent prints the background pid and leaves (its exit code says nothing).
    started = re.search(r"PID=\[(\d+)\]", done.stdout)
    if not started:
        text = [line for line in (done.stderr or done.stdout).splitlines()
                if line.strip() and not line.startswith(("In pcap", "max pkt", "base port"))]
        raise SipCallError("SIPp could not start: " + (text[-1] if text else
                                                       f"exit code {done.returncode}"))
    pid = int(started.group(1))
    time.sleep(0.5)  # a port taken or a scenario refused ends it at once
    if not _alive(pid):
        errors = call.run_dir / "errors.log"
        text = errors.read_text(errors="replace").strip().splitlines() if errors.exists() else []
        raise SipCallError("SIPp stopped at once: " + (text[-1] if text else
                                                       f"see {call.run_dir}"))
    return pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie of ours would count as alive; -bg made SIPp a child of init, not of us.
    return True
