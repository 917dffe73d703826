"""The SIP guard's settings (YAML `system: sip_guard:`) and the ACL file it has Asterisk apply.

An address that keeps failing at Asterisk's door (an INVITE or REGISTER from no trunk or
phone, a wrong password, a phone outside `phone_networks`) is shut out for a while: the
service that counts the failures is hotline/sipguard.py; the ban reaches Asterisk as a
PJSIP ACL (res_pjsip_acl, applied to every request before endpoint identification), in a
file of its own that pjsip.conf includes, so a ban never touches the admin's YAML.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from dialplan.checks import ConfigChecker
from dialplan.trunks import check_networks
from dialplan.yamlsrc import Node

BANS_FILE = "pjsip_bans.conf"
BANS_SECTION = "hotline-banned"


@dataclass(frozen=True)
class SipGuard:
    """When an address is banned: `failures` within `window` seconds; for how long."""

    enabled: bool = True
    failures: int = 20
    window: int = 60
    ban_minutes: int = 60
    # Addresses or networks never banned besides the carriers' and system.bind (CIDR).
    never_ban: tuple[str, ...] = ()


def parse(c: ConfigChecker, node: Node | None) -> SipGuard:
    """`system: sip_guard:`; every mistake reported with its line."""
    if node is None:
        return SipGuard()
    fields = {"enabled", "failures", "window", "ban_minutes", "never_ban"}
    if not c.mapping(node, "'system: sip_guard'", fields, set()):
        return SipGuard()
    v = node.value
    enabled = True
    if "enabled" in v:
        if isinstance(v["enabled"].value, bool):
            enabled = v["enabled"].value
        else:
            c.err(v["enabled"].line, "sip_guard enabled must be true or false")
    default = SipGuard()

    def count(key: str, lo: int, hi: int, what: str) -> int:
        if key not in v:
            return int(getattr(default, key))
        value = v[key].value
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            c.err(v[key].line, f"sip_guard {key} must be a whole number of {what} from {lo} "
                               f"to {hi}")
            return int(getattr(default, key))
        return value

    never = check_networks(c, v.get("never_ban"), "sip_guard never_ban") \
        if "never_ban" in v else ()
    return SipGuard(enabled=enabled,
                    failures=count("failures", 3, 10000, "failed requests"),
                    window=count("window", 5, 3600, "seconds"),
                    ban_minutes=count("ban_minutes", 1, 7 * 24 * 60, "minutes"),
                    never_ban=never)


def render_bans(addresses: Iterable[str]) -> str:
    """The ACL file: every banned address denied, everything else left to the rest of
    pjsip.conf. Only addresses (never text from a request) reach it."""
    denied = sorted({str(ipaddress.ip_address(a)) for a in addresses},
                    key=lambda a: (ipaddress.ip_address(a).version, ipaddress.ip_address(a)))
    if not denied:
        return "; no address is banned\n"
    lines = ["; written by the SIP guard (hotline/sipguard.py); `hotline sip-bans` lists them",
             f"[{BANS_SECTION}]", "type = acl"]
    lines += [f"deny = {a}/{32 if ':' not in a else 128}" for a in denied]
    return "\n".join(lines) + "\n"
