"""Carrier trunks and the way out: the YAML's `trunks:` and `dial_out:` sections.

A city's carrier delivers 12345 and 63160000 over a SIP trunk on a private line. China's
carriers usually recognise each other by source address, sometimes by a registration. So
a trunk here is:

* **who it is**: the carrier's addresses or networks (`match`); every INVITE from any other
  address that is not an agent's phone is refused by Asterisk before the dialplan;
* **what it sends**: the called numbers in the forms carriers use (`12345`, `037712345`,
  `+8637712345`, `8637712345` are derived from the hotline's area code; `called_numbers`
  adds others), the header the caller's number is read from, codecs (A-law first: the
  Chinese network is A-law), DTMF (RFC 4733 with an in-band fallback);
* **where calls out go** (`host`, and for a registration the carrier's credentials), and
  how a local landline is written for it (with or without the area code).

`dial_out` names the trunks that carry calls out, in order: when the first cannot take a
call (unreachable, congested, refused) the next is tried. The dial guard's rules (the
numbering plan, allowed short codes, caps per number and per hour) are there too.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from dialplan.checks import ConfigChecker
from dialplan.yamlsrc import Node

TRUNK_ID = re.compile(r"^[a-z][a-z0-9_]{0,23}$")
# What a carrier may put in the Request-URI for one of our numbers.
CALLED_FORM = re.compile(r"^\+?[0-9]{3,20}$")
AREA_CODE = re.compile(r"^0[1-9][0-9]{1,2}$")
HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$")
SIP_USER = re.compile(r"^[A-Za-z0-9_.+-]{1,64}$")
CODECS = ("alaw", "ulaw", "g722", "g729")
CALLER_ID_SOURCES = ("p_asserted_identity", "remote_party_id", "from")
DTMF_MODES = {
    # what the admin writes -> PJSIP's dtmf_mode
    "rfc4733": "auto",  # RFC 4733 when offered, in-band detection when not
    "inband": "inband",
    "info": "info",
}
LOCAL_FORMATS = ("without_area_code", "with_area_code")
# A call whose far end sends no RTP this long (s) is ended: it vanished without a BYE.
RTP_TIMEOUT = 60
RTP_TIMEOUT_RANGE = (5, 300)


@dataclass(frozen=True)
class Registration:
    """A trunk that registers at the carrier (some carriers want it)."""

    username: str
    password: str
    server: str  # host[:port] to register at; the trunk's host when not given


@dataclass(frozen=True)
class Trunk:
    id: str
    name: str
    match: tuple[str, ...]  # the carrier's networks (CIDR); its INVITEs are accepted
    host: str  # host[:port] calls out are sent to
    called_numbers: dict[str, str]  # what the carrier sends -> the hotline number
    caller_id_from: str = "p_asserted_identity"
    codecs: tuple[str, ...] = ("alaw", "ulaw")
    dtmf: str = "rfc4733"
    local_format: str = "without_area_code"  # how a local landline is written for it
    registration: Registration | None = None
    qualify: int = 0  # seconds between OPTIONS probes (0: none)
    # Seconds without RTP from the carrier before a call is ended (a far end that vanished
    # without a BYE); on hold Asterisk waits RTP_TIMEOUT_HOLD (dialplan/render.py) instead.
    rtp_timeout: int = RTP_TIMEOUT

    @property
    def endpoint(self) -> str:
        """The PJSIP endpoint's name (also its context's suffix)."""
        return f"trunk-{self.id}"


@dataclass(frozen=True)
class DialOut:
    """How calls leave: the trunks in order, and the dial guard's rules."""

    trunks: tuple[str, ...] = ()
    caller_id: str = ""  # shown when a call has no hotline number of its own
    allowed_short_codes: tuple[str, ...] = ()
    max_per_number_per_hour: int = 3
    max_per_hour: int = 300
    ring_seconds: int = 40  # how long a citizen's phone rings before we give up


def called_forms(number: str, area_code: str) -> list[str]:
    """The forms in which carriers send a local hotline number: as dialled, with the
    area code, and in international form (+86 without the area code's 0)."""
    area = area_code.lstrip("0")
    return [number, f"{area_code}{number}", f"+86{area}{number}", f"86{area}{number}"]


def check_trunks(c: ConfigChecker, node: Node, numbers: set[str],
                 area_code: str) -> tuple[Trunk, ...]:
    """Validate the `trunks:` list; every mistake is reported with its line."""
    if not isinstance(node.value, list):
        c.err(node.line, "'trunks' must be a list of carrier trunks")
        return ()
    trunks: list[Trunk] = []
    seen: set[str] = set()
    claimed: dict[str, str] = {}  # network -> trunk id, so two trunks cannot share one
    fields = {"id", "name", "match", "host", "called_numbers", "caller_id_from", "codecs",
              "dtmf", "local_format", "register", "qualify", "rtp_timeout"}
    for item in node.value:
        if not c.mapping(item, "a trunk", fields, {"id", "match", "host"}):
            continue
        v = item.value
        tid = c.text(v.get("id"), "trunk id")
        where = f"trunk {tid}"
        if "id" in v and not TRUNK_ID.match(tid):
            c.err(v["id"].line, f"trunk id '{tid}' must be lower-case letters, digits or _, "
                                "starting with a letter (at most 24)")
        if tid in seen:
            c.err(v["id"].line, f"the trunk '{tid}' is listed twice")
        seen.add(tid)
        match = _networks(c, v.get("match"), f"{where} match")
        for net in match:
            if net in claimed and claimed[net] != tid:
                c.err(v["match"].line, f"{where} match {net} is trunk {claimed[net]}'s too; "
                                       "a call must belong to one trunk")
            claimed[net] = tid
        host = c.text(v.get("host"), f"{where} host")
        if "host" in v and not _host_ok(host):
            c.err(v["host"].line, f"{where} host '{host}' must be an address or name, with an "
                                  "optional :port (like 10.1.2.3:5060)")
        forms: dict[str, str] = {}
        for n in sorted(numbers):
            for form in called_forms(n, area_code):
                forms[form] = n
        if "called_numbers" in v:
            forms.update(_called(c, v["called_numbers"], where, numbers))
        caller_from = _choice(c, v.get("caller_id_from"), f"{where} caller_id_from",
                              CALLER_ID_SOURCES, "p_asserted_identity")
        dtmf = _choice(c, v.get("dtmf"), f"{where} dtmf", tuple(DTMF_MODES), "rfc4733")
        local = _choice(c, v.get("local_format"), f"{where} local_format", LOCAL_FORMATS,
                        "without_area_code")
        codecs: tuple[str, ...] = ("alaw", "ulaw")
        if "codecs" in v:
            codecs = _codecs(c, v["codecs"], where)
        reg = None
        if "register" in v:
            reg = _registration(c, v["register"], where, host)
        qualify = int(c.number(v.get("qualify"), f"{where} qualify", 0, 0, 3600))
        rtp_timeout = int(c.number(v.get("rtp_timeout"), f"{where} rtp_timeout", RTP_TIMEOUT,
                                   *RTP_TIMEOUT_RANGE))
        trunks.append(Trunk(id=tid, name=c.text(v.get("name"), f"{where} name", tid),
                            match=match, host=host, called_numbers=forms,
                            caller_id_from=caller_from, codecs=codecs, dtmf=dtmf,
                            local_format=local, registration=reg, qualify=qualify,
                            rtp_timeout=rtp_timeout))
    return tuple(trunks)


def check_dial_out(c: ConfigChecker, node: Node, trunk_ids: set[str],
                   numbers: set[str]) -> DialOut:
    """Validate `dial_out:` (the trunks calls leave by, in order, and the guard's rules)."""
    fields = {"trunks", "caller_id", "allowed_short_codes", "max_per_number_per_hour",
              "max_per_hour", "ring_seconds"}
    if not c.mapping(node, "'dial_out'", fields, {"trunks"}):
        return DialOut()
    v = node.value
    order: list[str] = []
    if "trunks" in v:
        if not isinstance(v["trunks"].value, list) or not v["trunks"].value:
            c.err(v["trunks"].line, "dial_out trunks must be a list of trunk ids, in the "
                                    "order they are tried")
        else:
            for t in v["trunks"].value:
                tid = c.text(t, "dial_out trunk")
                if tid not in trunk_ids:
                    c.err(t.line, f"dial_out names the trunk '{tid}', which is not under "
                                  "'trunks'")
                elif tid in order:
                    c.err(t.line, f"dial_out lists the trunk '{tid}' twice")
                else:
                    order.append(tid)
    caller_id = c.text(v.get("caller_id"), "dial_out caller_id", "")
    if caller_id and caller_id not in numbers:
        c.err(v["caller_id"].line, f"dial_out caller_id '{caller_id}' must be one of the "
                                   "hotline's numbers (under 'numbers')")
    shorts: list[str] = []
    if "allowed_short_codes" in v:
        node_s = v["allowed_short_codes"]
        if not isinstance(node_s.value, list):
            c.err(node_s.line, "allowed_short_codes must be a list like ['110', '12345']")
        else:
            for s in node_s.value:
                code = c.text(s, "an allowed short code")
                if not re.fullmatch(r"[0-9]{3,6}", code):
                    c.err(s.line, f"allowed short code '{code}' must be 3 to 6 digits")
                else:
                    shorts.append(code)
    return DialOut(
        trunks=tuple(order),
        caller_id=caller_id,
        allowed_short_codes=tuple(shorts),
        max_per_number_per_hour=int(c.number(v.get("max_per_number_per_hour"),
                                             "dial_out max_per_number_per_hour", 3, 1, 100)),
        max_per_hour=int(c.number(v.get("max_per_hour"), "dial_out max_per_hour", 300, 1,
                                  100000)),
        ring_seconds=int(c.number(v.get("ring_seconds"), "dial_out ring_seconds", 40, 5, 300)),
    )


def check_area_code(c: ConfigChecker, node: Node | None) -> str:
    """The hotline's own area code (Nanyang: 0377)."""
    code = c.text(node, "area_code", "0377")
    if node is not None and not AREA_CODE.match(code):
        c.err(node.line, f"area_code '{code}' must be China's area code with its 0, "
                         "like 0377 or 010")
        return "0377"
    return code


def check_networks(c: ConfigChecker, node: Node | None, where: str) -> tuple[str, ...]:
    """A list of addresses or networks, as CIDR text."""
    return _networks(c, node, where)


# -- one value each ---------------------------------------------------------------------------


def _networks(c: ConfigChecker, node: Node | None, where: str) -> tuple[str, ...]:
    if node is None or node.value is None:
        return ()
    items = node.value if isinstance(node.value, list) else [node]
    out: list[str] = []
    for item in items:
        try:
            net = ipaddress.ip_network(str(item.value), strict=False)
        except ValueError:
            c.err(item.line, f"{where}: '{item.value}' is not an IP address or network "
                             "(like 10.0.0.5 or 10.0.0.0/24)")
            continue
        if net.prefixlen == 0:
            c.err(item.line, f"{where}: '{item.value}' would let every address in")
            continue
        out.append(str(net))
    if not items:
        c.err(node.line, f"{where} needs at least one address")
    return tuple(out)


def _host_ok(host: str) -> bool:
    if not HOST.match(host):
        return False
    if ":" in host:
        port = int(host.rsplit(":", 1)[1])
        return 1 <= port <= 65535
    return True


def _choice(c: ConfigChecker, node: Node | None, where: str, choices: tuple[str, ...],
            default: str) -> str:
    value = c.text(node, where, default)
    if node is not None and value not in choices:
        c.err(node.line, f"{where} must be one of {', '.join(choices)}, not '{value}'")
        return default
    return value


def _called(c: ConfigChecker, node: Node, where: str, numbers: set[str]) -> dict[str, str]:
    if not isinstance(node.value, dict):
        c.err(node.line, f"{where} called_numbers must map what the carrier sends to one of "
                         "the hotline's numbers, like \"037712345\": \"12345\"")
        return {}
    out: dict[str, str] = {}
    for form, child in node.value.items():
        line = node.keys[form]
        target = c.text(child, f"{where} called number {form}")
        if not CALLED_FORM.match(form):
            c.err(line, f"{where} called number '{form}' must be digits, with an optional +")
        elif target not in numbers:
            c.err(child.line, f"{where} sends {form} to '{target}', which is not one of the "
                              "hotline's numbers")
        else:
            out[form] = target
    return out


def _codecs(c: ConfigChecker, node: Node, where: str) -> tuple[str, ...]:
    if not isinstance(node.value, list) or not node.value:
        c.err(node.line, f"{where} codecs must be a list like [alaw, ulaw]")
        return ("alaw", "ulaw")
    out: list[str] = []
    for item in node.value:
        name = c.text(item, f"{where} codec")
        if name not in CODECS:
            c.err(item.line, f"{where} codec '{name}' is not one of {', '.join(CODECS)}")
        elif name not in out:
            out.append(name)
    return tuple(out) or ("alaw", "ulaw")


def _registration(c: ConfigChecker, node: Node, where: str, host: str) -> Registration | None:
    if not c.mapping(node, f"{where} register", {"username", "password", "server"},
                     {"username", "password"}):
        return None
    v = node.value
    user = c.text(v.get("username"), f"{where} register username")
    if "username" in v and not SIP_USER.match(user):
        c.err(v["username"].line, f"{where} register username may use letters, digits "
                                  "and . _ + -")
    password = c.text(v.get("password"), f"{where} register password")
    if "password" in v and (len(password) < 8 or any(ch in password for ch in "\n\r;")):
        c.err(v["password"].line, f"{where} register password must be the carrier's "
                                  "password: 8 characters or more, no ';' or line breaks")
    server = c.text(v.get("server"), f"{where} register server", host)
    if "server" in v and not _host_ok(server):
        c.err(v["server"].line, f"{where} register server '{server}' must be an address "
                                "or name with an optional :port")
    return Registration(username=user, password=password, server=server)
