"""Tests for dialplan.config: the admin's YAML and its `file:line: sentence` errors.

Most tests start from MINIMAL, a small valid document whose line numbers are fixed
(see the numbers on the left below), tweak one line or append a block, and check that
the mistake is reported on the line where the admin made it.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from dialplan import config
from dialplan.config import ConfigError, HotlineConfig

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "config" / "hotline.yaml"
HOTLINE_CLI = ROOT / ".venv" / "bin" / "hotline"
FILE = "hotline.yaml"

MINIMAL = """\
services:
  hotline: Hotline matters
  news_tip: News tips
queues:
  duty:
    name: Duty room
prompts:
  welcome: Hello
  menu: Press 1 or 2
  ask_callback: Enter your number
  please_hold: Please hold
  service_unavailable: Sorry
numbers:
  - number: "12345"
    greeting: welcome
    service: hotline
    queue: duty
"""
#  1 services:            7 prompts:                  13 numbers:
#  2   hotline            8   welcome                 14   - number: "12345"
#  3   news_tip           9   menu                    15     greeting: welcome
#  4 queues:             10   ask_callback            16     service: hotline
#  5   duty:             11   please_hold             17     queue: duty
#  6     name            12   service_unavailable
# `numbers` comes last, so a test may append more number items or new top-level sections.
NEXT = MINIMAL.count("\n") + 1  # the first line of whatever a test appends (18)

MENU_NUMBER = """\
  - number: "63160000"
    greeting: welcome
    menu:
      prompt: menu
      default: hotline
      options:
        "1": hotline
        "2": news_tip
"""
#  NEXT+0 - number   +2 menu:   +4 default   +6 "1": hotline
#  NEXT+1 greeting   +3 prompt  +5 options:  +7 "2": news_tip


def yaml_doc(*edits: tuple[str, str], numbers: str = "", extra: str = "") -> str:
    """MINIMAL with each (old, new) replaced once (keep it to one line), then `numbers`
    (more items of the numbers list, as is), then `extra` (dedented top-level sections)."""
    text = MINIMAL
    for old, new in edits:
        assert old in text, f"{old!r} is not in the minimal document"
        text = text.replace(old, new, 1)
    return text + numbers + textwrap.dedent(extra)


def problems(text: str) -> list[tuple[int, str]]:
    """The (line, sentence) problems loads() reports for text; fails if it loads."""
    with pytest.raises(ConfigError) as info:
        config.loads(text, FILE)
    assert all(f == FILE for f, _, _ in info.value.problems)
    return [(line, msg) for _, line, msg in info.value.problems]


def assert_reported(text: str, line: int, *fragments: str) -> str:
    """Exactly one problem mentions all fragments, and it is on `line`; return its sentence."""
    found = [(ln, msg) for ln, msg in problems(text) if all(f in msg for f in fragments)]
    assert len(found) == 1, f"wanted one problem with {fragments}, got {problems(text)}"
    assert found[0][0] == line, f"reported on line {found[0][0]}, expected {line}: {found[0]}"
    return found[0][1]


# -- valid documents ---------------------------------------------------------------------


def test_minimal_document_is_valid() -> None:
    """The helper's base document loads, so every failure below comes from the tweak."""
    cfg = config.loads(yaml_doc(numbers=MENU_NUMBER), FILE)
    assert [n.number for n in cfg.numbers] == ["12345", "63160000"]
    assert cfg.default_queue == "duty"
    assert cfg.source == FILE
    assert NEXT == 18  # the line map above MINIMAL is still right


def test_shipped_config_loads() -> None:
    """config/hotline.yaml as shipped validates: 12345 straight to the hotline, 63160000
    with a voice menu, both in the one duty queue."""
    cfg = config.load(SHIPPED)
    assert isinstance(cfg, HotlineConfig)
    assert [n.number for n in cfg.numbers] == ["12345", "63160000"]
    assert {n.queue for n in cfg.numbers} == {"duty"}
    assert cfg.default_queue == "duty"
    assert set(cfg.queues) == {"duty"}

    n12345 = cfg.number("12345")
    assert n12345 is not None
    assert n12345.menu is None
    assert n12345.service == "hotline"
    assert n12345.greeting in cfg.prompts

    n6316 = cfg.number("63160000")
    assert n6316 is not None
    assert n6316.menu is not None
    assert n6316.menu.default == "hotline"
    assert n6316.menu.prompt in cfg.prompts
    assert {o.service for o in n6316.menu.options.values()} <= set(cfg.services)

    assert cfg.number("110") is None


def test_shipped_config_phones_agents_and_system() -> None:
    """The shipped phones and agents fit together and everything listens on loopback."""
    cfg = config.load(SHIPPED)
    assert {a.phone for a in cfg.agents if a.role == "agent"} <= set(cfg.phones)
    pjsip = [p for p in cfg.phones.values() if p.type == "pjsip"]
    assert pjsip and not any(p.secret for p in pjsip)  # generated, never shipped
    assert cfg.system.bind == "127.0.0.1"


def test_answer_after_never_is_accepted() -> None:
    """A virtual phone may be set to ring forever (to test ring timeouts)."""
    cfg = config.loads(yaml_doc(extra="""\
        phones:
          - id: "8001"
            type: virtual
            answer_after: never
          - id: "8002"
            type: virtual
            answer_after: 2.5
        """), FILE)
    assert cfg.phones["8001"].never_answer is True
    assert cfg.phones["8002"].never_answer is False
    assert cfg.phones["8002"].answer_after == 2.5


def test_answer_after_other_words_are_refused() -> None:
    """Only the word 'never' is allowed instead of a number of seconds."""
    text = yaml_doc(extra='phones:\n  - id: "8001"\n    type: virtual\n    answer_after: nevr\n')
    assert_reported(text, NEXT + 3, "answer_after", "number of seconds")


# -- one mistake, one line ---------------------------------------------------------------


def test_unknown_key_with_did_you_mean_hint() -> None:
    """A typo in a key names the key, its line and the key the admin probably meant."""
    text = yaml_doc(("    greeting: welcome", "    greting: welcome"))
    msg = assert_reported(text, 15, "unknown key 'greting'")
    assert "did you mean 'greeting'?" in msg


def test_unknown_key_without_close_match_has_no_hint() -> None:
    """A key that resembles nothing is still reported, without a misleading hint."""
    text = yaml_doc(extra="colour: blue\n")
    msg = assert_reported(text, NEXT, "unknown key 'colour'")
    assert "did you mean" not in msg


def test_bad_public_number() -> None:
    """A public number with a letter in it is refused on its own line."""
    text = yaml_doc(('number: "12345"', 'number: "12a45"'))
    assert_reported(text, 14, "'12a45' is not a phone number")


def test_greeting_names_unknown_prompt() -> None:
    """A greeting must name a prompt under 'prompts' (else the caller hears nothing)."""
    text = yaml_doc(("greeting: welcome", "greeting: welcom"))
    msg = assert_reported(text, 15, "prompt 'welcom'")
    assert "not under 'prompts'" in msg


def test_menu_option_names_unknown_service() -> None:
    """A menu key must lead to a configured service."""
    text = yaml_doc(numbers=MENU_NUMBER.replace('"2": news_tip', '"2": weather'))
    msg = assert_reported(text, NEXT + 7, "service 'weather'")
    assert "menu key 2" in msg and "not under 'services'" in msg


def test_menu_default_names_unknown_service() -> None:
    """The menu's default (timeout or bad key) must be a configured service too."""
    text = yaml_doc(numbers=MENU_NUMBER.replace("default: hotline", "default: nothing"))
    assert_reported(text, NEXT + 4, "menu default", "service 'nothing'")


def test_number_names_unknown_queue() -> None:
    """A number's queue must exist under 'queues'."""
    text = yaml_doc(("queue: duty", "queue: night"))
    msg = assert_reported(text, 17, "queue 'night'")
    assert "not under 'queues'" in msg


def test_duplicate_number() -> None:
    """The same public number listed twice is reported on the second listing."""
    text = yaml_doc(numbers='  - number: "12345"\n    greeting: welcome\n    service: hotline\n')
    assert_reported(text, NEXT, "the number 12345 is listed twice")


def test_duplicate_mapping_key() -> None:
    """A key written twice in one mapping (YAML would silently keep the last) is an error."""
    text = yaml_doc(("  menu: Press 1 or 2", "  welcome: Hello again"))
    assert problems(text) == [(9, "the key 'welcome' appears twice")]


def test_invalid_yaml_reports_line_of_problem() -> None:
    """Broken YAML syntax gives the line where the parser gave up, in plain words."""
    text = yaml_doc(("    name: Duty room", "    name: [Duty room"))
    [(line, msg)] = problems(text)
    assert msg.startswith("this is not valid YAML")
    assert line == 7  # the flow list opened on line 6 runs into 'prompts:' on line 7


def test_invalid_yaml_bad_indentation() -> None:
    """A mis-indented line is reported where it is."""
    text = yaml_doc(("    service: hotline", "   service: hotline"))
    [(line, msg)] = problems(text)
    assert line == 16
    assert msg.startswith("this is not valid YAML")


@pytest.mark.parametrize("text", ["", "\n\n", "# just a comment\n"])
def test_empty_file(text: str) -> None:
    """An empty (or comment-only) file says so instead of crashing."""
    assert problems(text) == [(1, "the file is empty")]


def test_top_level_must_be_a_mapping() -> None:
    """A file that is a list, not sections, is refused with a sentence."""
    found = problems("- 12345\n- 63160000\n")
    assert found == [(1, "the file must be a mapping of keys to values")]


def test_missing_required_section() -> None:
    """Leaving out 'queues' names the missing section."""
    text = MINIMAL.replace("queues:\n  duty:\n    name: Duty room\n", "")
    assert any("missing 'queues'" in msg for _, msg in problems(text))


def test_missing_required_prompt() -> None:
    """Prompts every call may need (here service_unavailable) must be defined."""
    text = yaml_doc(("  service_unavailable: Sorry", "  sorry: Sorry"))
    assert any("missing 'service_unavailable'" in msg for _, msg in problems(text))


def test_agent_with_unknown_phone() -> None:
    """An agent must use a phone listed under 'phones'."""
    text = yaml_doc(extra="""\
        phones:
          - id: "8001"
            type: virtual
        agents:
          - login: agent1
            name: Zhang Min
            phone: "8009"
        """)
    msg = assert_reported(text, NEXT + 6, "phone '8009'")
    assert "agent agent1" in msg and "not under 'phones'" in msg


def test_pjsip_phone_without_secret_gets_a_generated_one() -> None:
    """A SIP phone with no secret in the YAML loads: its secret is generated and kept
    outside the YAML (hotline/runtime.py), so no shipped password ever works."""
    cfg = config.loads(yaml_doc(extra='phones:\n  - id: "8101"\n    type: pjsip\n'), FILE)
    assert cfg.phones["8101"].secret is None


STRONG = "Vq7-pX2m_Lr9tKc4"


def test_pjsip_phone_with_a_strong_secret_is_valid() -> None:
    cfg = config.loads(
        yaml_doc(extra=f'phones:\n  - id: "8101"\n    type: pjsip\n    secret: {STRONG}\n'),
        FILE)
    assert cfg.phones["8101"].secret == STRONG


@pytest.mark.parametrize("secret, why", [
    ("s3cret", "too short"),
    ("change-me-8101-please", "placeholder"),
    ("8101-abcdefghijklmnop", "placeholder"),
    ("HOTLINE-Vq7pX2mLr9t", "placeholder"),
    ("abababababababababab", "too few characters"),
])
def test_a_shipped_or_weak_phone_secret_is_refused(secret: str, why: str) -> None:
    text = yaml_doc(extra=f'phones:\n  - id: "8101"\n    type: pjsip\n    secret: {secret}\n')
    msg = assert_reported(text, NEXT + 3, "phone 8101 secret", why)
    assert "leave 'secret' out" in msg


def test_webrtc_phone_with_secret_is_valid() -> None:
    """A browser softphone at the desk: type webrtc, with a secret like a SIP phone."""
    cfg = config.loads(yaml_doc(extra="""\
        phones:
          - id: "8201"
            type: webrtc
            secret: w3b-Vq7pX2mLr9tKc4
        agents:
          - login: agent_web
            name: Web Agent
            phone: "8201"
        """), FILE)
    phone = cfg.phones["8201"]
    assert (phone.type, phone.secret) == ("webrtc", "w3b-Vq7pX2mLr9tKc4")
    assert cfg.agents[0].phone == "8201"


def test_webrtc_phone_without_secret_gets_a_generated_one() -> None:
    """Like a SIP phone, a softphone with no secret in the YAML is valid: one is generated
    at start (hotline/runtime.py) and handed to the agent's browser by the desk."""
    cfg = config.loads(yaml_doc(extra='phones:\n  - id: "8201"\n    type: webrtc\n'), FILE)
    assert (cfg.phones["8201"].type, cfg.phones["8201"].secret) == ("webrtc", None)


def test_webrtc_phone_with_a_weak_secret_is_refused() -> None:
    text = yaml_doc(extra='phones:\n  - id: "8201"\n    type: webrtc\n    secret: 8201\n')
    msg = assert_reported(text, NEXT + 3, "phone 8201 secret", "too short")
    assert "leave 'secret' out" in msg


def test_webrtc_phone_does_not_answer_by_itself() -> None:
    """answer_after belongs to virtual phones: a softphone rings until the agent answers."""
    text = yaml_doc(extra='phones:\n  - id: "8201"\n    type: webrtc\n    secret: s\n'
                          '    answer_after: 1\n')
    msg = assert_reported(text, NEXT + 4, "phone 8201", "answer_after")
    assert "webrtc" in msg


def test_unknown_phone_type_names_the_three_types() -> None:
    """A phone type that is not one of virtual, pjsip, webrtc is reported with the list."""
    text = yaml_doc(extra='phones:\n  - id: "8201"\n    type: webrtcc\n    secret: s\n')
    msg = assert_reported(text, NEXT + 2, "phone 8201 type")
    assert "'virtual', 'pjsip' or 'webrtc'" in msg and "'webrtcc'" in msg


def test_ports_must_differ() -> None:
    """Two services on one port cannot both start; the clash points into 'system'."""
    text = yaml_doc(extra="system:\n  ari_port: 8088\n  ami_port: 8088\n")
    [(line, msg)] = problems(text)
    assert msg == "ari_port and ami_port would both use port 8088; they must differ"
    assert NEXT <= line <= NEXT + 2


@pytest.mark.parametrize("value", ["0", "65536", "http", "true", "80.5"])
def test_port_out_of_range_or_not_a_number(value: str) -> None:
    """A port must be a whole number from 1 to 65535, reported on its own line."""
    text = yaml_doc(extra=f"system:\n  bind: 127.0.0.1\n  sip_port: {value}\n")
    assert_reported(text, NEXT + 2, "sip_port must be a port number from 1 to 65535")


def test_custom_system_section_is_used() -> None:
    """Distinct ports in range are taken as given."""
    cfg = config.loads(yaml_doc(extra="""\
        system:
          bind: 127.0.0.2
          ari_port: 18088
          ami_port: 15038
          sip_port: 15060
          desk_port: 18080
        """), FILE)
    s = cfg.system
    assert (s.bind, s.ari_port, s.ami_port, s.sip_port, s.desk_port) == (
        "127.0.0.2", 18088, 15038, 15060, 18080)


# -- many mistakes at once, and how they read ---------------------------------------------


def test_all_problems_reported_at_once_sorted_by_line() -> None:
    """An admin sees every mistake in one run, in file order, not one per attempt."""
    text = yaml_doc(
        ("    name: Duty room", "    nmae: Duty room"),  # line 6
        ('number: "12345"', 'number: "12a45"'),  # line 14
        ("queue: duty", "queue: night"),  # line 17
        extra="system:\n  ami_port: 99999\n",  # line 19
    )
    found = problems(text)
    lines = [line for line, _ in found]
    assert lines == sorted(lines)
    for line, fragment in [(6, "unknown key 'nmae'"), (14, "'12a45'"), (17, "queue 'night'"),
                           (NEXT + 1, "ami_port")]:
        assert any(ln == line and fragment in msg for ln, msg in found), (line, fragment, found)


def test_str_of_error_reads_file_line_sentence() -> None:
    """The message printed to the admin is `file:line: sentence`, one per line,
    with no Python internals in it."""
    text = yaml_doc(("    greeting: welcome", "    greting: welcome"),
                    ("queue: duty", "queue: night"))
    with pytest.raises(ConfigError) as info:
        config.loads(text, FILE)
    shown = str(info.value).splitlines()
    assert len(shown) == len(info.value.problems)
    assert "hotline.yaml:15: unknown key 'greting' in a number (did you mean 'greeting'?)" in shown
    assert all(line.startswith("hotline.yaml:") for line in shown)
    for noise in ("Traceback", "File \"", "yaml.", "Error:", "<"):
        assert noise not in str(info.value)


def test_load_missing_file() -> None:
    """A file that is not there is a ConfigError naming it, not an OSError."""
    with pytest.raises(ConfigError) as info:
        config.load(ROOT / "config" / "no-such-file.yaml")
    [(f, _, msg)] = info.value.problems
    assert f.endswith("no-such-file.yaml")
    assert msg.startswith("cannot read the file")


# -- known bugs --------------------------------------------------------------------------


def test_unknown_default_queue_points_at_its_line() -> None:
    """A default_queue that does not exist is reported on the default_queue line, once."""
    text = "hotline:\n  name: Test\n  default_queue: night\n" + MINIMAL.replace(
        "    queue: duty\n", "")
    found = problems(text)
    assert found == [(3, "default_queue 'night' is not under 'queues'")]


def test_port_clashing_with_a_default_port_is_refused() -> None:
    """Moving ARI onto 5038 clashes with AMI's default port 5038 and must be refused."""
    with pytest.raises(ConfigError):
        config.loads(yaml_doc(extra="system:\n  ari_port: 5038\n"), FILE)


def test_empty_services_does_not_accept_unknown_service() -> None:
    """A number naming 'hotline' is an error when no services are defined."""
    text = yaml_doc(("services:", "services: {}"),
                    ("  hotline: Hotline matters", "# no services"),
                    ("  news_tip: News tips", "# none"))
    assert any("service 'hotline'" in msg for _, msg in problems(text))


# -- the command line ---------------------------------------------------------------------


def _run_check(path: str | Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOTLINE_VAR": str(tmp_path / "var")}
    env.pop("HOTLINE_CONFIG", None)
    return subprocess.run([str(HOTLINE_CLI), "config", "check", str(path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_cli_check_bad_file(tmp_path: Path) -> None:
    """`hotline config check` on a broken file exits 1 with `FILE:LINE: ...` on stderr."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml_doc(("    greeting: welcome", "    greting: welcome")), encoding="utf-8")
    r = _run_check(bad, tmp_path)
    assert r.returncode == 1
    assert f"{bad}:15: unknown key 'greting'" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_cli_check_invalid_yaml(tmp_path: Path) -> None:
    """Even unparseable YAML gives a clean one-line report, not a stack trace."""
    bad = tmp_path / "broken.yaml"
    bad.write_text("numbers: [\n", encoding="utf-8")
    r = _run_check(bad, tmp_path)
    assert r.returncode == 1
    assert f"{bad}:2: this is not valid YAML" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_cli_check_shipped_file(tmp_path: Path) -> None:
    """`hotline config check config/hotline.yaml` passes."""
    r = _run_check("config/hotline.yaml", tmp_path)
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout
    assert "Traceback" not in r.stderr
