"""Tests for dialplan.render: Asterisk's files as rendered from the hotline YAML."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from dialplan import config, render
from dialplan.config import HotlineConfig, System
from dialplan.render import AsteriskDirs, Secrets

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "hotline.yaml"
DIRS = AsteriskDirs(base="/srv/hotline/asterisk", modules="/usr/lib/asterisk/modules")
PJSIP_SECRET = "generated-Vq7pX2mLr9"  # the shipped pjsip phone's (generated) secret
SECRETS = Secrets(ari_user="ari-user-x", ari_password="ari-pass-1111",
                  ami_user="ami-user-y", ami_secret="ami-secret-2222",
                  phones={"8101": PJSIP_SECRET})


@pytest.fixture(scope="module")
def cfg() -> HotlineConfig:
    return config.load(SHIPPED)


@pytest.fixture(scope="module")
def files(cfg: HotlineConfig) -> dict[str, str]:
    return render.render(cfg, DIRS, SECRETS)


def section(conf: str, name: str) -> str:
    """The body of the first `[name]` section of an Asterisk config file."""
    m = re.search(rf"^\[{re.escape(name)}\]\n(.*?)(?=^\[|\Z)", conf, re.S | re.M)
    assert m, f"no [{name}] section in:\n{conf}"
    return m.group(1)


def extension(context_body: str, exten: str) -> str:
    """The lines of one extension (its `exten =>` line and the `same =>` lines after it)."""
    m = re.search(rf"^exten => {re.escape(exten)},1,.*\n(?: same => .*\n?)*", context_body, re.M)
    assert m, f"no extension {exten} in:\n{context_body}"
    return m.group(0)


def test_render_is_deterministic(cfg: HotlineConfig) -> None:
    """Same YAML, dirs and secrets give the same bytes, so applied configs can be compared."""
    first = render.render(cfg, DIRS, SECRETS)
    second = render.render(config.load(SHIPPED), DIRS, SECRETS)
    assert first == second
    assert list(first) == sorted(first)


def test_every_file_starts_with_header(files: dict[str, str]) -> None:
    """Each file warns that it is generated, so nobody edits it by hand."""
    assert {"extensions.conf", "pjsip.conf", "http.conf", "manager.conf", "ari.conf",
            "asterisk.conf", "modules.conf"} <= set(files)
    for name, body in files.items():
        assert body.startswith("; Rendered by hotline from "), name
        assert "Do not edit" in body.splitlines()[0], name


def test_asterisk_conf_uses_the_instance_dirs(files: dict[str, str]) -> None:
    """Asterisk reads its configuration and modules from the folders given."""
    body = files["asterisk.conf"]
    assert f"astetcdir => {DIRS.etc}" in body
    assert f"astmoddir => {DIRS.modules}" in body
    assert f"astdatadir => {DIRS.data}" in body


def test_both_numbers_go_into_the_stasis_app(files: dict[str, str]) -> None:
    """A call to 12345 or 63160000 enters the hotline ARI app with the number dialled."""
    inbound = section(files["extensions.conf"], render.INBOUND_CONTEXT)
    for number in ("12345", "63160000"):
        ext = extension(inbound, number)
        assert f"Stasis(hotline,inbound,{number},${{CALLERID(pres)}},${{HOTLINE_TRUNK}})" in ext


def test_stasis_failure_falls_back_to_a_message(files: dict[str, str]) -> None:
    """While the call-control service is down, callers hear a prompt, never silence."""
    ext_conf = files["extensions.conf"]
    inbound = section(ext_conf, render.INBOUND_CONTEXT)
    for number in ("12345", "63160000"):
        lines = extension(inbound, number).splitlines()
        stasis = next(i for i, ln in enumerate(lines) if "Stasis(" in ln)
        after = next(ln for ln in lines[stasis + 1:] if "GotoIf" in ln)
        assert '"${STASISSTATUS}" = "FAILED"' in after
        assert "hotline-fallback,s,1" in after

    fallback = extension(section(ext_conf, "hotline-fallback"), "s")
    assert "Answer()" in fallback
    plays = re.findall(r"Playback\(([^)]+)\)", fallback)
    # The apology first, then a voice message the call-control service imports later.
    assert plays == ["hotline/service_unavailable", "hotline/voice_message",
                     "hotline/voice_message_thanks"]
    assert "Record(${VM}.wav" in fallback
    assert "Hangup()" in fallback.splitlines()[-1]


def test_virtual_phones_answer_after_configured_delay(files: dict[str, str]) -> None:
    """A virtual phone rings for answer_after seconds and then answers by itself."""
    virtual = section(files["extensions.conf"], render.VIRTUAL_PHONE_CONTEXT)
    for phone in ("8001", "8002"):
        lines = extension(virtual, phone).splitlines()
        assert "Ringing()" in lines[0]
        assert lines[1].strip() == "same => n,Wait(1)"
        assert lines[2].strip() == "same => n,Answer()"
    assert "exten => 8101," not in virtual  # the pjsip phone is not virtual


def test_never_answering_phone_has_no_answer() -> None:
    """A phone with answer_after: never only rings, so ring timeouts can be tested."""
    text = SHIPPED.read_text(encoding="utf-8").replace(
        "answer_after: 1       # seconds", "answer_after: never   # seconds", 1)
    never_cfg = config.loads(text, "hotline.yaml")
    assert never_cfg.phones["8001"].never_answer
    virtual = section(render.render_extensions(never_cfg), render.VIRTUAL_PHONE_CONTEXT)
    ext = extension(virtual, "8001")
    assert "Ringing()" in ext
    assert "Answer()" not in ext
    assert "Answer()" in extension(virtual, "8002")


def test_fractional_answer_delay(cfg: HotlineConfig) -> None:
    """Fractions of a second are kept as written (2.5, not 2.500000)."""
    phones = dict(cfg.phones)
    phones["8001"] = dataclasses.replace(phones["8001"], answer_after=2.5)
    body = render.render_extensions(dataclasses.replace(cfg, phones=phones))
    assert "Wait(2.5)" in extension(section(body, render.VIRTUAL_PHONE_CONTEXT), "8001")


def test_pjsip_phone_endpoint_auth_aor(files: dict[str, str]) -> None:
    """The SIP phone gets an endpoint, its auth with the configured secret and an AOR."""
    pjsip = files["pjsip.conf"]
    blocks = re.findall(r"^\[([^\]]+)\]\n(.*?)(?=^\[|\Z)", pjsip, re.S | re.M)
    # endpoint and aor share the section name [8101]; tell them apart by their type
    by_type = {(name, re.findall(r"^type = (\w+)$", body, re.M)[0]): body
               for name, body in blocks}
    endpoint = by_type[("8101", "endpoint")]
    assert "auth = 8101-auth" in endpoint
    assert "aors = 8101" in endpoint
    assert "context = hotline-phones" in endpoint
    auth = by_type[("8101-auth", "auth")]
    assert "username = 8101" in auth
    assert f"password = {PJSIP_SECRET}" in auth
    assert ("8101", "aor") in by_type
    # virtual phones are dialplan, not SIP endpoints
    assert not any(name in ("8001", "8002") for name, _ in by_type)


def test_pjsip_binds_to_loopback(files: dict[str, str]) -> None:
    """SIP listens on the loopback address and the configured port only."""
    transport = section(files["pjsip.conf"], "transport-udp")
    assert "type = transport" in transport
    assert "bind = 127.0.0.1:5060" in transport


def test_http_and_manager_bind_to_system_address(files: dict[str, str]) -> None:
    """ARI (http.conf) and AMI (manager.conf) listen where 'system' says."""
    http = section(files["http.conf"], "general")
    assert "bindaddr = 127.0.0.1" in http
    assert "bindport = 8088" in http
    manager = section(files["manager.conf"], "general")
    assert "bindaddr = 127.0.0.1" in manager
    assert "port = 5038" in manager


def test_custom_system_ports_are_rendered(cfg: HotlineConfig) -> None:
    """Changing the bind address and ports in the YAML moves every listener."""
    custom = dataclasses.replace(cfg, system=System(
        bind="127.0.0.9", sip_bind="10.20.0.5", ari_port=18088, ami_port=15038,
        sip_port=15060, desk_port=18080, rtp_ports=(30000, 30099)))
    out = render.render(custom, DIRS, SECRETS)
    assert "bindaddr = 127.0.0.9\nbindport = 18088" in out["http.conf"]
    assert "bindaddr = 127.0.0.9\nport = 15038" in out["manager.conf"]
    # SIP and its media on the network address, the rest stays on loopback.
    assert "bind = 10.20.0.5:15060" in out["pjsip.conf"]
    assert "media_address = 10.20.0.5\nbind_rtp_to_media_address = yes" in out["pjsip.conf"]
    assert "rtpstart=30000\nrtpend=30099" in out["rtp.conf"]


def test_ari_conf_has_the_ari_user(files: dict[str, str]) -> None:
    """The call-control service can log in to ARI with the generated credentials."""
    user = section(files["ari.conf"], SECRETS.ari_user)
    assert "type = user" in user
    assert f"password = {SECRETS.ari_password}" in user


def test_manager_conf_has_the_ami_user(files: dict[str, str]) -> None:
    """AMI has its own user and secret, reachable from loopback only."""
    user = section(files["manager.conf"], SECRETS.ami_user)
    assert f"secret = {SECRETS.ami_secret}" in user
    assert "permit = 127.0.0.1/255.255.255.255" in user
    # Only what `config apply` and the SIP guard use: never originate, command or config.
    assert "write = system,reporting" in user.splitlines()
    assert not {"config", "command", "originate", "all"} & set(
        next(line for line in user.splitlines() if line.startswith("write"))
        .split("=", 1)[1].strip().split(","))


def test_secrets_are_not_mixed_up(files: dict[str, str]) -> None:
    """Each secret appears in the one file that needs it and nowhere else."""
    where = {
        SECRETS.ari_password: {"ari.conf"},
        SECRETS.ami_secret: {"manager.conf"},
        PJSIP_SECRET: {"pjsip.conf"},
    }
    for secret, expected in where.items():
        found = {name for name, body in files.items() if secret in body}
        assert found == expected, (secret, found)
    assert SECRETS.ami_user not in files["ari.conf"]
    assert SECRETS.ari_user not in files["manager.conf"]


def test_modules_conf_lists_noload_sorted(files: dict[str, str]) -> None:
    """Unneeded modules are not loaded; the list is stable."""
    noload = re.findall(r"^noload => (\S+)$", files["modules.conf"], re.M)
    assert noload == sorted(render.NOLOAD)
    assert "chan_sip.so" in noload


# -- the desk's softphone (type: webrtc) ----------------------------------------------------

WEBRTC_SECRET = "w3b-s3cret-8201"


@pytest.fixture(scope="module")
def webrtc_files(cfg: HotlineConfig) -> dict[str, str]:
    phones = dict(cfg.phones)
    phones["8201"] = config.Phone("8201", "webrtc", secret=WEBRTC_SECRET)
    return render.render(dataclasses.replace(cfg, phones=phones), DIRS, SECRETS)


def _pjsip_blocks(pjsip: str) -> dict[tuple[str, str], str]:
    """(section name, type) -> body: endpoint, auth and aor of a phone share a name."""
    blocks = re.findall(r"^\[([^\]]+)\]\n(.*?)(?=^\[|\Z)", pjsip, re.S | re.M)
    return {(name, re.findall(r"^type = (\w+)$", body, re.M)[0]): body
            for name, body in blocks}


def test_webrtc_phone_endpoint_auth_aor(webrtc_files: dict[str, str]) -> None:
    """A softphone: WebRTC endpoint (DTLS with a generated certificate, ICE, AVPF, RTCP
    multiplexed), G.711 only, its auth with the secret, one registration at a time, and
    reachable from loopback only (the desk's /sip proxy)."""
    by_type = _pjsip_blocks(webrtc_files["pjsip.conf"])
    endpoint = by_type[("8201", "endpoint")]
    for line in ("webrtc = yes", "dtls_auto_generate_cert = yes", "media_encryption = dtls",
                 "dtls_verify = fingerprint", "ice_support = yes", "use_avpf = yes",
                 "rtcp_mux = yes", "disallow = all", "allow = alaw,ulaw",
                 "auth = 8201-auth", "aors = 8201", "context = hotline-phones",
                 "direct_media = no", "permit = 127.0.0.0/8"):
        assert re.search(rf"^{re.escape(line)}$", endpoint, re.M), line
    assert not re.search(r"^allow = .*opus", endpoint, re.M)  # nothing to transcode
    assert re.findall(r"^deny = .*$", endpoint, re.M) == ["deny = 0.0.0.0/0.0.0.0",
                                                          "deny = ::/0"]
    auth = by_type[("8201-auth", "auth")]
    assert "username = 8201" in auth and f"password = {WEBRTC_SECRET}" in auth
    aor = by_type[("8201", "aor")]
    assert "max_contacts = 1" in aor and "remove_existing = yes" in aor


def test_webrtc_phones_get_the_websocket_transport(webrtc_files: dict[str, str],
                                                   files: dict[str, str]) -> None:
    """SIP over WebSocket (served by http.conf's loopback server at /ws) exists only when
    a phone needs it; the UDP transport stays as it was."""
    ws = section(webrtc_files["pjsip.conf"], "transport-ws")
    assert "type = transport" in ws and "protocol = ws" in ws
    assert "[transport-ws]" not in files["pjsip.conf"]  # the shipped YAML has no softphone
    assert section(webrtc_files["pjsip.conf"], "transport-udp") == \
        section(files["pjsip.conf"], "transport-udp")
    assert "bindaddr = 127.0.0.1" in section(webrtc_files["http.conf"], "general")


def test_webrtc_secret_only_in_pjsip_conf(webrtc_files: dict[str, str]) -> None:
    """The softphone's password is in pjsip.conf and nowhere else Asterisk reads."""
    assert {name for name, body in webrtc_files.items() if WEBRTC_SECRET in body} == \
        {"pjsip.conf"}
