"""The directory of linkage units: importing the admin's file (YAML or CSV), the handler
accounts it creates, every mistake reported with its line, and the admin's edits."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from casework import units
from db import agents as agent_store
from db import calls as call_store
from db import sessions as session_store
from dialplan.config import Agent

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "config" / "units.yaml"
SAMPLE_CSV = ROOT / "config" / "units.example.csv"
SAMPLE_HANDLERS = ROOT / "config" / "units.handlers.example.csv"
NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


async def _import(conn: asyncpg.Connection, specs: list[units.UnitSpec],
                  with_handlers: bool = True) -> units.ImportResult:
    return await units.import_units(conn, specs, NOW, with_handlers=with_handlers)


def _without(text: str, code: str) -> str:
    """The sample YAML without the unit `code` (its block up to the next unit)."""
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.strip() == f"- code: {code}")
    end = next((i for i in range(start + 1, len(lines))
                if lines[i].lstrip().startswith("- code:")), len(lines))
    return "".join(lines[:start] + lines[end:])


# -- importing the sample directory ---------------------------------------------------------------


async def test_the_sample_yaml_is_a_three_level_directory(conn: asyncpg.Connection) -> None:
    result = await _import(conn, units.parse_units_yaml(SAMPLE))
    assert (result.created, result.updated, result.deactivated) == (23, 0, 0)
    rows = await conn.fetch(
        """SELECT u.code, u.name, u.level, u.duty_phone, p.code AS parent, p.level AS plevel
           FROM units u LEFT JOIN units p ON p.id = u.parent_id""")
    by_level = {lv: [r for r in rows if r["level"] == lv] for lv in (1, 2, 3)}
    assert [len(by_level[lv]) for lv in (1, 2, 3)] == [11, 8, 4]
    assert all(r["parent"] is None for r in by_level[1])
    for r in by_level[2] + by_level[3]:
        assert r["plevel"] == r["level"] - 1, r["code"]
    names = {r["code"]: r for r in rows}
    assert names["wancheng-xinhua-jiefang"]["parent"] == "wancheng-xinhua"
    assert names["power-guangwu"]["parent"] == "power"
    assert names["wancheng"]["duty_phone"] == "0377-5550101"

    tree = await units.tree(conn)
    wancheng = next(u for u in tree if u.code == "wancheng")
    assert [c.code for c in wancheng.children] == ["wancheng-dongguan", "wancheng-xinhua"]
    assert wancheng.children[1].children[0].name == "新华街道解放路社区居民委员会"
    assert wancheng.as_dict()["children"][1]["children"][0]["level"] == 3


async def test_each_level_one_unit_gets_a_handler_account(conn: asyncpg.Connection) -> None:
    await _import(conn, units.parse_units_yaml(SAMPLE))
    handlers = await conn.fetch(
        """SELECT a.*, u.code, u.level FROM agents a JOIN units u ON u.id = a.unit_id
           WHERE a.role = 'handler'""")
    assert len(handlers) == 11
    assert all(h["level"] == 1 and h["phone"] is None and h["active"] for h in handlers)
    assert all(h["state"] == "logged_out" for h in handlers)
    h = next(h for h in handlers if h["login"] == "h_wancheng")
    assert h["code"] == "wancheng" and h["display_name"] == "宛城区热线办"
    assert agent_store.verify_password(h["password_hash"], "hotline")
    unit = await units.by_code(conn, "wancheng")
    assert unit is not None
    assert [x["login"] for x in await units.handlers_of(conn, unit.id)] == ["h_wancheng"]


async def test_importing_again_changes_nothing(conn: asyncpg.Connection) -> None:
    specs = units.parse_units_yaml(SAMPLE)
    await _import(conn, specs)
    ids = dict(await conn.fetch("SELECT code, id FROM units"))
    again = await _import(conn, specs)
    assert again == units.ImportResult(unchanged=23)
    assert dict(await conn.fetch("SELECT code, id FROM units")) == ids
    assert await conn.fetchval("SELECT count(*) FROM agents") == 11


async def test_a_handler_keeps_the_password_they_chose(conn: asyncpg.Connection) -> None:
    await _import(conn, units.parse_units_yaml(SAMPLE))
    await conn.execute("UPDATE agents SET password_hash = $1 WHERE login = 'h_power'",
                       agent_store.hash_password("my own secret"))
    text = SAMPLE.read_text(encoding="utf-8").replace(
        "{login: h_power, name: 南阳供电公司热线联络员, initial_password: hotline}",
        "{login: h_power, name: 供电公司值班室, initial_password: changed}")
    result = await _import(conn, units.parse_units_yaml(text, "units.yaml"))
    assert result.handlers_updated == 1
    row = await conn.fetchrow("SELECT * FROM agents WHERE login = 'h_power'")
    assert row["display_name"] == "供电公司值班室"
    assert agent_store.verify_password(row["password_hash"], "my own secret")
    assert not agent_store.verify_password(row["password_hash"], "changed")


async def test_a_unit_left_out_of_the_file_is_deactivated_not_deleted(
        conn: asyncpg.Connection) -> None:
    await _import(conn, units.parse_units_yaml(SAMPLE))
    text = SAMPLE.read_text(encoding="utf-8")
    # The environment bureau (level 1, with a handler) and one community (level 3) go.
    smaller = _without(_without(text, "sthj"), "wolong-wolonggang-wuhou")
    result = await _import(conn, units.parse_units_yaml(smaller, "units.yaml"))
    assert (result.unchanged, result.deactivated, result.handlers_deactivated) == (21, 2, 1)
    gone = await conn.fetch("SELECT code, active FROM units WHERE NOT active ORDER BY code")
    assert [r["code"] for r in gone] == ["sthj", "wolong-wolonggang-wuhou"]
    assert await conn.fetchval("SELECT active FROM agents WHERE login = 'h_sthj'") is False
    assert await agent_store.by_login(conn, "h_sthj") is None  # cannot log in
    assert "sthj" not in [u.code for u in await units.tree(conn)]
    assert "sthj" in [u.code for u in await units.tree(conn, include_inactive=True)]

    back = await _import(conn, units.parse_units_yaml(SAMPLE))
    assert (back.updated, back.handlers_updated) == (2, 1)
    assert await conn.fetchval("SELECT count(*) FROM units WHERE active") == 23
    assert await conn.fetchval("SELECT active FROM agents WHERE login = 'h_sthj'") is True


async def test_the_sample_csv_with_its_handlers_csv(conn: asyncpg.Connection) -> None:
    specs = units.parse_handlers_csv(SAMPLE_HANDLERS, units.parse_units_csv(SAMPLE_CSV))
    result = await _import(conn, specs)
    assert (result.created, result.handlers_created) == (6, 3)
    rows = await conn.fetch(
        """SELECT u.code, u.level, p.code AS parent FROM units u
           LEFT JOIN units p ON p.id = u.parent_id ORDER BY u.code""")
    assert {r["code"]: (r["level"], r["parent"]) for r in rows} == {
        "power": (1, None), "power-guangwu": (2, "power"), "wancheng": (1, None),
        "wancheng-xinhua": (2, "wancheng"), "wancheng-xinhua-jiefang": (3, "wancheng-xinhua"),
        "water": (1, None)}
    # The same CSV without a handlers file leaves the accounts alone.
    again = await _import(conn, units.parse_units_csv(SAMPLE_CSV), with_handlers=False)
    assert again == units.ImportResult(unchanged=6)
    assert await conn.fetchval(
        "SELECT count(*) FROM agents WHERE role = 'handler' AND active") == 3


# -- handlers and the duty room's queue ----------------------------------------------------------


async def test_a_handler_is_never_offered_a_queue_call(conn: asyncpg.Connection) -> None:
    await _import(conn, units.parse_units_yaml(SAMPLE))
    handler = await agent_store.by_login(conn, "h_wancheng")
    assert handler is not None
    await agent_store.set_state(conn, handler["id"], "ready")
    await conn.execute(
        """INSERT INTO calls (id, channel_id, dialled_number, queue, state, entered_queue_at)
           VALUES ($1, 'ch-1', '12345', 'duty', 'waiting', now())""", uuid.uuid4())
    assert await call_store.claim_next(conn, "duty") is None
    # A duty agent who is ready is offered it: the call itself could be dispatched.
    agent_id = await conn.fetchval(
        """INSERT INTO agents (login, display_name, phone, role, state)
           VALUES ('agent1', '张敏', '8001', 'agent', 'ready') RETURNING id""")
    offer = await call_store.claim_next(conn, "duty")
    assert offer is not None and [leg.agent_id for leg in offer.legs] == [agent_id]


async def test_the_hotline_yaml_does_not_retire_handler_accounts(
        conn: asyncpg.Connection) -> None:
    await _import(conn, units.parse_units_yaml(SAMPLE))
    await agent_store.sync_from_config(
        conn, [Agent(login="agent1", name="张敏", phone="8001", initial_password="hotline")])
    assert await conn.fetchval(
        "SELECT count(*) FROM agents WHERE role = 'handler' AND active") == 11


async def test_a_handler_login_taken_by_a_duty_agent_is_refused(
        conn: asyncpg.Connection) -> None:
    await conn.execute("INSERT INTO agents (login, display_name, phone) VALUES "
                       "('h_water', '李强', '8002')")
    specs = units.parse_units_yaml(SAMPLE)
    with pytest.raises(units.FileProblems) as e:
        await _import(conn, specs)
    line = next(h.line for s in specs for h in s.handlers if h.login == "h_water")
    assert e.value.problems == [
        (str(SAMPLE), line, "the login 'h_water' already belongs to a agent account; "
                            "choose another")]
    assert await conn.fetchval("SELECT count(*) FROM units") == 0  # all or nothing


# -- mistakes, each with its line ----------------------------------------------------------------

BAD_YAML = """\
units:
  - code: wancheng
    name: 宛城区人民政府
    level: 1
    duty_phone: 0377-5550101
  - code: wancheng
    name: 重复的编码
    level: 1
    duty_phone: 0377-5550102
  - code: orphan
    name: 没有上级的街道
    parent: nowhere
    level: 2
    duty_phone: 0377-5550103
  - code: skip
    name: 跳级的社区
    parent: wancheng
    level: 3
    duty_phone: 0377-5550104
  - code: top
    name: 一级却有上级
    parent: wancheng
    level: 1
    duty_phone: 0377-5550105
  - code: deep
    name: 第四级
    level: 4
    duty_phone: 0377-5550106
    kind: village
  - code: nophone
    name: 电话不对
    level: 1
    duty_phone: call the office
    adress: 某路
  - code: alone
    name: 二级没有上级
    level: 2
    duty_phone: 0377-5550107
    handlers:
      - {login: bad login, name: 某人}
"""


def test_every_mistake_in_a_yaml_directory_is_reported_with_its_line() -> None:
    with pytest.raises(units.FileProblems) as e:
        units.parse_units_yaml(BAD_YAML, "units.yaml")
    got = [(line, msg) for f, line, msg in e.value.problems]
    assert all(f == "units.yaml" for f, _, _ in e.value.problems)
    assert got == [
        (6, "the unit code 'wancheng' is already used on line 2"),
        (12, "the parent 'nowhere' of unit orphan is not in the file"),
        (17, "unit skip is at level 3, so its parent must be at level 2, but wancheng is "
             "at level 1"),
        (22, "unit top is at level 1 and so cannot have a parent ('wancheng')"),
        (27, "the level of unit deep must be 1, 2 or 3, not '4'"),
        (29, "the kind of unit deep must be one of government, department, utility, "
             "township, community, enterprise, station, not 'village'"),
        (33, "the duty phone of unit nophone, 'call the office', does not look like a phone "
             "number (e.g. 0377-63160000)"),
        (34, "unknown key 'adress' in a unit (known: code, contact_person, contact_phone, "
             "department, duty_phone, handlers, kind, leader, level, name, parent)"),
        (35, "unit alone is at level 2 and needs a parent unit"),
        (40, "the handler login 'bad login' may use only letters, digits, . _ - (at most 32)"),
    ]
    assert str(e.value).splitlines()[0] == \
        "units.yaml:6: the unit code 'wancheng' is already used on line 2"


def test_a_phone_written_without_quotes_stays_as_written() -> None:
    # YAML would read 03775550101 as an octal-looking number; the directory keeps the text.
    specs = units.parse_units_yaml(
        "units:\n  - {code: '0001', name: 某局, level: 1, duty_phone: 03775550101}\n", "u.yaml")
    assert (specs[0].code, specs[0].duty_phone) == ("0001", "03775550101")


@pytest.mark.parametrize("phone", ["0377-63160000", "0377-5550101", "037763160000", "95598",
                                   "12345", "13800138000", "0377-5550101-801", "0377 5550101"])
def test_phone_numbers_units_publish_are_accepted(phone: str) -> None:
    assert units.PHONE.match(phone)


@pytest.mark.parametrize("phone", ["office", "0377-", "12", "0377--5550101", "+86 377 555", "0377"])
def test_things_that_are_not_phone_numbers_are_refused(phone: str) -> None:
    assert not units.PHONE.match(phone)


BAD_CSV = """\
code,name,parent_code,level,kind,duty_phone,leader,department,contact_person,contact_phone
wancheng,宛城区人民政府,,1,government,0377-5550101,,,,
xinhua,"新华街道
办事处",wancheng,2,township,0377-5550111,,,,
xinhua,重复,wancheng,2,township,0377-5550112,,,,

jiefang,解放路社区,nowhere,3,community,0377-5550113,,,,
x,,wancheng,two,township,0377,,,,not a phone
"""


def test_every_mistake_in_a_csv_directory_is_reported_with_its_line() -> None:
    with pytest.raises(units.FileProblems) as e:
        units.parse_units_csv(BAD_CSV, "units.csv")
    assert [(line, msg) for _, line, msg in e.value.problems] == [
        (5, "the unit code 'xinhua' is already used on line 3"),
        (7, "the parent 'nowhere' of unit jiefang is not in the file"),
        (8, "unit x has no name"),
        (8, "the level of unit x must be 1, 2 or 3, not 'two'"),
        (8, "the duty phone of unit x, '0377', does not look like a phone number "
            "(e.g. 0377-63160000)"),
        (8, "the contact phone of unit x, 'not a phone', does not look like a phone number"),
    ]


def test_a_csv_with_wrong_columns_names_them() -> None:
    with pytest.raises(units.FileProblems) as e:
        units.parse_units_csv("code,name,level,phone\nx,某局,1,0377-5550101\n", "u.csv")
    assert str(e.value).splitlines() == [
        "u.csv:1: unknown column 'phone' (known: code, name, parent_code, level, kind, "
        "duty_phone, leader, department, contact_person, contact_phone)",
        "u.csv:1: the column 'duty_phone' is missing from the header"]


def test_a_handlers_csv_names_units_of_the_units_csv() -> None:
    specs = units.parse_units_csv(SAMPLE_CSV)
    with pytest.raises(units.FileProblems) as e:
        units.parse_handlers_csv(
            "unit_code,login,name,initial_password\nwancheng,h1,某人,pw\nnowhere,h2,某人,\n"
            "water,h1,某人,\n", specs, "h.csv")
    assert str(e.value).splitlines() == [
        "h.csv:3: the unit 'nowhere' of handler h2 is not in the units file",
        "h.csv:4: the handler login 'h1' is already used on line 2"]


def test_a_spreadsheet_saved_in_gbk_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "units.csv"
    path.write_bytes(SAMPLE_CSV.read_text(encoding="utf-8").encode("gbk"))
    with pytest.raises(units.FileProblems, match=r"units.csv:0: the file is not UTF-8 text"):
        units.parse_file(path)


# -- the admin's edits ---------------------------------------------------------------------------


async def test_the_admin_edits_a_unit(conn: asyncpg.Connection) -> None:
    await _import(conn, units.parse_units_yaml(SAMPLE))
    unit = await units.by_code(conn, "water")
    assert unit is not None
    later = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
    edited = await units.update(conn, unit.id, {"duty_phone": "0377-5551199 ",
                                                "leader": "新任副经理"}, None, later)
    assert (edited.duty_phone, edited.leader, edited.updated_at) == \
        ("0377-5551199", "新任副经理", later)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"duty_phone": "找办公室"}, "值班电话格式不对"),
        ({"name": " "}, "单位名称不能为空"),
        ({"kind": "village"}, "单位类型只能是"),
        ({"level": 2}, "不能修改的字段：level"),
        ({"active": False}, "还有启用的下级单位"),
    ]
    for changes, message in cases:
        with pytest.raises(units.UnitError, match=message):
            await units.update(conn, unit.id, changes, None, later)
    assert (await units.get(conn, unit.id)) == edited


async def test_moving_a_unit_keeps_its_level(conn: asyncpg.Connection) -> None:
    await _import(conn, units.parse_units_yaml(SAMPLE))
    xinhua = await units.by_code(conn, "wancheng-xinhua")
    wolong = await units.by_code(conn, "wolong")
    community = await units.by_code(conn, "wolong-wolonggang-wuhou")
    assert xinhua and wolong and community
    moved = await units.update(conn, xinhua.id, {"parent_id": wolong.id}, None, NOW)
    assert moved.parent_id == wolong.id
    with pytest.raises(units.UnitError, match="3 级单位的上级必须是 2 级单位"):
        await units.update(conn, community.id, {"parent_id": wolong.id}, None, NOW)


async def test_deactivating_a_unit_ends_its_handlers_sessions(conn: asyncpg.Connection) -> None:
    await _import(conn, units.parse_units_yaml(SAMPLE))
    unit = await units.by_code(conn, "scjg")
    handler = await agent_store.by_login(conn, "h_scjg")
    assert unit and handler
    token, _ = await session_store.create(conn, handler["id"])
    assert await session_store.lookup(conn, token) is not None
    await units.update(conn, unit.id, {"active": False}, None, NOW)
    assert await session_store.lookup(conn, token) is None
    assert await agent_store.by_login(conn, "h_scjg") is None
    assert await units.handlers_of(conn, unit.id) == []


async def test_hotline_run_loads_the_directory_beside_the_yaml(
        conn: asyncpg.Connection, tmp_path: Path) -> None:
    assert await units.load_if_present(conn, tmp_path / "units.yaml", NOW) == []
    bad = tmp_path / "units.yaml"
    bad.write_text(BAD_YAML, encoding="utf-8")
    problems = await units.load_if_present(conn, bad, NOW)
    assert problems[0] == f"{bad}:6: the unit code 'wancheng' is already used on line 2"
    assert await conn.fetchval("SELECT count(*) FROM units") == 0
    assert await units.load_if_present(conn, SAMPLE, NOW) == []
    assert await conn.fetchval("SELECT count(*) FROM units WHERE active") == 23
