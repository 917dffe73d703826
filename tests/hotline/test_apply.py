"""Tests for hotline.apply's pure parts: what a change reloads, what it refuses, putting back.

No services: Asterisk's folders are a temporary tree and AMI is a fake that answers in the
shape Asterisk 22's AMI does, and reads the dialplan it "reloads" from the written file.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from dialplan import config, render
from dialplan.config import HotlineConfig
from dialplan.render import AsteriskDirs, Secrets
from hotline import apply as live
from hotline import cli
from hotline.asterisk import AsteriskInstall, AsteriskInstance
from hotline.runtime import Runtime
from tests.conftest import closed_port

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "hotline.yaml"
DIRS = AsteriskDirs(base="/srv/hotline/x", modules="/usr/lib/asterisk/modules")
SECRETS = Secrets("ari-u", "ari-p", "ami-u", "ami-s", phones={"8101": "generated-Vq7pX2mLr9"})


def _data() -> dict[str, Any]:
    return yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))


def _cfg(data: dict[str, Any], source: str = "/etc/hotline.yaml") -> HotlineConfig:
    return dataclasses.replace(config.loads(yaml.safe_dump(data, allow_unicode=True)),
                               source=source)


def _files(data: dict[str, Any], source: str = "/etc/hotline.yaml") -> dict[str, str]:
    return render.render(_cfg(data, source), DIRS, SECRETS)


def _plan(before: dict[str, Any], after: dict[str, Any]) -> live.Plan:
    return live.make_plan(_files(before), _files(after), _cfg(before).system.desk_port,
                          _cfg(after).system.desk_port)


NEW_NUMBER = {"number": "96110", "name": "反诈专线", "greeting": "welcome_96110",
              "service": "hotline", "queue": "duty"}


def _with_new_number(data: dict[str, Any]) -> dict[str, Any]:
    data["numbers"].append(dict(NEW_NUMBER))
    data["prompts"]["welcome_96110"] = "您好，这里是反诈专线。"
    return data


# -- what changed, what to reload ---------------------------------------------------------


def test_the_same_yaml_changes_nothing_even_from_another_file() -> None:
    # The header names the YAML it was rendered from; that alone is no change.
    plan = live.make_plan(_files(_data(), "/a.yaml"), _files(_data(), "/b.yaml"), 8080, 8080)
    assert plan == live.Plan((), (), ())


def test_a_new_number_reloads_only_the_dialplan() -> None:
    plan = _plan(_data(), _with_new_number(_data()))
    assert plan.changed == ("extensions.conf",)
    assert plan.reloads == ("pbx_config.so",)
    assert plan.restart_reasons == ()


def test_prompt_texts_and_queue_timing_touch_no_asterisk_file() -> None:
    after = _data()
    after["prompts"]["please_hold"] = "请稍候。"
    after["queues"]["duty"]["ring_timeout"] = 30
    after["agents"][0]["name"] = "张敏敏"
    assert _plan(_data(), after) == live.Plan((), (), ())


def test_music_on_hold_and_sip_phones_reload_their_modules_before_the_dialplan() -> None:
    after = _with_new_number(_data())
    after["queues"]["duty"]["music_on_hold"] = "calm"
    after["phones"].append({"id": "8102", "type": "pjsip", "secret": "Vq7pX2mLr9tKc4-zz"})
    plan = _plan(_data(), after)
    assert plan.changed == ("extensions.conf", "musiconhold.conf", "pjsip.conf")
    assert plan.reloads == ("res_pjsip.so", "res_musiconhold.so", "pbx_config.so")
    assert plan.restart_reasons == ()


def test_reload_modules_keeps_its_order_and_names_each_module_once() -> None:
    assert live.reload_modules(["extensions.conf", "ari.conf", "extensions.conf"]) == (
        "res_ari.so", "pbx_config.so")
    assert live.reload_modules([]) == ()


def test_every_rendered_file_is_either_reloadable_or_read_at_start() -> None:
    # A file render adds later must be given a reload here (or be refused, see below).
    for name in _files(_data()):
        assert name in live.RELOADS or name in live.START_ONLY, name


# -- what cannot be applied live ------------------------------------------------------------


@pytest.mark.parametrize("key, value, service", [
    ("ari_port", 8089, "ARI (http.conf)"),
    ("ami_port", 5039, "AMI (manager.conf)"),
    ("sip_port", 5061, "SIP (pjsip.conf)"),
])
def test_a_port_change_is_refused(key: str, value: int, service: str) -> None:
    after = _data()
    after["system"][key] = value
    reasons = _plan(_data(), after).restart_reasons
    assert len(reasons) == 1
    assert reasons[0].startswith(f"{service} would move from 127.0.0.1:")
    assert str(value) in reasons[0]


def test_a_bind_address_change_is_refused_for_every_listener() -> None:
    after = _data()
    after["system"]["bind"] = "127.0.0.2"
    reasons = _plan(_data(), after).restart_reasons
    assert [r.split(" would")[0] for r in reasons] == ["ARI (http.conf)", "AMI (manager.conf)"]
    after["system"]["sip_bind"] = "127.0.0.2"
    reasons = _plan(_data(), after).restart_reasons
    assert [r.split(" would")[0] for r in reasons] == [
        "ARI (http.conf)", "AMI (manager.conf)", "SIP (pjsip.conf)"]


def test_a_desk_port_change_is_refused_when_the_running_port_is_known() -> None:
    after = _data()
    after["system"]["desk_port"] = 8081
    assert _plan(_data(), after).restart_reasons == (
        "the agent desk would move from port 8080 to 8081",)
    # Unknown running port (no recorded version, file applied in place): nothing to compare.
    assert live.make_plan(_files(_data()), _files(after), None, 8081).restart_reasons == ()


def test_files_asterisk_reads_only_at_start_are_refused() -> None:
    old = _files(_data())
    new = render.render(_cfg(_data()), dataclasses.replace(DIRS, base="/srv/elsewhere"),
                        SECRETS)
    reasons = live.make_plan(old, new, 8080, 8080).restart_reasons
    assert any(r.startswith("asterisk.conf changed, and Asterisk reads it only") for r in reasons)


def test_a_file_with_no_known_reload_is_refused() -> None:
    old = _files(_data())
    new = dict(old, **{"voicemail.conf": "[general]\n"})
    assert live.make_plan(old, new, 8080, 8080).restart_reasons == (
        "voicemail.conf changed, and it cannot be reloaded live",)


def test_listen_addresses_are_read_from_the_rendered_files() -> None:
    data = _data()
    data["system"].update(ari_port=18088, ami_port=15038, sip_port=15060)
    assert live.listen_addresses(_files(data)) == {
        "ARI (http.conf)": "127.0.0.1:18088",
        "AMI (manager.conf)": "127.0.0.1:15038",
        "SIP (pjsip.conf)": "127.0.0.1:15060",
    }
    assert live.listen_addresses({}) == {}


def test_body_drops_only_the_rendered_header() -> None:
    assert live.body("; Rendered by hotline from /x.yaml. Do not edit\n[a]\nb=1\n") == "[a]\nb=1\n"
    assert live.body("[a]\n") == "[a]\n"
    assert live.body(None) is None


def test_changed_prompts_compares_the_audio(tmp_path: Path) -> None:
    built, dest = tmp_path / "built", tmp_path / "sounds"
    built.mkdir()
    dest.mkdir()
    for pid, data in {"same": b"a", "other": b"new", "added": b"c"}.items():
        (built / f"{pid}-1234.wav").write_bytes(data)
    (dest / "same.wav").write_bytes(b"a")
    (dest / "other.wav").write_bytes(b"old")
    wavs = {pid: built / f"{pid}-1234.wav" for pid in ("same", "other", "added")}
    assert sorted(live.changed_prompts(dest, wavs)) == ["added", "other"]


def test_who_names_the_sudo_user_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live.getpass, "getuser", lambda: "root")
    monkeypatch.setenv("SUDO_USER", "alice")
    assert live.who() == "root (sudo alice)"
    monkeypatch.delenv("SUDO_USER")
    assert live.who() == "root"


# -- writing, reloading, putting back (fake Asterisk) --------------------------------------


class FakeAmi:
    """Answers like Asterisk's AMI; a reload of the dialplan reads extensions.conf."""

    def __init__(self, inst: AsteriskInstance, refuse: str | None = None,
                 drop_number: str | None = None):
        self.etc = inst.host(inst.dirs.etc)
        self.refuse = refuse  # a module whose reload Asterisk refuses
        self.drop_number = drop_number  # a number the "reloaded" dialplan lacks
        self.sent: list[dict[str, str]] = []
        self.numbers = self._numbers()

    def _numbers(self) -> set[str]:
        text = (self.etc / "extensions.conf").read_text()
        inbound = text.split(f"[{render.INBOUND_CONTEXT}]")[1].split("\n[")[0]
        return set(re.findall(r"^exten => ([^,]+),1,", inbound, re.M)) - {self.drop_number}

    async def send(self, action: dict[str, str]) -> list[Mapping[str, Any]]:
        self.sent.append(action)
        kind = action["Action"]
        if kind == "Reload":
            if action["Module"] == self.refuse:
                self.refuse = None  # the reload of the previous files works
                return [{"Response": "Error", "Message": "Module does not support reload"}]
            if action["Module"] == "pbx_config.so":
                self.numbers = self._numbers()
            return [{"Response": "Success", "Message": "Module Reloaded"}]
        if kind == "Ping":
            return [{"Response": "Success", "Ping": "Pong"}]
        if kind == "ShowDialPlan":
            return [{"Response": "Success", "EventList": "start"}] + [
                {"Event": "ListDialplan", "Context": action["Context"], "Extension": n,
                 "Priority": "1"} for n in sorted(self.numbers)
            ] + [{"Event": "ShowDialPlanComplete"}]
        if kind == "PJSIPShowEndpoints":
            return [{"Response": "Error", "Message": "No endpoints found"}]
        raise AssertionError(f"unexpected action {action}")

    def reloads(self) -> list[str]:
        return [a["Module"] for a in self.sent if a["Action"] == "Reload"]


@pytest.fixture
def inst(tmp_path: Path) -> AsteriskInstance:
    """An Asterisk instance in a temporary root, running the shipped configuration."""
    (tmp_path / "root" / "usr" / "lib" / "asterisk" / "modules").mkdir(parents=True)
    instance = AsteriskInstance(AsteriskInstall(tmp_path / "root"), tmp_path / "var")
    instance.write_config(render.render(_cfg(_data()), instance.dirs, SECRETS))
    sounds = instance.host(f"{instance.dirs.data}/sounds/hotline")
    sounds.mkdir(parents=True)
    (sounds / "please_hold.wav").write_bytes(b"old hold")
    return instance


def _new(inst: AsteriskInstance) -> tuple[HotlineConfig, dict[str, str]]:
    cfg = _cfg(_with_new_number(_data()))
    files = render.render(cfg, inst.dirs, SECRETS)
    return cfg, {"extensions.conf": files["extensions.conf"]}


def _wavs(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "hold.wav").write_bytes(b"new hold")
    (tmp_path / "w96110.wav").write_bytes(b"greeting")
    return {"please_hold": tmp_path / "hold.wav", "welcome_96110": tmp_path / "w96110.wav"}


async def test_a_reload_puts_the_new_files_and_prompts_live(inst: AsteriskInstance,
                                                           tmp_path: Path) -> None:
    ami = FakeAmi(inst)
    cfg, files = _new(inst)
    await live.swap_and_reload(inst, ami, cfg, files, _wavs(tmp_path), ("pbx_config.so",))
    etc = inst.host(inst.dirs.etc)
    sounds = inst.host(f"{inst.dirs.data}/sounds/hotline")
    assert "exten => 96110,1" in (etc / "extensions.conf").read_text()
    assert (sounds / "please_hold.wav").read_bytes() == b"new hold"
    assert (sounds / "welcome_96110.wav").read_bytes() == b"greeting"
    assert ami.reloads() == ["pbx_config.so"]
    assert "96110" in ami.numbers
    assert not list(etc.glob(".*.tmp")) and not list(sounds.glob(".*.tmp"))


async def test_a_refused_reload_puts_the_previous_files_back(inst: AsteriskInstance,
                                                            tmp_path: Path) -> None:
    etc = inst.host(inst.dirs.etc)
    before = (etc / "extensions.conf").read_text()
    ami = FakeAmi(inst, refuse="pbx_config.so")
    cfg, files = _new(inst)
    with pytest.raises(live.ApplyError) as err:
        await live.swap_and_reload(inst, ami, cfg, files, _wavs(tmp_path), ("pbx_config.so",))
    assert str(err.value) == (
        "Asterisk refused to reload pbx_config.so: Module does not support reload. "
        "The previous configuration was put back and is running.")
    assert (etc / "extensions.conf").read_text() == before
    sounds = inst.host(f"{inst.dirs.data}/sounds/hotline")
    assert (sounds / "please_hold.wav").read_bytes() == b"old hold"
    assert not (sounds / "welcome_96110.wav").exists()
    # The previous files were reloaded after being put back.
    assert ami.reloads() == ["pbx_config.so", "pbx_config.so"]


async def test_a_failed_check_after_the_reload_puts_the_previous_files_back(
    inst: AsteriskInstance, tmp_path: Path
) -> None:
    etc = inst.host(inst.dirs.etc)
    before = (etc / "extensions.conf").read_text()
    ami = FakeAmi(inst, drop_number="96110")
    cfg, files = _new(inst)
    with pytest.raises(live.ApplyError, match="answers the numbers 12345, 63160000, not "
                                              "12345, 63160000, 96110"):
        await live.swap_and_reload(inst, ami, cfg, files, {}, ("pbx_config.so",))
    assert (etc / "extensions.conf").read_text() == before
    assert ami.reloads() == ["pbx_config.so", "pbx_config.so"]


async def test_a_file_that_did_not_exist_is_removed_when_putting_back(
    inst: AsteriskInstance,
) -> None:
    etc = inst.host(inst.dirs.etc)
    swap = live.Swap(inst)
    swap.write({"extra.conf": "[general]\n"}, {})
    assert (etc / "extra.conf").exists()
    assert await swap.undo(FakeAmi(inst), []) == []
    assert not (etc / "extra.conf").exists()


async def test_a_sip_check_finds_missing_phones_and_trunks(inst: AsteriskInstance) -> None:
    data = _data()
    with pytest.raises(live.AmiError, match="lacks the SIP phone.* 8101, trunk-demo"):
        await live.verify(FakeAmi(inst), _cfg(data), ["res_pjsip.so"])
    data["phones"] = [p for p in data["phones"] if p["type"] != "pjsip"]
    with pytest.raises(live.AmiError, match="trunk-demo"):
        await live.verify(FakeAmi(inst), _cfg(data), ["res_pjsip.so"])
    data.pop("trunks")
    data.pop("dial_out")
    await live.verify(FakeAmi(inst), _cfg(data), ["res_pjsip.so"])


# -- the command, without services ----------------------------------------------------------


@pytest.fixture
def no_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql://hotline@127.0.0.1:{closed_port()}/x")


async def test_a_yaml_with_mistakes_is_reported_by_line_and_nothing_is_written(
    tmp_path: Path, no_database: None
) -> None:
    live_file = tmp_path / "hotline.yaml"
    live_file.write_text(SHIPPED.read_text(encoding="utf-8"), encoding="utf-8")
    broken = tmp_path / "candidate.yaml"
    broken.write_text(SHIPPED.read_text(encoding="utf-8").replace(
        "    greeting: welcome_63160000", "    greting: welcome_63160000"), encoding="utf-8")
    line = next(i for i, t in enumerate(broken.read_text().splitlines(), 1) if "greting" in t)
    rt = Runtime(var=tmp_path / "var", config_path=live_file, pg_port=1)
    result = await live.apply(rt, broken)
    assert not result.ok
    assert f"{broken}:{line}: unknown key 'greting'" in result.message
    assert "nothing was applied" in result.message
    assert live_file.read_text(encoding="utf-8") == SHIPPED.read_text(encoding="utf-8")
    assert not (tmp_path / "var" / "asterisk").exists()


async def test_an_unreadable_file_is_a_plain_message(tmp_path: Path) -> None:
    rt = Runtime(var=tmp_path / "var", config_path=tmp_path / "hotline.yaml", pg_port=1)
    result = await live.apply(rt, tmp_path / "missing.yaml")
    assert not result.ok
    assert result.message.startswith(f"{tmp_path / 'missing.yaml'}:0: cannot read the file")


def test_cli_versions_without_a_database_is_a_plain_message(
    tmp_path: Path, no_database: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["--var", str(tmp_path), "config", "versions"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("the database is not reachable")
    assert "Traceback" not in err


def test_cli_rollback_wants_a_version_number(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["config", "rollback", "latest"])
    assert "'latest' is not a version id" in capsys.readouterr().err
    assert cli._version_id("#3") == 3
