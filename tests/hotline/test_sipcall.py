"""`hotline call` as SIP, planned without running anything: which trunk and address, what
the carrier's INVITE says, and plain refusals (tests/hotline/test_call_e2e.py places it)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dialplan import config
from hotline import sipcall
from tests.conftest import ROOT


def cfg() -> config.HotlineConfig:
    return config.load(ROOT / "config" / "hotline.yaml")


def test_the_call_comes_from_the_demo_trunk_with_the_number_in_its_header(
        tmp_path: Path) -> None:
    call = sipcall.plan_call(cfg(), "63160000", "13900139000", dtmf="2w3", dtmf_delay=2,
                             hold=20, log_dir=tmp_path)
    assert (call.trunk, call.local_ip, call.target) == ("demo", "127.0.0.2", "127.0.0.1:5060")
    line = call.spec.csv_line(call.local_ip).split(";")
    assert line[:5] == ["63160000", '"13900139000" <sip:13900139000@127.0.0.2>',
                        "P-Asserted-Identity: <sip:13900139000@127.0.0.2>", "none", "2,3"]
    # hold counts once the keys are pressed, as over a Local channel: 2 + 0.5 + 1 + 0.5 + 20
    assert line[5:7] == ["2000", "24000"]
    assert call.run_dir.parent == tmp_path


def test_a_withheld_caller_sends_an_anonymous_from_and_privacy(tmp_path: Path) -> None:
    call = sipcall.plan_call(cfg(), "12345", "withheld", log_dir=tmp_path)
    line = call.spec.csv_line(call.local_ip).split(";")
    assert line[1] == '"Anonymous" <sip:anonymous@anonymous.invalid>'
    assert (line[2], line[3]) == ("", "id")  # no identity header at all


def test_a_trunk_reading_remote_party_id_gets_it(tmp_path: Path) -> None:
    c = cfg()
    demo = dataclasses.replace(c.trunks[0], caller_id_from="remote_party_id")
    c = dataclasses.replace(c, trunks=(demo, *c.trunks[1:]))
    line = sipcall.plan_call(c, "12345", "13800138000", log_dir=tmp_path).spec.csv_line(
        "127.0.0.2").split(";")
    assert line[2] == "Remote-Party-ID: <sip:13800138000@127.0.0.2>"


@pytest.mark.parametrize(("number", "caller", "dtmf", "words"), [
    ("12345", "13800138000", "12A", "cannot be sent over SIP"),
    ("12345", "1380;0138000", "", "is not a number"),
    ("12345\r\nX: y", "13800138000", "", "is not a number to dial"),
    ("12345", "<sip:x@evil>", "", "is not a number"),
])
def test_what_cannot_be_dialled_is_refused_in_words(number: str, caller: str, dtmf: str,
                                                    words: str, tmp_path: Path) -> None:
    with pytest.raises(sipcall.BadCall, match=words):
        sipcall.plan_call(cfg(), number, caller, dtmf=dtmf, log_dir=tmp_path)


def test_without_a_carrier_on_this_machine_it_says_to_use_local(tmp_path: Path) -> None:
    c = cfg()
    real = dataclasses.replace(c.trunks[0], match=("203.0.113.0/24",))
    c = dataclasses.replace(c, trunks=(real,))
    with pytest.raises(sipcall.SipCallError, match="--local") as e:
        sipcall.plan_call(c, "12345", "13800138000", log_dir=tmp_path)
    assert not isinstance(e.value, sipcall.BadCall)  # the CLI falls back to --local
