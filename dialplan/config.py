"""Load and validate the admin's YAML (`config/hotline.yaml`).

Every mistake is reported as ``file:line: plain sentence``; nothing is rendered or
applied from a file that does not validate.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dialplan import sipguard, yamlsrc
from dialplan.checks import ConfigChecker
from dialplan.numbering import GuardRules
from dialplan.prompts import DEFAULT_RATE as DEFAULT_SPEECH_RATE
from dialplan.prompts import RATES as SPEECH_RATES
from dialplan.sipguard import SipGuard
from dialplan.trunks import (
    DialOut,
    Trunk,
    check_area_code,
    check_dial_out,
    check_networks,
    check_trunks,
)
from dialplan.yamlsrc import Node

SERVICE_ID = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
PUBLIC_NUMBER = re.compile(r"^[0-9]{3,15}$")
PHONE_ID = re.compile(r"^[0-9]{2,10}$")
LOGIN = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


class ConfigError(Exception):
    """One or more mistakes in the YAML; ``problems`` holds each as (file, line, sentence)."""

    def __init__(self, problems: list[tuple[str, int, str]]):
        self.problems = problems
        super().__init__("\n".join(f"{f}:{line}: {msg}" for f, line, msg in problems))


STRATEGIES = ("longest_idle", "ring_all", "round_robin", "fewest_calls")
DEFAULT_PAUSE_REASONS = {"break": "小休", "meal": "用餐", "training": "培训", "meeting": "会议"}
DEFAULT_PROMPTS = {
    "position_before": "您前面还有",
    "position_after": "位来电在等候。",
    "wait_before": "预计等待时间约",
    "wait_after": "分钟。",
    "voice_message": "坐席全忙。请在提示音后留言，说明您反映的事项和联系方式，按井号键结束。",
    "voice_message_thanks": "您的留言已记录，我们会尽快与您联系，谢谢。",
    "callback_confirm": "轮到您时我们将回拨这个号码：",
    "callback_keys": "确认请按1，继续等候请按2。",
    "callback_ok": "已为您保留排队位置，请挂机等候回电。",
    "callback_no_number": "对不起，没有您的号码，无法回拨，请继续等候。",
    "callback_agent": "正在为您回拨市民，请稍候。",
    # Self-service progress by phone (ivr/progress.py).
    "progress_ask_case": "您好，这里是办理进度查询。请输入您的工单编号，以井号键结束。",
    "progress_ask_code": "请输入受理时告知您的六位查询码。",
    "progress_wrong": "工单编号或查询码不正确。",
    "progress_no_input": "没有收到您的按键。",
    "progress_gave_up": "查询未成功。如需帮助，请拨打热线转人工服务。再见。",
    "progress_bye": "感谢您的来电，再见。",
    "progress_unavailable": "对不起，进度查询暂时无法使用，请稍后再拨。再见。",
}
# A menu option or number with this service goes to the progress lookup, not the queue.
PROGRESS_SERVICE = "progress"


@dataclass(frozen=True)
class MenuOption:
    service: str
    priority: int = 0


@dataclass(frozen=True)
class Menu:
    prompt: str
    timeout: float
    default: str
    options: dict[str, MenuOption]


@dataclass(frozen=True)
class Number:
    number: str
    name: str
    greeting: str
    queue: str
    service: str | None = None
    menu: Menu | None = None
    priority: int = 0


@dataclass(frozen=True)
class Queue:
    id: str
    name: str
    music_on_hold: str = "default"
    ring_timeout: int = 20
    strategy: str = "longest_idle"
    wrap_up: int = 10  # seconds after each call before the agent is offered the next
    max_wrap_up: int = 300  # an agent may extend wrap-up up to this in all
    autopause: bool = True  # an agent whose phone rings unanswered is paused
    priority_weight: int = 60  # one level of priority counts as this many seconds waited
    returning_caller_priority: int = 1  # extra priority for a caller with an open case
    announce_every: int = 30  # seconds between announcements to a waiting caller (0: none)
    announce_position: bool = True
    announce_wait: bool = True
    periodic_prompt: str | None = None  # played between the announcements
    max_wait: int = 0  # seconds in the queue before the overflow (0: never)
    overflow: str = "voice_message"  # or "none"
    callback_key: str = ""  # a key a waiting caller presses to be called back ("": off)


@dataclass(frozen=True)
class Phone:
    id: str
    # "virtual" (a Local channel that answers by itself), "pjsip" (a SIP desk phone) or
    # "webrtc" (the agent's browser at the desk: SIP over the desk's WebSocket, DTLS-SRTP)
    type: str
    answer_after: float = 1.0
    never_answer: bool = False
    secret: str | None = None


# Desk accounts the YAML may list: duty agents, duty supervisors, the government
# supervision office (督查室), admins and the auditor (reads the reveal log, no case).
DESK_ROLES = ("agent", "supervisor", "supervision", "admin", "auditor")


@dataclass(frozen=True)
class Agent:
    login: str
    name: str
    phone: str | None
    initial_password: str | None = None
    role: str = "agent"  # or "supervisor", "supervision" (督查室), "admin"
    queues: tuple[str, ...] = ()  # empty: every queue


@dataclass(frozen=True)
class System:
    # ARI, AMI, FastAGI and the desk: loopback only (a TLS proxy puts the desk in front).
    bind: str = "127.0.0.1"
    # SIP and RTP: the address on the carrier's line and the duty room's network.
    sip_bind: str = "127.0.0.1"
    rtp_ports: tuple[int, int] = (20000, 20999)
    # Networks agents' SIP phones may register and call from (CIDR); empty: sip_bind's /32.
    phone_networks: tuple[str, ...] = ()
    ari_port: int = 8088
    ami_port: int = 5038
    sip_port: int = 5060
    desk_port: int = 8080
    agi_port: int = 4573  # the FastAGI service of the call-control process (progress lookup)
    # Reverse proxies (addresses or networks) whose X-Forwarded-Proto / X-Forwarded-For the
    # desk believes; from any other peer those headers are ignored.
    trusted_proxies: tuple[str, ...] = ()
    # Addresses that keep failing at Asterisk's door are shut out (dialplan/sipguard.py).
    sip_guard: SipGuard = SipGuard()


# The settings of the units' assessment score (casework.stats.AssessmentFormula).
ASSESSMENT_SETTINGS = ("on_time_weight", "satisfaction_weight", "reply_weight",
                       "urging_penalty", "rehandling_penalty", "return_penalty",
                       "overdue_penalty")


@dataclass(frozen=True)
class Casework:
    """The case workflow's rules (YAML `casework:`); defaults from the source document."""

    written_days: int = 7  # result due, in working days, after a written assignment
    phone_days: int = 3  # after a phone assignment
    criticism_urgings: int = 2  # urgings after which a case is publicly criticised
    max_extension_days: int = 15
    # Days after archiving that a case's personal fields and voice messages are erased
    # (casework.retention); 0: never. The statistics stay.
    retention_days: int = 1095
    # Weights of the units' assessment score (casework.stats.AssessmentFormula checks names).
    assessment: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class HotlineConfig:
    """The validated configuration, loaded once and passed to every part."""

    name: str
    default_queue: str
    numbers: tuple[Number, ...]
    services: dict[str, str]
    queues: dict[str, Queue]
    prompts: dict[str, str]
    phones: dict[str, Phone]
    agents: tuple[Agent, ...]
    system: System
    source: str = ""
    pause_reasons: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PAUSE_REASONS))
    casework: Casework = field(default_factory=Casework)
    area_code: str = "0377"  # the hotline's own area (Nanyang)
    speech_rate: int = DEFAULT_SPEECH_RATE  # espeak-ng's words a minute, every prompt
    trunks: tuple[Trunk, ...] = ()
    dial_out: DialOut = field(default_factory=DialOut)

    def guard_rules(self) -> GuardRules:
        """The dial guard's rules: the area code, allowed short codes and caps."""
        d = self.dial_out
        return GuardRules(area_code=self.area_code, allowed_short_codes=d.allowed_short_codes,
                          max_per_number_per_hour=d.max_per_number_per_hour,
                          max_per_hour=d.max_per_hour)

    def trunk(self, trunk_id: str) -> Trunk | None:
        """The configured trunk of this id, if any."""
        for t in self.trunks:
            if t.id == trunk_id:
                return t
        return None

    def number(self, dialled: str) -> Number | None:
        """The configured public number that was dialled, if any."""
        for n in self.numbers:
            if n.number == dialled:
                return n
        return None


# -- checking the YAML (read by dialplan/yamlsrc.py, with line numbers) --------------------


# The checker with the hotline YAML's helpers (text, numbers) lives in dialplan/checks.py.
_Checker = ConfigChecker


def _items(node: Node) -> Iterator[tuple[str, Node, int]]:
    for key, child in node.value.items():
        yield key, child, node.keys[key]


def load(path: str | Path) -> HotlineConfig:
    """Read and validate a hotline YAML file; raise ConfigError listing every mistake."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([(str(p), 0, f"cannot read the file: {e.strerror}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([(str(p), 0, "the file is not UTF-8 text")]) from None
    return loads(text, str(p))


def loads(text: str, filename: str = "<config>") -> HotlineConfig:
    """Validate hotline YAML given as text (see load)."""
    try:
        tree = yamlsrc.compose(text, filename)
    except yamlsrc.YamlProblems as e:
        raise ConfigError(e.problems) from None
    c = _Checker(filename)
    cfg = _validate(tree, c)
    if c.problems or cfg is None:
        raise ConfigError(sorted(c.problems, key=lambda p: p[1]))
    return cfg


def _validate(tree: Node, c: _Checker) -> HotlineConfig | None:
    top = {"hotline", "numbers", "services", "queues", "prompts", "phones", "agents", "system",
           "pause_reasons", "casework", "trunks", "dial_out"}
    if not c.mapping(tree, "the file", top, {"numbers", "services", "queues", "prompts"}):
        return None
    t: dict[str, Node] = tree.value

    name, default_queue, default_queue_line, area_code = "hotline", "", 0, "0377"
    speech_rate = DEFAULT_SPEECH_RATE
    if "hotline" in t and c.mapping(t["hotline"], "'hotline'",
                                    {"name", "default_queue", "area_code", "speech_rate"},
                                    set()):
        h = t["hotline"].value
        name = c.text(h.get("name"), "hotline name", "hotline")
        default_queue = c.text(h.get("default_queue"), "default_queue")
        default_queue_line = t["hotline"].keys.get("default_queue", 0)
        area_code = check_area_code(c, h.get("area_code"))
        if "speech_rate" in h:
            v = h["speech_rate"].value
            lo, hi = SPEECH_RATES
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                c.err(h["speech_rate"].line, f"speech_rate must be a whole number of words a "
                                             f"minute from {lo} to {hi} (espeak-ng's default "
                                             f"is {DEFAULT_SPEECH_RATE})")
            else:
                speech_rate = v

    services: dict[str, str] = {}
    if "services" in t and c.mapping(t["services"], "'services'", set(t["services"].keys), set()):
        for sid, node, line in _items(t["services"]):
            if not SERVICE_ID.match(sid):
                c.err(line, f"service id '{sid}' must be lower-case letters, digits or _")
            services[sid] = c.text(node, f"service '{sid}'")
        if not services:
            c.err(t["services"].line, "at least one service is needed")

    prompts: dict[str, str] = {}
    if "prompts" in t and c.mapping(t["prompts"], "'prompts'", set(t["prompts"].keys), set()):
        for pid, node, line in _items(t["prompts"]):
            if not SERVICE_ID.match(pid):
                c.err(line, f"prompt id '{pid}' must be lower-case letters, digits or _")
            prompts[pid] = c.text(node, f"prompt '{pid}'")
            if not prompts[pid].strip():
                c.err(node.line, f"prompt '{pid}' has no text")
    # Prompts of features the YAML may leave at their default wording.
    for pid, text in DEFAULT_PROMPTS.items():
        prompts.setdefault(pid, text)
    for needed in ("ask_callback", "please_hold", "service_unavailable"):
        if "prompts" in t and needed not in prompts:
            c.err(t["prompts"].line, f"prompts is missing '{needed}', which every call may need")

    def prompt_ref(node: Node | None, where: str) -> str:
        pid = c.text(node, where)
        if node is not None and pid and pid not in prompts:
            c.err(node.line, f"{where} names the prompt '{pid}', which is not under 'prompts'")
        return pid

    queues: dict[str, Queue] = {}
    if "queues" in t and c.mapping(t["queues"], "'queues'", set(t["queues"].keys), set()):
        for qid, node, line in _items(t["queues"]):
            if not SERVICE_ID.match(qid):
                c.err(line, f"queue id '{qid}' must be lower-case letters, digits or _")
            where = f"queue '{qid}'"
            fields = {"name", "music_on_hold", "ring_timeout", "strategy", "wrap_up",
                      "max_wrap_up", "autopause", "priority_weight", "returning_caller_priority",
                      "announce_every", "announce_position", "announce_wait",
                      "periodic_prompt", "max_wait", "overflow", "callback_key"}
            if not c.mapping(node, where, fields, set()):
                continue
            q = node.value
            strategy = c.text(q.get("strategy"), f"{where} strategy", "longest_idle")
            if strategy not in STRATEGIES:
                c.err(q["strategy"].line, f"{where} strategy '{strategy}' is not one of "
                      f"{', '.join(STRATEGIES)}")
            flags = {}
            for flag in ("autopause", "announce_position", "announce_wait"):
                flags[flag] = True
                if flag in q:
                    if not isinstance(q[flag].value, bool):
                        c.err(q[flag].line, f"{where} {flag} must be true or false")
                    else:
                        flags[flag] = q[flag].value
            overflow = c.text(q.get("overflow"), f"{where} overflow", "voice_message")
            if overflow not in ("voice_message", "none"):
                c.err(q["overflow"].line,
                      f"{where} overflow must be 'voice_message' or 'none', not '{overflow}'")
            periodic = prompt_ref(q["periodic_prompt"], f"{where} periodic_prompt") \
                if "periodic_prompt" in q else None
            callback_key = c.text(q.get("callback_key"), f"{where} callback_key", "")
            if callback_key and (len(callback_key) != 1 or callback_key not in "0123456789*#"):
                c.err(q["callback_key"].line, f"{where} callback_key must be one key, 0-9 * #")
            wrap_up = int(c.number(q.get("wrap_up"), f"{where} wrap_up", 10, 0, 600))
            queues[qid] = Queue(
                id=qid,
                name=c.text(q.get("name"), f"{where} name", qid),
                music_on_hold=c.text(q.get("music_on_hold"), f"{where} music_on_hold", "default"),
                ring_timeout=int(
                    c.number(q.get("ring_timeout"), f"{where} ring_timeout", 20, 5, 300)
                ),
                strategy=strategy,
                wrap_up=wrap_up,
                max_wrap_up=max(wrap_up, int(c.number(q.get("max_wrap_up"),
                                                      f"{where} max_wrap_up", 300, 0, 3600))),
                autopause=flags["autopause"],
                announce_every=int(c.number(q.get("announce_every"),
                                            f"{where} announce_every", 30, 0, 3600)),
                announce_position=flags["announce_position"],
                announce_wait=flags["announce_wait"],
                periodic_prompt=periodic,
                max_wait=int(c.number(q.get("max_wait"), f"{where} max_wait", 0, 0, 86400)),
                overflow=overflow,
                callback_key=callback_key,
                priority_weight=int(c.number(q.get("priority_weight"),
                                             f"{where} priority_weight", 60, 1, 3600)),
                returning_caller_priority=int(c.number(
                    q.get("returning_caller_priority"), f"{where} returning_caller_priority",
                    1, 0, 100)),
            )
    if "queues" in t and not queues:
        c.err(t["queues"].line, "at least one queue is needed")
    if not default_queue and queues:
        default_queue = next(iter(queues))
    elif default_queue and queues and default_queue not in queues:
        c.err(default_queue_line, f"default_queue '{default_queue}' is not under 'queues'")

    def queue_ref(node: Node | None, where: str) -> str:
        # A number without a queue of its own takes the default, checked above.
        if node is None:
            return default_queue
        qid = c.text(node, where, default_queue)
        if queues and qid not in queues:
            c.err(node.line, f"{where} names the queue '{qid}', which is not under 'queues'")
        return qid

    def service_ref(node: Node, where: str) -> str:
        sid = c.text(node, where)
        if "services" in t and sid not in services:
            c.err(node.line, f"{where} names the service '{sid}', which is not under 'services'")
        return sid

    numbers: list[Number] = []
    if "numbers" in t:
        if not isinstance(t["numbers"].value, list) or not t["numbers"].value:
            c.err(t["numbers"].line, "'numbers' must be a list with at least one number")
        else:
            seen: set[str] = set()
            allowed = {"number", "name", "greeting", "queue", "service", "menu", "priority"}
            for node in t["numbers"].value:
                if not c.mapping(node, "a number", allowed, {"number", "greeting"}):
                    continue
                n = node.value
                num = c.text(n.get("number"), "number")
                where = f"number {num}" if num else "a number"
                if "number" in n and not PUBLIC_NUMBER.match(num):
                    c.err(n["number"].line, f"'{num}' is not a phone number (3 to 15 digits)")
                if "number" in n and num in seen:  # a missing number is reported already
                    c.err(n["number"].line, f"the number {num} is listed twice")
                seen.add(num)
                menu = None
                if "menu" in n and n["menu"].value is not None:
                    menu = _menu(c, n["menu"], where, prompt_ref, service_ref)
                service = None
                if "service" in n:
                    service = service_ref(n["service"], f"{where} service")
                elif menu is None:
                    c.err(node.line, f"{where} needs a 'service' or a 'menu'")
                numbers.append(
                    Number(
                        number=num,
                        name=c.text(n.get("name"), f"{where} name", num),
                        greeting=prompt_ref(n.get("greeting"), f"{where} greeting"),
                        queue=queue_ref(n.get("queue"), f"{where} queue"),
                        service=service,
                        menu=menu,
                        priority=int(c.number(n.get("priority"), f"{where} priority", 0, 0, 100)),
                    )
                )

    pause_reasons = dict(DEFAULT_PAUSE_REASONS)
    if "pause_reasons" in t and c.mapping(t["pause_reasons"], "'pause_reasons'",
                                          set(t["pause_reasons"].keys), set()):
        pause_reasons = {}
        for rid, node, line in _items(t["pause_reasons"]):
            if not SERVICE_ID.match(rid):
                c.err(line, f"pause reason id '{rid}' must be lower-case letters, digits or _")
            if rid in ("no_answer", "login", "supervisor", "outbound"):
                c.err(line, f"pause reason '{rid}' is kept for the system; choose another id")
            pause_reasons[rid] = c.text(node, f"pause reason '{rid}'")
        if not pause_reasons:
            c.err(t["pause_reasons"].line, "at least one pause reason is needed")

    phones: dict[str, Phone] = {}
    if "phones" in t:
        phones = _phones(c, t["phones"])

    agents: list[Agent] = []
    if "agents" in t:
        if not isinstance(t["agents"].value, list):
            c.err(t["agents"].line, "'agents' must be a list")
        else:
            logins: set[str] = set()
            for node in t["agents"].value:
                fields = {"login", "name", "phone", "initial_password", "role", "queues"}
                if not c.mapping(node, "an agent", fields, {"login", "name"}):
                    continue
                a = node.value
                role = c.text(a.get("role"), "agent role", "agent")
                if "role" in a and role not in DESK_ROLES:
                    c.err(a["role"].line,
                          f"agent role must be one of {', '.join(DESK_ROLES)}, not '{role}' "
                          "(a unit's handlers are listed with their unit in units.yaml)")
                if "phone" not in a and role == "agent":
                    c.err(node.line, "an agent is missing 'phone'")
                agent_queues: list[str] = []
                if "queues" in a:
                    if not isinstance(a["queues"].value, list):
                        c.err(a["queues"].line, "an agent's queues must be a list of queue ids")
                    else:
                        for qn in a["queues"].value:
                            agent_queues.append(queue_ref(qn, "an agent's queues"))
                login = c.text(a.get("login"), "agent login")
                if "login" in a and not LOGIN.match(login):
                    c.err(a["login"].line, f"agent login '{login}' may use letters, digits, . _ -")
                if "login" in a and login in logins:  # a missing login is reported already
                    c.err(a["login"].line, f"the agent login '{login}' is listed twice")
                logins.add(login)
                phone = c.text(a.get("phone"), f"agent {login} phone") if "phone" in a else None
                if phone is not None and phone not in phones:
                    c.err(a["phone"].line,
                          f"agent {login} uses phone '{phone}', not under 'phones'")
                pw = a.get("initial_password")
                agents.append(
                    Agent(
                        login=login,
                        name=c.text(a.get("name"), f"agent {login} name"),
                        phone=phone,
                        initial_password=c.text(pw, f"agent {login} password") if pw else None,
                        role=role,
                        queues=tuple(agent_queues),
                    )
                )

    system = System()
    if "system" in t:
        system = _system(c, t["system"])
    public = {n.number for n in numbers}
    trunks: tuple[Trunk, ...] = ()
    if "trunks" in t and t["trunks"].value is not None:
        trunks = check_trunks(c, t["trunks"], public, area_code)
    dial_out = DialOut()
    if "dial_out" in t:
        dial_out = check_dial_out(c, t["dial_out"], {tr.id for tr in trunks}, public)
    casework = Casework()
    if "casework" in t:
        casework = _casework(c, t["casework"])

    return HotlineConfig(
        name=name,
        default_queue=default_queue,
        numbers=tuple(numbers),
        services=services,
        queues=queues,
        prompts=prompts,
        phones=phones,
        agents=tuple(agents),
        system=system,
        source=c.file,
        pause_reasons=pause_reasons,
        casework=casework,
        area_code=area_code,
        speech_rate=speech_rate,
        trunks=trunks,
        dial_out=dial_out,
    )


def _menu(c: _Checker, node: Node, where: str, prompt_ref: Any, service_ref: Any) -> Menu | None:
    if not c.mapping(node, f"{where} menu", {"prompt", "timeout", "default", "options"},
                     {"prompt", "options", "default"}):
        return None
    m = node.value
    options: dict[str, MenuOption] = {}
    if "options" in m and c.mapping(m["options"], f"{where} menu options",
                                    set(m["options"].keys), set()):
        for key, child, line in _items(m["options"]):
            if key not in "0123456789*" or len(key) != 1:
                c.err(line, f"menu key '{key}' must be one of 0-9 or *")
            if isinstance(child.value, dict):
                # "9": {service: hotline, priority: 5} -- e.g. an emergency option
                if not c.mapping(child, f"{where} menu key {key}", {"service", "priority"},
                                 {"service"}) or "service" not in child.value:
                    continue  # the missing service is reported already
                options[key] = MenuOption(
                    service_ref(child.value["service"], f"{where} menu key {key}"),
                    int(c.number(child.value.get("priority"), f"{where} menu key {key} priority",
                                 0, 0, 100)),
                )
            else:
                options[key] = MenuOption(service_ref(child, f"{where} menu key {key}"))
    if "options" in m and not options:
        c.err(m["options"].line, f"{where} menu has no options")
    return Menu(
        prompt=prompt_ref(m.get("prompt"), f"{where} menu prompt"),
        timeout=c.number(m.get("timeout"), f"{where} menu timeout", 6, 1, 60),
        default=service_ref(m["default"], f"{where} menu default") if "default" in m else "",
        options=options,
    )


def _phones(c: _Checker, node: Node) -> dict[str, Phone]:
    phones: dict[str, Phone] = {}
    if not isinstance(node.value, list):
        c.err(node.line, "'phones' must be a list")
        return phones
    for p in node.value:
        if not c.mapping(p, "a phone", {"id", "type", "answer_after", "secret"}, {"id", "type"}):
            continue
        v = p.value
        pid = c.text(v.get("id"), "phone id")
        if "id" in v and not PHONE_ID.match(pid):
            c.err(v["id"].line, f"phone id '{pid}' must be 2 to 10 digits")
        if "id" in v and pid in phones:  # a missing id is reported already
            c.err(v["id"].line, f"the phone '{pid}' is listed twice")
        kind = c.text(v.get("type"), f"phone {pid} type")
        if "type" in v and kind not in ("virtual", "pjsip", "webrtc"):
            c.err(v["type"].line, f"phone {pid} type must be 'virtual', 'pjsip' or 'webrtc', "
                                  f"not '{kind}'")
        secret = c.text(v.get("secret"), f"phone {pid} secret") if "secret" in v else None
        weak = weak_secret(secret, pid) if secret is not None else None
        if weak:
            c.err(v["secret"].line, f"phone {pid} secret {weak}; leave 'secret' out and one "
                                    "is generated (`hotline phones` shows it)")
        if kind == "webrtc" and "answer_after" in v:
            # A softphone rings at the desk until the agent clicks 接听 (or ring_timeout).
            c.err(v["answer_after"].line, f"phone {pid} is a webrtc phone: it rings until "
                                          "the agent answers at the desk; remove answer_after")
        never = False
        answer_after = 1.0
        if "answer_after" in v and v["answer_after"].value == "never":
            never = True
        else:
            answer_after = c.number(v.get("answer_after"), f"phone {pid} answer_after", 1, 0, 120)
        phones[pid] = Phone(pid, kind, answer_after, never, secret)
    return phones


# Words that mark a secret as a placeholder or a guess (a shipped example must never work).
_GUESSABLE = ("change", "secret", "password", "passwd", "hotline", "12345", "63160000",
              "asterisk", "default", "admin", "qwerty")


def weak_secret(secret: str, phone_id: str) -> str | None:
    """Why a phone's SIP secret would be guessed, or None when it is strong enough.

    SIP digest is tried by scanners by the thousand a minute on any open port: a phone's
    secret must be long and random, never a placeholder."""
    lowered = secret.lower()
    if len(secret) < 16:
        return "is too short (at least 16 characters)"
    if phone_id in secret or any(word in lowered for word in _GUESSABLE):
        return "is a placeholder or easy to guess"
    if len(set(secret)) < 8:
        return "repeats too few characters"
    return None


def _system(c: _Checker, node: Node) -> System:
    fields = {"bind", "sip_bind", "rtp_ports", "phone_networks", "ari_port", "ami_port",
              "sip_port", "desk_port", "agi_port", "trusted_proxies", "sip_guard"}
    if isinstance(node.value, dict) and "callback_dial" in node.value:
        c.err(node.keys["callback_dial"], "callback_dial is gone: calls out now leave through "
              "the trunks named under 'dial_out' (see docs/configuration.md)")
        fields.add("callback_dial")
    if not c.mapping(node, "'system'", fields, set()):
        return System()
    s = node.value
    ports: dict[str, int] = {}
    defaults = System()
    effective: dict[str, int] = {}
    for key in ("ari_port", "ami_port", "sip_port", "desk_port", "agi_port"):
        effective[key] = getattr(defaults, key)
        if key in s:
            v = s[key].value
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 65535:
                c.err(s[key].line, f"{key} must be a port number from 1 to 65535")
            else:
                ports[key] = effective[key] = v
    # Compare with the defaults too: a port written here may clash with one left out.
    by_port: dict[int, list[str]] = {}
    for key, port in effective.items():
        by_port.setdefault(port, []).append(key)
    for port, keys in sorted(by_port.items()):
        if len(keys) > 1:
            line = max((s[k].line for k in keys if k in s), default=node.line)
            c.err(line, f"{' and '.join(keys)} would both use port {port}; they must differ")
    bind = _address(c, s.get("bind"), "system bind", "127.0.0.1")
    if "bind" in s and not ipaddress.ip_address(bind).is_loopback:
        c.err(s["bind"].line, "system bind is for ARI, AMI, FastAGI and the desk, which must "
              "stay on loopback (127.0.0.1); put SIP on the network with sip_bind, and the "
              "desk behind a TLS proxy (README)")
    sip_bind = _address(c, s.get("sip_bind"), "system sip_bind", "127.0.0.1")
    if "sip_bind" in s and ipaddress.ip_address(sip_bind).is_unspecified:
        c.err(s["sip_bind"].line, "system sip_bind must be one address of this machine (the "
              "one on the carrier's line and the duty room's network), not every address")
    rtp = _rtp_ports(c, s.get("rtp_ports"))
    phones = check_networks(c, s.get("phone_networks"), "system phone_networks") \
        if "phone_networks" in s else ()
    return System(bind=bind, sip_bind=sip_bind, rtp_ports=rtp, phone_networks=phones,
                  trusted_proxies=_proxies(c, s), sip_guard=sipguard.parse(c, s.get("sip_guard")),
                  **ports)


def _address(c: _Checker, node: Node | None, where: str, default: str) -> str:
    text = c.text(node, where, default)
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        if node is not None:
            c.err(node.line, f"{where} '{text}' must be an IP address of this machine, "
                             "like 127.0.0.1 or 10.1.2.3")
        return default


def _rtp_ports(c: _Checker, node: Node | None) -> tuple[int, int]:
    if node is None:
        return System.rtp_ports
    m = re.fullmatch(r"\s*([0-9]{4,5})\s*-\s*([0-9]{4,5})\s*", str(node.value))
    if not m or not 1024 <= int(m[1]) < int(m[2]) <= 65535 or int(m[2]) - int(m[1]) < 10:
        c.err(node.line, "rtp_ports must be a range like 20000-20999 (ports 1024 to 65535, "
                         "at least 10 ports; each call uses two)")
        return System.rtp_ports
    return int(m[1]), int(m[2])


def _proxies(c: _Checker, s: dict[str, Node]) -> tuple[str, ...]:
    node = s.get("trusted_proxies")
    if node is None or node.value is None:
        return ()
    if not isinstance(node.value, list):
        c.err(node.line, "trusted_proxies must be a list of addresses, e.g. [127.0.0.1]")
        return ()
    out = []
    for item in node.value:
        try:
            out.append(str(ipaddress.ip_network(str(item.value), strict=False)))
        except ValueError:
            c.err(item.line, f"trusted_proxies: '{item.value}' is not an IP address or "
                             "network (like 10.0.0.5 or 10.0.0.0/24)")
    return tuple(out)


def _casework(c: _Checker, node: Node) -> Casework:
    days = {"written_days": (1, 60), "phone_days": (1, 60), "criticism_urgings": (1, 20),
            "max_extension_days": (1, 60), "retention_days": (0, 36500)}
    if not c.mapping(node, "'casework'", {*days, "assessment"}, set()):
        return Casework()
    s = node.value
    values: dict[str, int] = {}
    for key, (lo, hi) in days.items():
        if key in s:
            v = s[key].value
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                c.err(s[key].line, f"casework {key} must be a whole number from {lo} to {hi}")
            else:
                values[key] = v
    weights: dict[str, float] = {}
    if "assessment" in s and c.mapping(s["assessment"], "casework 'assessment'",
                                       set(ASSESSMENT_SETTINGS), set()):
        for key, child, line in _items(s["assessment"]):
            v = child.value
            if key not in ASSESSMENT_SETTINGS:
                continue  # already reported as an unknown key
            if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
                c.err(line, f"casework assessment '{key}' must be a number, 0 or more")
            else:
                weights[key] = float(v)
    return Casework(assessment=weights, **values)
