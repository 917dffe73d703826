"""The admin's pages in a real browser (Debian's chromium, headless) on the real stack: the
admin adds a sub-category, edits a linkage unit's duty phone, sees a bad directory file's
mistakes by line, adds a knowledge entry and finds it, and enters next year's holiday
notice; each change checked on the page and in the database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from casework import calendar
from tests.agent_desk.test_desk_browser import _chromium, _text, until
from tests.conftest import VAR, Stack

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean")]
ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "config" / "units.yaml"
QUESTION = "路灯不亮找谁？"
# Invented dates in the format of config/calendar/2027.example.yaml (not the real notice).
NOTICE = """year: 2027
notice: 测试用通知（非官方）
holidays:
  - {name: 元旦, from: 2027-01-01, to: 2027-01-03}
  - {name: 春节, from: 2027-02-06, to: 2027-02-13}
working_days:
  - {date: 2027-02-14, name: 春节调休}
"""
BAD_UNITS = """units:
  - code: city
    name: 市政府
    level: 1
    duty_phone: 0377-1234567
  - code: town
    name: 某街道
    parent: nowhere
    level: 2
    duty_phone: 0377-1234568
"""


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    yield from _chromium()


def _shot(browser: WebDriver, name: str) -> None:
    browser.save_screenshot(str(VAR / f"admin-{name}.png"))


def _press(browser: WebDriver, css: str) -> None:
    element = browser.find_element(By.CSS_SELECTOR, css)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def _fill(browser: WebDriver, element_id: str, text: str) -> None:
    box = browser.find_element(By.ID, element_id)
    box.clear()
    box.send_keys(text)


async def _fresh(stack: Stack, db: asyncpg.Connection) -> None:
    """What an earlier run of this test left: gone; the shipped directory imported."""
    stack.cli("units", "import", str(UNITS))
    await db.execute("DELETE FROM knowledge WHERE question = $1 OR category LIKE '0408%'",
                     QUESTION)
    await db.execute("DELETE FROM categories WHERE code LIKE '0408_%'")
    await db.execute("DELETE FROM categories WHERE code = '0408'")
    await db.execute("DELETE FROM calendar_days WHERE source = 'admin' "
                     "AND day BETWEEN '2027-01-01' AND '2027-12-31'")


async def test_the_admin_configures_the_hotline_in_the_browser(
        stack: Stack, db: asyncpg.Connection, browser: WebDriver) -> None:
    await _fresh(stack, db)
    admin_id = await db.fetchval("SELECT id FROM agents WHERE login = 'admin'")
    assert await db.fetchval("SELECT role FROM agents WHERE id = $1", admin_id) == "admin"

    browser.get(stack.desk_url + "/admin")
    await until(lambda: browser.find_element(By.ID, "login-form").is_displayed(), "login form")
    browser.find_element(By.ID, "login").send_keys("admin")
    browser.find_element(By.ID, "password").send_keys("hotline", Keys.ENTER)
    body = browser.find_element(By.TAG_NAME, "body")
    await until(lambda: body.get_attribute("data-view") == "admin", "the admin's pages")
    assert browser.find_element(By.ID, "user-role").text == "系统管理员"

    # -- 事项分类: a sub-category under 04, the code suggested after its siblings.
    await until(lambda: browser.find_elements(By.CSS_SELECTOR, "#cat-tree li[data-code='0407']"),
                "the category tree")
    _press(browser, "#cat-tree li[data-code='04'] > .tree-row .row-actions button")
    await until(lambda: browser.find_element(By.ID, "cat-form").is_displayed(), "the form")
    assert browser.find_element(By.ID, "cat-code").get_attribute("value") == "0408"
    # The name field has the focus: type and press Enter, as a keyboard user would.
    browser.switch_to.active_element.send_keys("城市照明", Keys.ENTER)
    new_row = "#cat-tree li[data-code='04'] li[data-code='0408'] .tree-name"
    await until(lambda: _text(browser, new_row) == "城市照明", "the new category in the tree")
    row = await db.fetchrow("SELECT parent, name, active FROM categories WHERE code = '0408'")
    assert tuple(row) == ("04", "城市照明", True)
    _shot(browser, "categories")

    # -- 联动单位: the duty phone of 宛城区人民政府, by keyboard from the tab list.
    tab = browser.find_element(By.ID, "tab-categories")
    tab.send_keys(Keys.ARROW_RIGHT)
    assert browser.switch_to.active_element.get_attribute("id") == "tab-units"
    unit_row = "#unit-tree li[data-code='wancheng'] > .tree-row"
    await until(lambda: _text(browser, unit_row), "the units tree")
    assert "0377-5550101" in _text(browser, unit_row)
    assert _text(browser, "#unit-tree li[data-code='wancheng-xinhua-jiefang'] .tree-name") == \
        "新华街道解放路社区居民委员会"  # level 3, under its level-2 parent
    _press(browser, unit_row + " .row-actions button")
    await until(lambda: browser.find_element(By.ID, "unit-form").is_displayed(), "the unit form")
    assert "h_wancheng" in _text(browser, "#unit-handlers")
    _fill(browser, "unit-duty-phone", "0377-5559999")
    _press(browser, "#unit-save")
    await until(lambda: "已保存" in _text(browser, "#unit-form-ok"), "saved")
    await until(lambda: "0377-5559999" in _text(browser, unit_row), "the new phone in the tree")
    assert await db.fetchval("SELECT duty_phone FROM units WHERE code = 'wancheng'") == \
        "0377-5559999"
    # A bad file pasted: its mistake listed with the line, nothing imported.
    units_before = await db.fetchval("SELECT count(*) FILTER (WHERE active) FROM units")
    _fill(browser, "import-text", BAD_UNITS)
    _press(browser, "#import-submit")
    await until(lambda: browser.find_element(By.ID, "import-confirm").is_displayed(), "confirm")
    _press(browser, "#import-confirm-yes")
    await until(lambda: _text(browser, "#import-problems"), "the file's mistakes")
    problems = _text(browser, "#import-problems")
    assert "上传的文件 第 8 行" in problems and "nowhere" in problems
    assert "未导入" in _text(browser, "#import-error")
    assert await db.fetchval("SELECT count(*) FILTER (WHERE active) FROM units") == units_before
    _shot(browser, "units")

    # -- 知识库: a new entry under the new category, found by search.
    _press(browser, "#tab-knowledge")
    _press(browser, "#kb-new")
    await until(lambda: browser.find_element(By.ID, "kb-form").is_displayed(), "the entry form")
    _fill(browser, "kb-question", QUESTION)
    _fill(browser, "kb-answer", "城区路灯由市城市管理局路灯所维护，报修电话 0377-5550000。")
    _fill(browser, "kb-keywords", "路灯 照明 不亮")
    await until(lambda: browser.find_elements(By.CSS_SELECTOR, "#kb-category option[value='0408']"),
                "the new category in the list")
    Select(browser.find_element(By.ID, "kb-category")).select_by_value("0408")
    _press(browser, "#kb-save")
    await until(lambda: not browser.find_element(By.ID, "kb-form").is_displayed(), "saved")
    entry = await db.fetchrow("SELECT id, category, updated_by, active FROM knowledge "
                              "WHERE question = $1", QUESTION)
    assert (entry["category"], entry["updated_by"], entry["active"]) == ("0408", admin_id, True)
    _fill(browser, "kb-q", "照明")
    browser.find_element(By.ID, "kb-q").send_keys(Keys.ENTER)
    hit = f"#kb-list li[data-id='{entry['id']}']"
    await until(lambda: QUESTION in _text(browser, hit + " .kb-entry-q"), "the entry found")
    assert "城市照明" in _text(browser, hit + " .kb-entry-meta")
    assert "找到" in _text(browser, "#kb-status")
    _shot(browser, "knowledge")

    # -- 工作日历: 2027 is not covered; the notice entered; its days listed as the admin's.
    _press(browser, "#tab-calendar")
    now = datetime.now(calendar.TZ)
    if now.year + 1 == 2027 and now.month >= 11:
        await until(lambda: "2027" in _text(browser, "#cal-warning"), "the coverage warning")
    await until(lambda: _text(browser, "#cal-days"), "this year's holidays")
    _shot(browser, "calendar-before")
    _fill(browser, "cal-year", "2027")
    _press(browser, "#cal-go")
    await until(lambda: "未收录" in _text(browser, "#cal-status"), "2027 not covered")
    assert "尚未收录 2027 年" in _text(browser, "#cal-empty")
    _fill(browser, "notice-text", NOTICE)
    _press(browser, "#notice-check")
    await until(lambda: "检查通过" in _text(browser, "#notice-preview"), "the check")
    assert not await db.fetchval("SELECT count(*) FROM calendar_days "
                                 "WHERE day BETWEEN '2027-01-01' AND '2027-12-31'")
    _press(browser, "#notice-submit")
    await until(lambda: "已录入 2027 年" in _text(browser, "#notice-preview"), "entered")
    await until(lambda: "已收录" in _text(browser, "#cal-status"), "2027 covered")
    spring = "#cal-days tr[data-day='2027-02-08']"
    assert "春节" in _text(browser, spring) and "休息" in _text(browser, spring)
    assert "管理员录入" in _text(browser, spring)
    assert "调休上班" in _text(browser, "#cal-days tr[data-day='2027-02-14']")
    assert not browser.find_element(By.ID, "cal-warning").is_displayed()
    rows = await db.fetch("SELECT day, working, source, set_by FROM calendar_days "
                          "WHERE day BETWEEN '2027-01-01' AND '2027-12-31' ORDER BY day")
    assert len(rows) == 7 and {(r["source"], r["set_by"]) for r in rows} == {("admin", admin_id)}
    assert [r["day"].isoformat() for r in rows if r["working"]] == ["2027-02-14"]
    _shot(browser, "calendar")

    # The desk's header leads the admin here.
    browser.get(stack.desk_url + "/")
    await until(lambda: _text(browser, "#link-admin") == "系统管理", "the 系统管理 link")
    _press(browser, "#link-admin")
    await until(lambda: body_view(browser) == "admin", "the admin's pages again")


def body_view(browser: WebDriver) -> str:
    try:
        return str(browser.find_element(By.TAG_NAME, "body").get_attribute("data-view"))
    except (NoSuchElementException, StaleElementReferenceException):  # the page is changing
        return ""
