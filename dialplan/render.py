"""Render Asterisk's configuration files from the validated hotline configuration.

The output is deterministic: the same YAML, directories and secrets always give the
same bytes, so an applied configuration can be compared and versioned.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dialplan import sipguard
from dialplan.config import HotlineConfig
from dialplan.trunks import DTMF_MODES, RTP_TIMEOUT, Trunk

ARI_APP = "hotline"
INBOUND_CONTEXT = "hotline-inbound"
CITIZEN_CONTEXT = "hotline-citizen"
VIRTUAL_PHONE_CONTEXT = "hotline-virtual-phone"
FALLBACK_CONTEXT = "hotline-fallback"
PROGRESS_CONTEXT = "hotline-progress"  # self-service progress lookup (FastAGI, ivr/progress.py)
PROGRESS_AGI_SCRIPT = "progress"
PROMPT_DIR = "hotline"  # prompts live in <astdatadir>/sounds/hotline/<id>.wav
FALLBACK_SPOOL = "hotline-fallback"  # voice messages taken while call control is down

# Modules that only cost start-up time or want hardware or services this box lacks.
NOLOAD = (
    "chan_iax2.so", "chan_skinny.so", "chan_mgcp.so", "chan_unistim.so", "chan_sip.so",
    "chan_dahdi.so", "chan_motif.so", "res_xmpp.so", "chan_console.so", "chan_alsa.so",
    "chan_oss.so", "res_hep.so", "res_hep_pjsip.so", "res_hep_rtcp.so", "cdr_csv.so",
    "cdr_custom.so", "cdr_manager.so", "cdr_syslog.so", "cdr_sqlite3_custom.so", "cdr_pgsql.so",
    "cdr_odbc.so", "cdr_adaptive_odbc.so", "cdr_tds.so", "cdr_radius.so", "cel_custom.so",
    "cel_manager.so", "cel_sqlite3_custom.so", "cel_pgsql.so", "cel_odbc.so", "cel_tds.so",
    "cel_radius.so", "res_config_pgsql.so", "res_config_odbc.so", "res_config_ldap.so",
    "res_config_sqlite3.so", "res_odbc.so", "res_odbc_transaction.so", "res_snmp.so",
    "res_calendar.so", "res_calendar_caldav.so", "res_calendar_ews.so",
    "res_calendar_exchange.so", "res_calendar_icalendar.so", "res_phoneprov.so",
    "res_pjsip_phoneprov_provider.so", "res_smdi.so", "app_voicemail.so",
    "app_voicemail_imap.so", "app_voicemail_odbc.so", "res_fax.so", "res_fax_spandsp.so",
    # (res_speech.so stays: res_agi, the progress lookup's FastAGI, needs it.)
    "app_festival.so", "res_corosync.so", "res_statsd.so",
    "res_prometheus.so", "res_stasis_mailbox.so", "res_ari_mailboxes.so", "res_mwi_external.so",
    "res_mwi_external_ami.so", "chan_rtp.so", "res_aeap.so", "res_speech_aeap.so",
    "res_geolocation.so", "res_pjsip_geolocation.so", "res_pjsip_stir_shaken.so",
    "res_stir_shaken.so", "res_pjsip_outbound_publish.so", "res_pjsip_publish_asterisk.so",
    "res_adsi.so", "app_adsiprog.so", "app_getcpeid.so", "app_jack.so", "res_monitor.so",
"pbx_dundi.so", "pbx_lua.so", "pbx_ael.so", "res_ael_share.so",
    "app_sms.so", "app_alarmreceiver.so", "res_config_curl.so", "func_curl.so", "res_curl.so",
    "res_pjsip_config_wizard.so", "res_clialiases.so", "chan_audiosocket.so",
    "res_audiosocket.so", "app_audiosocket.so", "res_crypto.so", "res_pjsip_notify.so",
    "chan_ooh323.so", "chan_h323.so", "res_pktccops.so", "app_minivm.so",
    "app_agent_pool.so", "app_confbridge.so", "app_page.so", "func_aes.so",
    "res_http_media_cache.so", "app_amd.so", "app_followme.so",
)


@dataclass(frozen=True)
class AsteriskDirs:
    """Directories as Asterisk sees them (inside its chroot when it runs in one)."""

    base: str  # the instance folder: etc/, lib/, spool/, run/, log/, data/ below it
    modules: str  # the installed modules folder

    @property
    def etc(self) -> str:
        return f"{self.base}/etc"

    @property
    def data(self) -> str:
        return f"{self.base}/data"


# In the secrets file (var/secrets.json), a generated phone secret is kept as "phone:<id>".
PHONE_SECRET_PREFIX = "phone:"


def read_phone_secrets(path: str | Path) -> dict[str, str]:
    """The generated phone secrets in the secrets file (phone id -> secret); {} when the
    file is missing or unreadable (then a phone without a YAML secret has no account)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k[len(PHONE_SECRET_PREFIX):]: v for k, v in data.items()
            if isinstance(k, str) and k.startswith(PHONE_SECRET_PREFIX) and isinstance(v, str)}


@dataclass(frozen=True)
class Secrets:
    """Credentials generated once per install: those Asterisk gives the call-control
    service, and the SIP secrets of phones whose YAML gives none (phone id -> secret)."""

    ari_user: str
    ari_password: str
    ami_user: str
    ami_secret: str
    phones: Mapping[str, str] = field(default_factory=dict)

    def phone_secret(self, cfg_secret: str | None, phone_id: str) -> str:
        """The secret a phone registers with: the YAML's, else the generated one."""
        secret = cfg_secret or self.phones.get(phone_id)
        if not secret:
            # Never render an endpoint without a secret: it would register for anyone.
            raise ValueError(f"phone {phone_id} has no secret: none in the YAML and none "
                             "generated (hotline/runtime.py makes one at start)")
        return secret


def render(cfg: HotlineConfig, dirs: AsteriskDirs, secrets: Secrets, *,
           extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return Asterisk's configuration files, name -> content, for this hotline.

    extra (for `make bench` only): text appended to the named files (a file not rendered
    otherwise is added); without it the output is exactly the hotline's.
    """
    files = {
        "asterisk.conf": _asterisk_conf(dirs),
        "modules.conf": _modules_conf(),
        "logger.conf": _logger_conf(),
        "http.conf": _http_conf(cfg),
        "ari.conf": _ari_conf(secrets),
        "manager.conf": _manager_conf(cfg, secrets),
        "pjsip.conf": _pjsip_conf(cfg, secrets),
        "extensions.conf": render_extensions(cfg, f"{dirs.base}/spool/{FALLBACK_SPOOL}"),
        "musiconhold.conf": _moh_conf(cfg, dirs),
        "rtp.conf": _rtp_conf(cfg),
        "cdr.conf": "[general]\nenable=no\n",
        "cel.conf": "[general]\nenable=no\n",
        "stasis.conf": "",
        # Loaded so `make bench` can compare with Asterisk's own queue on the same box.
        "queues.conf": "[general]\npersistentmembers = no\n",
        "features.conf": "",
        # Present but empty, so Asterisk does not complain at every start.
        "acl.conf": "", "udptl.conf": "", "pjproject.conf": "", "ccss.conf": "",
        "indications.conf": "[general]\ncountry=cn\n\n[cn]\ndescription = China\n"
        "ringcadence = 1000,4000\ndial = 450\nbusy = 450/350,0/350\nring = 450/1000,0/4000\n"
        "congestion = 450/700,0/700\ncallwaiting = 450/400,0/4000\n"
        "dialrecall = 450\nrecord = 950/400,0/10000\ninfo = 450/100,0/100,450/100,0/100\n",
    }
    for name, text in (extra or {}).items():
        files[name] = files.get(name, "") + text
    header = "; Rendered by hotline from {src}. Do not edit: change the YAML and apply it.\n"
    return {name: header.format(src=cfg.source or "the hotline YAML") + body
            for name, body in sorted(files.items())}


def _asterisk_conf(d: AsteriskDirs) -> str:
    return f"""[directories]
astetcdir => {d.etc}
astmoddir => {d.modules}
astvarlibdir => {d.base}/lib
astdbdir => {d.base}/lib
astkeydir => {d.base}/lib
astdatadir => {d.data}
astagidir => {d.data}/agi-bin
astspooldir => {d.base}/spool
astrundir => {d.base}/run
astlogdir => {d.base}/log
astsbindir => /usr/sbin

[options]
; Run as the user who started us (see the README: never -U root).
; Verbosity 1, not 2: level 2 logs channel names when a dialplan exits, and a callback's
; channel (Local/<number>@...) names the caller's number (tests/e2e/test_no_leaks.py).
verbose = 1
documentation_language = en_US
transmit_silence = yes
hideconnect = yes
"""


def _modules_conf() -> str:
    lines = ["[modules]", "autoload = yes"]
    lines += [f"noload => {m}" for m in sorted(NOLOAD)]
    return "\n".join(lines) + "\n"


def _logger_conf() -> str:
    return """[general]
dateformat = %F %T.%3q

[logfiles]
console => notice,warning,error
messages.log => notice,warning,error,verbose(1)
"""


def _http_conf(cfg: HotlineConfig) -> str:
    s = cfg.system
    # ARI, and /ws (SIP over WebSocket) for the desk's softphones: the desk proxies its
    # /sip there for agents whose phone is webrtc; browsers never come here themselves.
    return f"""[general]
enabled = yes
bindaddr = {s.bind}
bindport = {s.ari_port}
sessionlimit = 500
"""


def _ari_conf(secrets: Secrets) -> str:
    return f"""[general]
enabled = yes
pretty = no
allowed_origins = http://127.0.0.1

[{secrets.ari_user}]
type = user
read_only = no
password = {secrets.ari_password}
"""


def _manager_conf(cfg: HotlineConfig, secrets: Secrets) -> str:
    s = cfg.system
    return f"""[general]
enabled = yes
bindaddr = {s.bind}
port = {s.ami_port}
displayconnects = no

[{secrets.ami_user}]
secret = {secrets.ami_secret}
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
; Only what the hotline uses: events (security: the SIP guard), reloading a module and
; listing endpoints (system), listing the dialplan (reporting). No originate, no command
; and no config (which could write System() into the dialplan): each would hand out a
; shell, as Asterisk runs as root.
read = system,call,agent,reporting,security
write = system,reporting
"""


# Seconds without RTP before Asterisk ends a call: a far end that vanished without a BYE
# (a killed client, a cut line) must not stay "waiting" and be offered to an agent as dead
# air. Music on hold flows outwards only, so a held caller's silence is not mistaken.
# RTP_TIMEOUT (60) is dialplan/trunks.py's, and a trunk may set its own (`rtp_timeout`).
RTP_TIMEOUT_HOLD = 300
# Session timers (RFC 4028): a carrier's refresh keeps the call; a dead one ends it.
SESSION_EXPIRES = 1800


def _pjsip_conf(cfg: HotlineConfig, secrets: Secrets) -> str:
    s = cfg.system
    out = [
        "[global]",
        "type = global",
        # Only a trunk's address or a phone's account identifies a caller; there is no
        # anonymous endpoint, so anyone else is refused before the dialplan (and logged).
        "endpoint_identifier_order = ip,username",
        "user_agent = hotline",
        "",
        "[transport-udp]",
        "type = transport",
        "protocol = udp",
        f"bind = {_hostport(s.sip_bind, s.sip_port)}",
        "",
    ]
    for phone in sorted(cfg.phones.values(), key=lambda p: p.id):
        if phone.type == "pjsip":
            out += _pjsip_phone(cfg, phone.id, secrets.phone_secret(phone.secret, phone.id))
    for trunk in cfg.trunks:
        out += _pjsip_trunk(cfg, trunk)
    out += _webrtc_phones(cfg, secrets)
    if cfg.system.sip_guard.enabled:
        # The SIP guard's bans (hotline/sipguard.py writes the file; absent: none yet).
        out += [f"#tryinclude {sipguard.BANS_FILE}", ""]
    return "\n".join(out)


def _webrtc_phones(cfg: HotlineConfig, secrets: Secrets) -> list[str]:
    """Agents' browsers at the desk: SIP over a WebSocket, DTLS-SRTP media.

    The browser never reaches Asterisk's HTTP server itself: the desk proxies its /sip
    to /ws here (agent_desk/softphone.py), for the logged-in agent whose phone it is. So
    the WebSocket always comes from loopback, and the ACL says so. Call control dials
    these phones as PJSIP/<id>, like SIP desk phones.
    """
    phones = [p for p in sorted(cfg.phones.values(), key=lambda p: p.id) if p.type == "webrtc"]
    if not phones:
        return []
    out = [
        "; SIP over WebSocket: served by the HTTP server of http.conf at /ws (the bind",
        "; address of a ws transport is not used).",
        "[transport-ws]",
        "type = transport",
        "protocol = ws",
        "bind = 0.0.0.0",
        "",
    ]
    # By source address only: a browser's Contact is a made-up name (xyz.invalid), so a
    # contact ACL cannot apply.
    acl = ["deny = 0.0.0.0/0.0.0.0", "deny = ::/0", "permit = 127.0.0.0/8"]
    for phone in phones:
        pid = phone.id
        out += [
            f"; agent softphone {pid} (the browser at the desk)",
            f"[{pid}]",
            "type = endpoint",
            "context = hotline-phones",
            "disallow = all",
            # G.711 only, as every phone and trunk here: Chromium offers PCMU and PCMA
            # beside Opus, so nothing is transcoded.
            "allow = alaw,ulaw",
            "dtmf_mode = rfc4733",
            f"auth = {pid}-auth",
            f"aors = {pid}",
            # webrtc = yes implies the lines after it; they are spelled out to be read.
            "webrtc = yes",
            "use_avpf = yes",
            "media_encryption = dtls",
            "dtls_verify = fingerprint",
            "dtls_setup = actpass",
            "dtls_auto_generate_cert = yes",
            "ice_support = yes",
            "media_use_received_transport = yes",
            "rtcp_mux = yes",
            *_media(cfg),
            *acl,
            "",
            *_sip_account(pid, secrets.phone_secret(phone.secret, pid)),
        ]
    return out


def _hostport(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _media(cfg: HotlineConfig, rtp_timeout: int = RTP_TIMEOUT) -> list[str]:
    """RTP on the SIP address only, never on every address of the machine."""
    return [
        f"media_address = {cfg.system.sip_bind}",
        "bind_rtp_to_media_address = yes",
        "direct_media = no",
        f"rtp_timeout = {rtp_timeout}",
        f"rtp_timeout_hold = {RTP_TIMEOUT_HOLD}",
    ]


def phone_networks(cfg: HotlineConfig) -> tuple[str, ...]:
    """Where agents' SIP phones may register and call from."""
    s = cfg.system
    if s.phone_networks:
        return s.phone_networks
    own = f"{s.sip_bind}/128" if ":" in s.sip_bind else f"{s.sip_bind}/32"
    return ("127.0.0.0/8", own) if not s.sip_bind.startswith("127.") else ("127.0.0.0/8",)


def _pjsip_phone(cfg: HotlineConfig, pid: str, secret: str) -> list[str]:
    acl = ["deny = 0.0.0.0/0.0.0.0", "deny = ::/0"]
    acl += [f"permit = {net}" for net in phone_networks(cfg)]
    contact_acl = [f"contact_{line}" for line in acl]
    return [
        f"; agent phone {pid}",
        f"[{pid}]",
        "type = endpoint",
        "transport = transport-udp",
        "context = hotline-phones",
        "disallow = all",
        "allow = alaw,ulaw",
        "dtmf_mode = auto",
        f"auth = {pid}-auth",
        f"aors = {pid}",
        *_media(cfg),
        *acl,
        *contact_acl,
        "",
        *_sip_account(pid, secret),
    ]


def _sip_account(pid: str, secret: str) -> list[str]:
    """A phone's digest account and its single registration (a second device, or the desk
    opened again elsewhere, replaces the first)."""
    return [
        f"[{pid}-auth]",
        "type = auth",
        "auth_type = userpass",
        f"username = {pid}",
        f"password = {secret}",
        "",
        f"[{pid}]",
        "type = aor",
        "max_contacts = 1",
        "remove_existing = yes",
        "",
    ]


def _pjsip_trunk(cfg: HotlineConfig, trunk: Trunk) -> list[str]:
    name = trunk.endpoint
    out = [
        f"; carrier trunk {trunk.id}",
        f"[{name}]",
        "type = endpoint",
        "transport = transport-udp",
        f"context = {trunk_context(trunk)}",
        "disallow = all",
        f"allow = {','.join(trunk.codecs)}",
        f"dtmf_mode = {DTMF_MODES[trunk.dtmf]}",
        f"aors = {name}",
        # The caller's number: from P-Asserted-Identity / Remote-Party-ID when trusted,
        # else from the From header. Ours goes out in From and P-Asserted-Identity.
        f"trust_id_inbound = {'no' if trunk.caller_id_from == 'from' else 'yes'}",
        "send_pai = yes",
        f"send_rpid = {'yes' if trunk.caller_id_from == 'remote_party_id' else 'no'}",
        "timers = yes",
        f"timers_sess_expires = {SESSION_EXPIRES}",
        "ice_support = no",
        "allow_subscribe = no",
        *_media(cfg, trunk.rtp_timeout),
    ]
    if trunk.registration:
        out.append(f"outbound_auth = {name}-auth")
    out += [
        "",
        f"[{name}]",
        "type = aor",
        f"contact = sip:{trunk.host}",
        f"qualify_frequency = {trunk.qualify}",
        "",
        f"[{name}]",
        "type = identify",
        f"endpoint = {name}",
        *[f"match = {net}" for net in trunk.match],
        "",
    ]
    reg = trunk.registration
    if reg:
        out += [
            f"[{name}-auth]",
            "type = auth",
            "auth_type = userpass",
            f"username = {reg.username}",
            f"password = {reg.password}",
            "",
            f"[{name}-reg]",
            "type = registration",
            "transport = transport-udp",
            f"outbound_auth = {name}-auth",
            f"server_uri = sip:{reg.server}",
            f"client_uri = sip:{reg.username}@{reg.server.split(':')[0]}",
            f"contact_user = {reg.username}",
            "retry_interval = 30",
            "forbidden_retry_interval = 300",
            "expiration = 600",
            # Calls the carrier sends to the registered contact belong to this trunk.
            "line = yes",
            f"endpoint = {name}",
            "",
        ]
    return out


def trunk_context(trunk: Trunk) -> str:
    """The dialplan context a trunk's calls arrive in."""
    return f"hotline-{trunk.endpoint}"


def _rtp_conf(cfg: HotlineConfig) -> str:
    start, end = cfg.system.rtp_ports
    return f"[general]\nrtpstart={start}\nrtpend={end}\n"


def _moh_conf(cfg: HotlineConfig, d: AsteriskDirs) -> str:
    classes = sorted({q.music_on_hold for q in cfg.queues.values()} | {"default"})
    out = []
    for cls in classes:
        out += [f"[{cls}]", "mode = files", f"directory = {d.data}/moh", "sort = alpha", ""]
    return "\n".join(out)


def _trunk_contexts(cfg: HotlineConfig) -> list[str]:
    """One context per trunk: the called number, in the forms the carrier sends it, to the
    hotline number. Anything else is not an extension here, so PJSIP answers 404 before
    a channel exists."""
    out: list[str] = []
    for trunk in cfg.trunks:
        out += [f"; Calls from carrier trunk {trunk.id} ({trunk.name}).",
                f"[{trunk_context(trunk)}]"]
        for form, number in sorted(trunk.called_numbers.items()):
            out += [f"exten => {form},1,Set(__HOTLINE_TRUNK={trunk.id})",
                    f" same => n,Goto({INBOUND_CONTEXT},{number},1)"]
        out.append("")
    return out


def render_extensions(cfg: HotlineConfig, fallback_dir: str = "/tmp") -> str:
    """The dialplan: public numbers into the ARI app, test-call and virtual-phone contexts.

    fallback_dir: where the fallback context leaves voice messages (Asterisk's view).
    """
    out = [
        "[general]",
        "static = yes",
        "writeprotect = yes",
        "",
        "; Calls from the public network land here, by the number dialled.",
        f"[{INBOUND_CONTEXT}]",
    ]
    for n in cfg.numbers:
        out += [
            f"exten => {n.number},1,NoOp(hotline number {n.number})",
            # Before Stasis: call control may send the call on to the fallback itself
            # (database down), and the fallback must still know the number dialled.
            f" same => n,Set(HOTLINE_DIALLED={n.number})",
            # The presentation (a withheld number) and the trunk go to call control as
            # arguments; both are from fixed vocabularies, never the caller's text.
            f" same => n,Stasis({ARI_APP},inbound,{n.number},${{CALLERID(pres)}},"
            "${HOTLINE_TRUNK})",
            # Stasis returns only when the app is not running (or the call was let go).
            f" same => n,GotoIf($[\"${{STASISSTATUS}}\" = \"FAILED\"]?{FALLBACK_CONTEXT},s,1)",
            " same => n,Hangup()",
        ]
    out += [
        "exten => _X.,1,NoOp(not a hotline number)",
        " same => n,Answer()",
        " same => n,Playback(ss-noservice)",
        " same => n,Hangup()",
        "",
        *_trunk_contexts(cfg),
        "; Reached only while the call-control service is down: a message, never silence.",
        f"[{FALLBACK_CONTEXT}]",
        "exten => s,1,Answer()",
        f" same => n,Playback({PROMPT_DIR}/service_unavailable)",
        # ...then a voice message, imported as a case when call control is back.
        f" same => n,Set(VM={fallback_dir}/${{UNIQUEID}})",
        # Labelled, so an empty dialled number can never shift the caller's into its place.
        " same => n,Set(FILE(${VM}.txt)=dialled:${HOTLINE_DIALLED} caller:${CALLERID(num)})",
        f" same => n,Playback({PROMPT_DIR}/voice_message)",
        " same => n,Record(${VM}.wav,10,120,k)",
        f" same => n,Playback({PROMPT_DIR}/voice_message_thanks)",
        " same => n,Hangup()",
        "exten => h,1,ExecIf($[\"${VM}\" != \"\"]?Set(FILE(${VM}.done)=1))",
        "",
        "; A caller who chose the progress lookup: the call-control process's FastAGI asks",
        "; for the case number and code and speaks the status; if it cannot be reached, a",
        "; message instead of silence.",
        f"[{PROGRESS_CONTEXT}]",
        "exten => s,1,Answer()",
        f" same => n,AGI(agi://127.0.0.1:{cfg.system.agi_port}/{PROGRESS_AGI_SCRIPT})",
        f" same => n,ExecIf($[\"${{AGISTATUS}}\" = \"FAILURE\"]"
        f"?Playback({PROMPT_DIR}/progress_unavailable))",
        " same => n,Hangup()",
        "",
        "; The citizen's end of a call placed by `hotline call`: press keys, hold, hang up.",
        f"[{CITIZEN_CONTEXT}]",
        "exten => s,1,NoOp(test caller)",
        " same => n,Wait(${HOTLINE_DTMF_DELAY})",
        " same => n,ExecIf($[\"${HOTLINE_DTMF}\" != \"\"]?SendDTMF(${HOTLINE_DTMF},150,100))",
        # ...and may speak (a prompt stands in for the caller's voice in a voice message).
        " same => n,ExecIf($[\"${HOTLINE_SAY}\" != \"\"]?Playback(${HOTLINE_SAY}))",
        " same => n,Wait(${HOTLINE_HOLD})",
        " same => n,Hangup()",
        "",
        "; A citizen called back (test calls): answers after a ring and holds the line.",
        "[hotline-callee]",
        "exten => _X.,1,Ringing()",
        " same => n,Wait(1)",
        " same => n,Answer()",
        " same => n,Wait(120)",
        " same => n,Hangup()",
        "",
        "; Virtual agent phones: ring, then answer by themselves and hold the line.",
        f"[{VIRTUAL_PHONE_CONTEXT}]",
    ]
    for phone in sorted(cfg.phones.values(), key=lambda p: p.id):
        if phone.type != "virtual":
            continue
        out += [f"exten => {phone.id},1,Ringing()"]
        if phone.never_answer:
            out += [" same => n,Wait(86400)"]
        else:
            out += [
                f" same => n,Wait({phone.answer_after:g})",
                " same => n,Answer()",
                " same => n,Wait(86400)",
            ]
        out += [" same => n,Hangup()"]
    out += [
        "",
        "; Calls made from agents' SIP phones: only the hotline numbers, for tests by hand.",
        "[hotline-phones]",
        f"exten => _X.,1,Goto({INBOUND_CONTEXT},${{EXTEN}},1)",
        "",
    ]
    return "\n".join(out)
