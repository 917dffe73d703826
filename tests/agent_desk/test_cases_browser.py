"""The case workflow's pages in a real browser (Debian's chromium, headless) on the real
stack: a call registered at intake, assigned to a linkage unit from config/units.yaml,
handled by the unit's handler in a second browser, approved and revisited by the hotline;
and a handler of another unit who sees nothing of it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from selenium.common.exceptions import (
    ElementClickInterceptedException,
    StaleElementReferenceException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

from db import cases as case_store
from tests.agent_desk.test_desk_browser import _chromium, _log_in, _text, until
from tests.conftest import VAR, DeskClient, Stack, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean")]
ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "config" / "units.yaml"


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    yield from _chromium()


@pytest.fixture
def browser2() -> Iterator[WebDriver]:
    """A second browser with its own session: the unit's handler."""
    yield from _chromium()


def _handled_units() -> list[dict[str, Any]]:
    """The units of the shipped directory that have a handler account, the power company
    first (its handler answers the test's power cut)."""
    units = [u for u in yaml.safe_load(UNITS.read_text(encoding="utf-8"))["units"]
             if u.get("handlers")]
    return sorted(units, key=lambda u: "供电" not in u["name"])


@pytest.fixture
async def units(stack: Stack, db: asyncpg.Connection) -> list[dict[str, Any]]:
    """The shipped directory, imported with the operator's command (the test stack reads
    its YAML from var/, so `hotline run` did not); each unit with its id and handler."""
    stack.cli("units", "import", str(UNITS))
    out = []
    for u in _handled_units():
        unit_id = await db.fetchval("SELECT id FROM units WHERE code = $1 AND active", u["code"])
        assert unit_id, f"unit {u['code']} was not imported"
        h = u["handlers"][0]
        assert await db.fetchval("SELECT unit_id FROM agents WHERE login = $1", h["login"]) \
            == unit_id
        out.append({**u, "id": unit_id, "login": h["login"],
                    "password": h.get("initial_password", "hotline")})
    assert len(out) >= 2
    return out


async def _log_in_cases(browser: WebDriver, stack: Stack, login: str, password: str,
                        fragment: str = "") -> None:
    browser.get(f"{stack.desk_url}/cases{fragment}")
    await until(lambda: browser.find_element(By.ID, "login-form").is_displayed(),
                "the login form of the cases page")
    browser.find_element(By.ID, "login").send_keys(login)
    browser.find_element(By.ID, "password").send_keys(password)
    _press(browser, browser.find_element(By.ID, "login-submit"))
    body = browser.find_element(By.TAG_NAME, "body")
    await until(lambda: body.get_attribute("data-ws-state") == "open", f"{login}'s live connection")


def _press(browser: WebDriver, element: WebElement) -> None:
    """Click like a person who first scrolls the thing to the middle of the screen."""
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


async def _click(browser: WebDriver, css: str, what: str) -> None:
    """Click an element that pushes may re-render at any moment (found afresh each try)."""
    def attempt() -> bool:
        try:
            found = browser.find_elements(By.CSS_SELECTOR, css)
            if not found or not found[0].is_enabled() or not found[0].is_displayed():
                return False
            _press(browser, found[0])
            return True
        except (StaleElementReferenceException, ElementClickInterceptedException):
            return False
    await until(attempt, what, timeout=10)


def _row(case_id: int) -> str:
    return f"#case-list .case-row[data-case-id='{case_id}']"


async def _open(browser: WebDriver, list_name: str, case_id: int) -> None:
    """Pick a work list, then the case in it, and wait for its detail."""
    await _click(browser, f".list-btn[data-list='{list_name}']", f"the list {list_name}")
    await _click(browser, _row(case_id), f"case {case_id} in {list_name}")
    await until(lambda: _text(browser, "#d-case-no"), "the case detail")


async def _flash(browser: WebDriver, words: str) -> None:
    await until(lambda: words in _text(browser, "#detail-flash"), f"the message {words}")


async def _status(db: asyncpg.Connection, case_id: int) -> str:
    return str(await db.fetchval("SELECT status FROM cases WHERE id = $1", case_id))


async def test_a_call_registered_assigned_handled_and_closed(
    stack: Stack, db: asyncpg.Connection, browser: WebDriver, browser2: WebDriver,
    units: list[dict[str, Any]],
) -> None:
    unit = units[0]
    keyring = stack.keyring()
    caller = "13800138031"
    # The caller rang before: their earlier case is offered for merging at intake.
    earlier = await case_store.create(db, keyring, call_id=None, dialled_number="12345",
                                      service="hotline", caller_number=caller)
    await db.execute("UPDATE cases SET status = 'pending', title = '上次反映的停电问题' "
                     "WHERE id = $1", earlier["id"])
    await db.execute("INSERT INTO knowledge (question, answer, keywords) VALUES "
                     "('计划停电在哪里查询', '可在国网南阳供电公司微信公众号查询计划停电信息。', "
                     "'停电 供电')")

    # A real call: agent1 answers it and the case pops up.
    stack.call("12345", caller)
    await wait_until(db, "SELECT count(*) FROM calls WHERE state = 'waiting'")
    await _log_in(browser, stack, "agent1")
    body = browser.find_element(By.TAG_NAME, "body")
    _press(browser, browser.find_element(By.ID, "btn-ready"))
    await until(lambda: body.get_attribute("data-agent-state") == "on_call", "on call", 40)
    await until(lambda: caller in _text(browser, "#case-caller"), "the case of the call")
    case_id = await db.fetchval("SELECT case_id FROM calls WHERE agent_id = (SELECT id FROM "
                                "agents WHERE login = 'agent1') AND state = 'connected'")
    case_no = await db.fetchval("SELECT case_no FROM cases WHERE id = $1", case_id)

    # Intake: the earlier case, the knowledge base, the checklist, the category tree.
    await until(lambda: earlier["case_no"] in _text(browser, "#earlier-list"), "earlier case")
    assert "并入此工单" in _text(browser, "#earlier-list")
    browser.find_element(By.ID, "kb-q").send_keys("停电")
    _press(browser, browser.find_element(By.ID, "kb-search"))
    await until(lambda: "计划停电在哪里查询" in _text(browser, "#kb-results"), "knowledge hit")
    await _click(browser, "#kb-results .btn", "采用此答复")
    assert "95598" in str(browser.find_element(By.ID, "intake-answer").get_attribute("value"))

    browser.find_element(By.ID, "case-name").send_keys("赵先生")
    browser.find_element(By.ID, "case-content").send_keys("建设路一带停电两天，至今未恢复。")
    category = Select(browser.find_element(By.ID, "case-category"))
    power = next(o for o in category.options if o.get_attribute("value") == "0402")
    assert power.text.strip().endswith("供电") and "└" in power.text  # under 公共服务
    category.select_by_value("0402")
    browser.find_element(By.ID, "intake-title").send_keys("建设路停电两天未恢复")
    # One criterion missing: refused in words, in place.
    boxes = browser.find_elements(By.CSS_SELECTOR, "#intake-validity input[type=checkbox]")
    assert len(boxes) == 5
    for box in boxes[:4]:
        _press(browser, box)
    _press(browser, browser.find_element(By.ID, "btn-register"))
    await until(lambda: "不符合受理条件" in _text(browser, "#intake-error"), "the refusal")
    assert await _status(db, case_id) == "intake"
    _press(browser, boxes[4])
    _press(browser, browser.find_element(By.ID, "btn-register"))
    await until(lambda: re.fullmatch(r"\d{6}", _text(browser, "#done-code")), "the 查询码")
    assert _text(browser, "#done-case-no") == case_no
    assert "查询码" in _text(browser, "#intake-done")
    browser.save_screenshot(str(VAR / "cases-intake.png"))
    row = await db.fetchrow("SELECT status, title, category, validity FROM cases WHERE id = $1",
                            case_id)
    assert (row["status"], row["title"], row["category"]) == ("pending", "建设路停电两天未恢复",
                                                              "0402")
    saved = await case_store.get(db, keyring, case_id)
    assert saved is not None and saved["content"] == "建设路一带停电两天，至今未恢复。"

    # The call ends; agent1 goes to the case pages and assigns it to the power company.
    call = await db.fetchrow("SELECT agent_channel_id FROM calls WHERE case_id = $1", case_id)
    async with stack.ari() as ari:
        await ari.channel(call["agent_channel_id"]).hangup()
    await _click(browser, "#link-cases", "工单处理")
    await until(lambda: _text(browser, "#user-name") == "张敏", "the cases page")
    await _open(browser, "pending", case_id)
    assert _text(browser, "#d-status") == "待交办"
    assert "138****8031" in _text(browser, "#d-personal") and caller not in _text(browser, "body")
    Select(browser.find_element(By.ID, "assign-lead")).select_by_value(str(unit["id"]))
    Select(browser.find_element(By.ID, "assign-mode")).select_by_value("phone")
    browser.find_element(By.ID, "assign-note").send_keys("请尽快核实恢复供电")
    _press(browser, browser.find_element(By.ID, "assign-submit"))
    await _flash(browser, "已交办")
    await until(lambda: _text(browser, "#d-status") == "已交办", "已交办")
    assert unit["name"] in _text(browser, "#d-assignments")
    assert await _status(db, case_id) == "assigned"
    assert [tuple(r) for r in await db.fetch(
        "SELECT unit_id, role, mode FROM assignments WHERE case_id = $1", case_id)] == [
        (unit["id"], "lead", "phone")]
    browser.save_screenshot(str(VAR / "cases-assigned.png"))
    form_url = str(browser.find_element(By.ID, "d-print").get_attribute("href"))
    assert form_url.endswith(f"/api/casework/cases/{case_id}/form")

    # The unit's handler, in a second browser: their unit's list, reveal, sign, report.
    await _log_in_cases(browser2, stack, unit["login"], unit["password"])
    assert _text(browser2, "#lists").startswith("本单位工单")
    await _open(browser2, "all", case_id)
    assert _text(browser2, "#d-status") == "已交办"
    assert "待签收" in _text(browser2, "#d-assignments")
    await _click(browser2, "#d-personal .p-row[data-field='caller_number'] .btn-reveal", "查看")
    reason = browser2.find_element(By.CSS_SELECTOR, "#d-personal .reveal-reason")
    reason.send_keys("电话答复来电人")
    reason.submit()
    await until(lambda: caller in _text(browser2, "#d-personal"), "the full number")
    await _click(browser2, ".btn-accept", "签收")
    await _flash(browser2, "已签收")
    await until(lambda: _text(browser2, "#d-status") == "办理中", "办理中")
    assert await _status(db, case_id) == "accepted"
    browser2.find_element(By.ID, "result-text").send_keys("已抢修更换故障变压器，供电恢复。")
    browser2.find_element(By.ID, "result-reply").send_keys("已电话告知来电人")
    browser2.save_screenshot(str(VAR / "cases-handler.png"))
    await _click(browser2, "[data-action='result'] .btn-primary", "提交办理结果")
    await _flash(browser2, "已反馈办理结果")
    await until(lambda: _text(browser2, "#d-status") == "已反馈待审核", "已反馈待审核")
    assert await _status(db, case_id) == "reported"

    # agent1's page heard of it (pushed): the case waits in 待审核. Approve, revisit.
    await until(lambda: _text(browser, ".list-btn[data-list='to_review'] .count") not in
                ("", "0", "…"), "待审核 counted after the push")
    await until(lambda: _text(browser, "#d-status") == "已反馈待审核", "the open case refreshed")
    await _open(browser, "to_review", case_id)
    # Opening the case that is already open re-renders its detail: read it once settled.
    await until(lambda: "已抢修更换故障变压器" in _text(browser, "#d-assignments"),
                "the unit's result in the detail")
    browser.find_element(By.ID, "review-summary").send_keys("供电公司已更换故障变压器，恢复供电。")
    await _click(browser, "[data-action='review'] .btn-primary", "审核通过")
    await _flash(browser, "审核通过")
    await until(lambda: _text(browser, "#d-status") == "待回访", "待回访")
    await _click(browser, "#revisit-outcome input[value='satisfied']", "满意")
    await _click(browser, "[data-action='revisit'] .btn-primary", "记录回访")
    await _flash(browser, "已办结")
    await until(lambda: _text(browser, "#d-status") == "已办结", "已办结")
    trail = _text(browser, "#d-trail")
    steps = ["登记受理", "交办", "查看来电人信息", "签收", "反馈办理结果", "审核通过", "回访"]
    positions = [trail.find(s) for s in steps]
    assert -1 not in positions and positions == sorted(positions), trail
    assert "张敏" in trail and unit["handlers"][0]["name"] in trail
    assert "满意" in _text(browser, "#d-revisits")
    browser.execute_script("document.getElementById('d-trail').scrollIntoView()")
    browser.save_screenshot(str(VAR / "cases-closed.png"))

    row = await db.fetchrow("SELECT status, satisfaction, public_summary FROM cases "
                            "WHERE id = $1", case_id)
    assert tuple(row) == ("closed", "satisfied", "供电公司已更换故障变压器，恢复供电。")
    assert [r["action"] for r in await db.fetch(
        "SELECT action FROM case_events WHERE case_id = $1 ORDER BY id", case_id)] == [
        "registered", "assigned", "personal_revealed", "accepted", "result_reported",
        "result_approved", "revisited"]
    assert await db.fetchval("SELECT outcome FROM revisits WHERE case_id = $1",
                             case_id) == "satisfied"

    # The printable 受理交办单: the unit and the case, the caller's number masked.
    browser.get(form_url)
    page = _text(browser, "body")
    assert "受理交办单" in page and unit["name"] in page and case_no in page
    assert caller not in page
    browser.save_screenshot(str(VAR / "cases-form.png"))


async def test_a_handler_of_another_unit_sees_nothing(
    stack: Stack, db: asyncpg.Connection, browser: WebDriver, units: list[dict[str, Any]],
    desk: Any,
) -> None:
    mine, other = units[0], units[1]
    case = await case_store.create(db, stack.keyring(), call_id=None, dialled_number="12345",
                                   service="hotline", caller_number="13800138032")
    agent: DeskClient = await desk("agent1")
    base = f"/api/casework/cases/{case['id']}"
    status, answer = await agent.request("POST", base + "/register", json={
        "title": "小区停电", "category": "0402",
        "validity": {k: True for k in ("clear_target", "objective", "concise",
                                       "real_identity", "truthful")}})
    assert status == 200, answer
    status, answer = await agent.request("POST", base + "/assign",
                                         json={"lead_unit": mine["id"], "mode": "written"})
    assert status == 200, answer

    # The other unit's handler: the case is in none of their lists (which hold only what
    # earlier tests or runs gave that unit), and its address answers 404 in words.
    handler = DeskClient(stack.desk_url)
    try:
        await handler.login(other["login"], other["password"])
        status, answer = await handler.request("GET", base)
        assert (status, answer) == (404, {"error": "工单不存在"})
        status, listed = await handler.request("GET", "/api/casework/lists/all?limit=500")
        assert status == 200, listed
    finally:
        await handler.close()
    theirs = {c["id"] for c in listed["cases"]}
    assert case["id"] not in theirs
    await _log_in_cases(browser, stack, other["login"], other["password"],
                        f"#case-{case['id']}")
    await until(lambda: "工单不存在" in _text(browser, "#detail-error"), "the plain 404")
    await until(lambda: _text(browser, ".list-btn[data-list='all'] .count") == str(len(theirs)),
                f"their count, {len(theirs)}")
    if not theirs:
        assert _text(browser, "#list-empty") == "没有工单"
    assert not browser.find_elements(By.CSS_SELECTOR, _row(case["id"]))
    assert "小区停电" not in _text(browser, "body")
    browser.save_screenshot(str(VAR / "cases-other-unit.png"))


async def test_supervisor_urges_decides_an_extension_reports_and_alerts(
    stack: Stack, db: asyncpg.Connection, browser: WebDriver, units: list[dict[str, Any]],
    desk: Any,
) -> None:
    unit = units[0]
    case = await case_store.create(db, stack.keyring(), call_id=None, dialled_number="12345",
                                   service="hotline", caller_number="13800138033")
    agent: DeskClient = await desk("agent1")
    base = f"/api/casework/cases/{case['id']}"
    status, answer = await agent.request("POST", base + "/register", json={
        "title": "河堤塌陷威胁居民安全", "category": "0406",
        "validity": {k: True for k in ("clear_target", "objective", "concise",
                                       "real_identity", "truthful")}})
    assert status == 200, answer
    status, answer = await agent.request("POST", base + "/assign",
                                         json={"lead_unit": unit["id"], "mode": "written"})
    assert status == 200, answer
    # The unit asks for more time (through the API: the browser part is the hotline's).
    handler = DeskClient(stack.desk_url)
    try:
        await handler.login(unit["login"], unit["password"])
        status, detail = await handler.request("GET", base)
        (assignment,) = detail["case"]["assignments"]
        status, answer = await handler.request(
            "POST", f"/api/casework/assignments/{assignment['id']}/extension",
            json={"reason": "需协调水利部门联合勘察", "days": 3})
        assert status == 200, answer
    finally:
        await handler.close()

    await _log_in_cases(browser, stack, "lead1", "hotline", f"#case-{case['id']}")
    await until(lambda: _text(browser, "#d-case-no"), "the case from its address")
    assert _text(browser, "#user-role") == "值班长"
    # The extension: approved, the deadline moves.
    assert "需协调水利部门联合勘察" in _text(browser, "[data-action='decide-extension']")
    await _click(browser, "[data-action='decide-extension'] .btn-primary", "同意延期")
    await _flash(browser, "已同意延期")
    await until(lambda: "已同意" in _text(browser, "#d-extensions"), "approved")
    assert await db.fetchval("SELECT status FROM extensions WHERE case_id = $1",
                             case["id"]) == "approved"
    # Urging (a collapsed card: opened by its summary, like a person would).
    await _click(browser, "[data-action='urge'] summary", "催办")
    await _click(browser, "[data-action='urge'] .btn", "催办 button")
    await _flash(browser, "已催办（共 1 次）")
    await until(lambda: "催办 1 次" in _text(browser, ".d-badges"), "the urging badge")
    # A special report to the supervision office: drafted from the case, then sent.
    await _click(browser, "[data-action='report'] summary", "专报")
    await _click(browser, "[data-action='report'] .btn", "起草专报")
    await _flash(browser, "专报草稿已生成")
    await until(lambda: "草稿" in _text(browser, "#d-reports"), "the draft")
    assert "河堤塌陷威胁居民安全" in _text(browser, "#d-reports")
    await _click(browser, "#d-reports .btn-primary", "报送")
    await _flash(browser, "专报已报送市政府督查室")
    await until(lambda: "已报送" in _text(browser, "#d-reports"), "sent")
    # A major emergency: confirmed first, then every duty desk is alerted.
    await _click(browser, "[data-action='alert'] summary", "重大突发事件上报")
    await _click(browser, "[data-action='alert'] .btn-danger", "上报应急办")
    assert "确认作为重大突发事件" in _text(browser, "[data-action='alert'] .confirm-box")
    assert not await db.fetchval("SELECT major FROM cases WHERE id = $1", case["id"])
    await _click(browser, "[data-action='alert'] .confirm-box .btn-danger", "确认上报")
    await until(lambda: "重大突发事件即时报告" in _text(browser, "#alert-banner"), "the alert")
    await agent.expect("alert", title="重大突发事件即时报告")
    assert await db.fetchval("SELECT major FROM cases WHERE id = $1", case["id"])
    await until(lambda: "重大突发" in _text(browser, ".d-badges"), "the major badge")
    trail = _text(browser, "#d-trail")
    for words in ("申请延期", "同意延期", "催办", "起草专报", "报送专报"):
        assert words in trail
    browser.save_screenshot(str(VAR / "cases-supervisor.png"))
