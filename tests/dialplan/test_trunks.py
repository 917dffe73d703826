"""Carrier trunks and calls out in the YAML: what an admin writes, the mistakes they are
told about (file:line), and what Asterisk is given."""

from __future__ import annotations

import textwrap

import pytest

from dialplan import config, render
from dialplan.config import ConfigError, HotlineConfig
from tests.dialplan.test_config import FILE, MENU_NUMBER, NEXT, yaml_doc
from tests.dialplan.test_render import DIRS, SECRETS, section

TRUNKS = """\
hotline:
  area_code: "0377"
trunks:
  - id: unicom
    name: 联通
    match: [10.8.0.0/29, 10.9.1.2]
    host: 10.8.0.1:5060
    caller_id_from: p_asserted_identity
    local_format: with_area_code
  - id: telecom
    match: [10.7.0.1]
    host: 10.7.0.1
    caller_id_from: from
    dtmf: inband
    codecs: [alaw]
    called_numbers:
      "0037712345": "12345"
    register:
      username: "037712345"
      password: s3cret-from-carrier
dial_out:
  trunks: [unicom, telecom]
  caller_id: "12345"
  allowed_short_codes: ["110"]
system:
  sip_bind: 10.20.0.5
  rtp_ports: 30000-30999
  phone_networks: [10.20.0.0/24]
"""


def load(extra: str = TRUNKS) -> HotlineConfig:
    return config.loads(yaml_doc(numbers=MENU_NUMBER, extra=extra), FILE)


def problems(extra: str) -> list[tuple[int, str]]:
    with pytest.raises(ConfigError) as info:
        load(extra)
    return [(line, msg) for _, line, msg in info.value.problems]


def test_a_carrier_trunk_is_read() -> None:
    cfg = load()
    unicom, telecom = cfg.trunks
    assert unicom.match == ("10.8.0.0/29", "10.9.1.2/32")
    assert unicom.local_format == "with_area_code"
    # The forms carriers send a local hotline number in are accepted without listing them.
    for form in ("12345", "037712345", "+8637712345", "8637712345"):
        assert unicom.called_numbers[form] == "12345"
    assert unicom.called_numbers["+8637763160000"] == "63160000"
    assert telecom.called_numbers["0037712345"] == "12345"  # a form the admin listed
    assert telecom.registration and telecom.registration.server == "10.7.0.1"
    assert cfg.dial_out.trunks == ("unicom", "telecom")
    assert cfg.system.sip_bind == "10.20.0.5" and cfg.system.rtp_ports == (30000, 30999)


@pytest.mark.parametrize("yaml_text, fragment", [
    ("trunks:\n  - id: a\n    match: [10.0.0.300]\n    host: 10.0.0.1\n",
     "'10.0.0.300' is not an IP address"),
    ("trunks:\n  - id: a\n    match: [0.0.0.0/0]\n    host: 10.0.0.1\n",
     "would let every address in"),
    ("trunks:\n  - id: a\n    match: [10.0.0.1]\n    host: 'x;y'\n", "host 'x;y'"),
    ("trunks:\n  - id: a\n    match: [10.0.0.1]\n    host: 10.0.0.1\n"
     "    called_numbers: {\"037712345\": \"99999\"}\n", "not one of the hotline's numbers"),
    ("trunks:\n  - id: a\n    match: [10.0.0.1]\n    host: 10.0.0.1\n"
     "    caller_id_from: diversion\n", "caller_id_from must be one of"),
    ("trunks:\n  - id: a\n    match: [10.0.0.1]\n    host: 10.0.0.1\n"
     "  - id: b\n    match: [10.0.0.1]\n    host: 10.0.0.2\n", "a call must belong to one trunk"),
    ("trunks:\n  - id: a\n    match: [10.0.0.1]\n    host: 10.0.0.1\n"
     "    register: {username: u, password: 'short'}\n", "8 characters or more"),
    ("trunks:\n  - id: a\n    match: [10.0.0.1]\n    host: 10.0.0.1\n"
     "    rtp_timeout: 2\n", "rtp_timeout must be between 5 and 300"),
    ("dial_out:\n  trunks: [nowhere]\n", "names the trunk 'nowhere'"),
    ("dial_out:\n  trunks: []\n", "list of trunk ids"),
    ("system:\n  bind: 10.1.2.3\n", "must stay on loopback"),
    ("system:\n  sip_bind: 0.0.0.0\n", "not every address"),
    ("system:\n  rtp_ports: 20000\n", "rtp_ports must be a range"),
    ("system:\n  callback_dial: PJSIP/{number}@trunk\n", "calls out now leave through"),
])
def test_trunk_mistakes_are_reported_on_their_line(yaml_text: str, fragment: str) -> None:
    found = [(line, msg) for line, msg in problems(yaml_text) if fragment in msg]
    assert len(found) == 1, problems(yaml_text)
    # Every one of these is on a line of the appended block, never line 0.
    lines = textwrap.dedent(yaml_text).count("\n")
    base = NEXT + MENU_NUMBER.count("\n")
    assert base <= found[0][0] < base + lines, found


def test_pjsip_conf_has_the_trunks_and_nobody_else() -> None:
    files = render.render(load(), DIRS, SECRETS)
    pjsip = files["pjsip.conf"]
    assert "endpoint_identifier_order = ip,username" in pjsip
    assert "bind = 10.20.0.5:5060" in pjsip
    unicom = section(pjsip, "trunk-unicom")
    assert "allow = alaw,ulaw" in unicom  # A-law first
    assert "dtmf_mode = auto" in unicom  # RFC 4733 with the in-band fallback
    assert "trust_id_inbound = yes" in unicom
    assert "media_address = 10.20.0.5" in unicom
    assert "rtp_timeout = 60" in unicom and "timers = yes" in unicom
    assert "match = 10.8.0.0/29\nmatch = 10.9.1.2/32" in pjsip
    telecom = section(pjsip, "trunk-telecom")
    assert "trust_id_inbound = no" in telecom and "dtmf_mode = inband" in telecom
    assert "outbound_auth = trunk-telecom-auth" in telecom
    reg = section(pjsip, "trunk-telecom-reg")
    assert "client_uri = sip:037712345@10.7.0.1" in reg and "line = yes" in reg
    assert "rtpstart=30000\nrtpend=30999" in files["rtp.conf"]


def test_a_trunk_may_end_silent_calls_sooner() -> None:
    """rtp_timeout: seconds without RTP from the carrier before a call is ended (a far end
    that vanished without a BYE); 60 unless the trunk says otherwise, 300 on hold."""
    cfg = load(TRUNKS.replace("    dtmf: inband\n", "    dtmf: inband\n    rtp_timeout: 20\n"))
    pjsip = render.render(cfg, DIRS, SECRETS)["pjsip.conf"]
    unicom, telecom = section(pjsip, "trunk-unicom"), section(pjsip, "trunk-telecom")
    assert "rtp_timeout = 60\n" in unicom and "rtp_timeout = 20\n" in telecom
    assert "rtp_timeout_hold = 300" in telecom


def test_each_trunk_maps_the_carriers_forms_to_the_hotline_numbers() -> None:
    ext = render.render(load(), DIRS, SECRETS)["extensions.conf"]
    ctx = section(ext, "hotline-trunk-unicom")
    assert "exten => +8637712345,1,Set(__HOTLINE_TRUNK=unicom)" in ctx
    assert "Goto(hotline-inbound,63160000,1)" in ctx
    assert "exten => _X." not in ctx  # anything else: 404 from PJSIP, no channel


def test_phones_are_limited_to_the_duty_rooms_network() -> None:
    cfg = load(TRUNKS + "phones:\n  - id: '8101'\n    type: pjsip\n"
                        "    secret: Xk3-long-enough-Vq7pX\n")
    phone = section(render.render(cfg, DIRS, SECRETS)["pjsip.conf"], "8101")
    assert "deny = 0.0.0.0/0.0.0.0" in phone and "permit = 10.20.0.0/24" in phone
    assert "contact_permit = 10.20.0.0/24" in phone
