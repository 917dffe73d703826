"""The agent desk in a real browser (Debian's chromium, headless) on the real stack."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator

import asyncpg
import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    ElementClickInterceptedException,
    StaleElementReferenceException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from db import cases as case_store
from tests.conftest import VAR, Stack, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean")]


def _chromium(*extra_flags: str) -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail("chromium and chromium-driver are needed (`make test` installs them)")
    profile = tempfile.mkdtemp(prefix="hotline-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 "--window-size=1400,900", f"--user-data-dir={profile}", *extra_flags):
        opts.add_argument(flag)
    b = webdriver.Chrome(service=Service(executable_path=driver), options=opts)
    yield b
    b.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    yield from _chromium()


@pytest.fixture
def browser2() -> Iterator[WebDriver]:
    """A second browser (its own profile, so its own session): the supervisor's."""
    yield from _chromium()


async def until(check: Callable[[], object], what: str, timeout: float = 30) -> object:
    """Wait for a condition on the page, without blocking the event loop for long."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"the page never showed: {what}")
        await asyncio.sleep(0.2)


async def test_agent_logs_in_sees_queue_takes_call_and_saves_case(
    stack: Stack, db: asyncpg.Connection, browser: WebDriver
) -> None:
    stack.call("63160000", "13800138005", "--dtmf", "1")
    await wait_until(db, "SELECT count(*) FROM calls WHERE state = 'waiting'")
    call_id = str(await db.fetchval("SELECT id FROM calls WHERE state = 'waiting'"))

    browser.get(stack.desk_url + "/")
    await until(lambda: browser.find_element(By.ID, "login-form").is_displayed(), "login form")
    browser.find_element(By.ID, "login").send_keys("agent1")
    browser.find_element(By.ID, "password").send_keys("wrong")
    browser.find_element(By.ID, "login-submit").click()
    err = browser.find_element(By.ID, "login-error")
    await until(lambda: err.is_displayed() and "错误" in err.text, "wrong password message")

    browser.find_element(By.ID, "password").clear()
    browser.find_element(By.ID, "password").send_keys("hotline")
    browser.find_element(By.ID, "login-submit").click()
    body = browser.find_element(By.TAG_NAME, "body")
    await until(lambda: body.get_attribute("data-ws-state") == "open", "live connection")
    assert browser.find_element(By.ID, "agent-name").text == "张敏"

    # The waiting call is listed with the number dialled and a masked caller.
    row_sel = f"#queue-table tr[data-call-id='{call_id}']"
    await until(lambda: browser.find_elements(By.CSS_SELECTOR, row_sel), "the waiting call")
    row_text = browser.find_element(By.CSS_SELECTOR, row_sel).text
    assert "63160000" in row_text
    assert "13800138005" not in row_text and "138****8005" in row_text

    # Ready: the call is offered, connected, and the case opens with the caller's number.
    browser.find_element(By.ID, "btn-ready").click()
    await until(lambda: body.get_attribute("data-agent-state") == "on_call", "on call")
    panel = browser.find_element(By.ID, "case-panel")
    await until(panel.is_displayed, "case panel")
    await until(lambda: "13800138005" in browser.find_element(By.ID, "case-caller").text,
                "caller number on the case")
    assert not browser.find_elements(By.CSS_SELECTOR, row_sel)  # left the queue

    browser.find_element(By.ID, "case-name").send_keys("赵先生")
    browser.find_element(By.ID, "case-address").send_keys("卧龙区建设路12号")
    Select(browser.find_element(By.ID, "case-category")).select_by_value("04")
    browser.find_element(By.ID, "case-content").send_keys("小区电压低，电器无法使用。")
    browser.find_element(By.ID, "case-save").click()
    status = browser.find_element(By.ID, "case-status")
    await until(lambda: "已保存" in status.text, "saved")
    browser.save_screenshot(str(VAR / "desk.png"))

    case_id = await db.fetchval("SELECT case_id FROM calls WHERE id = $1::uuid", call_id)
    case = await case_store.get(db, stack.keyring(), case_id)
    assert case is not None
    assert (case["name"], case["address"], case["category"]) == ("赵先生", "卧龙区建设路12号", "04")
    assert case["content"] == "小区电压低，电器无法使用。"


async def _log_in(browser: WebDriver, stack: Stack, login: str) -> None:
    browser.get(stack.desk_url + "/")
    await until(lambda: browser.find_element(By.ID, "login-form").is_displayed(), "login form")
    browser.find_element(By.ID, "login").send_keys(login)
    browser.find_element(By.ID, "password").send_keys("hotline")
    browser.find_element(By.ID, "login-submit").click()
    body = browser.find_element(By.TAG_NAME, "body")
    await until(lambda: body.get_attribute("data-ws-state") == "open", f"{login}'s live connection")


async def _click(browser: WebDriver, css: str, what: str) -> None:
    """Click an element that live pushes may re-render at any moment (find it afresh)."""
    def attempt() -> bool:
        try:
            found = browser.find_elements(By.CSS_SELECTOR, css)
            if not found or not found[0].is_enabled() or not found[0].is_displayed():
                return False
            found[0].click()
            return True
        except (StaleElementReferenceException, ElementClickInterceptedException):
            return False
    await until(attempt, what, timeout=10)


def _text(browser: WebDriver, css: str) -> str:
    try:
        found = browser.find_elements(By.CSS_SELECTOR, css)
        return found[0].text if found and found[0].is_displayed() else ""
    except StaleElementReferenceException:
        return ""


async def test_agent_states_pause_reasons_wrap_up_and_supervisor(
    stack: Stack, db: asyncpg.Connection, browser: WebDriver, browser2: WebDriver
) -> None:
    agent_id = await db.fetchval("SELECT id FROM agents WHERE login = 'agent1'")
    agent_row = f"#agents-table tr[data-agent-id='{agent_id}']"

    async def agent_db() -> asyncpg.Record:
        return await db.fetchrow("SELECT state, reason, after_call, state_since, wrap_up_until "
                                 "FROM agents WHERE id = $1", agent_id)

    # Logging in pauses the agent ("just logged in"); the pause reasons come from the server.
    await _log_in(browser, stack, "agent1")
    body = browser.find_element(By.TAG_NAME, "body")
    badge = browser.find_element(By.ID, "agent-state")
    await until(lambda: body.get_attribute("data-agent-state") == "paused", "paused at login")
    assert badge.text == "暂停（刚登录）"
    reasons = Select(browser.find_element(By.ID, "pause-reason"))
    await until(lambda: len(reasons.options) == 4, "the configured pause reasons")
    assert [o.text for o in reasons.options] == ["小休", "用餐", "培训", "会议"]
    reasons.select_by_value("meal")
    browser.find_element(By.ID, "btn-not-ready").click()
    await until(lambda: badge.text == "暂停（用餐）", "paused for a meal")
    assert tuple(await agent_db())[:2] == ("paused", "meal")

    # The supervisor: no 就绪 (no phone), the wallboard panel, the agents with buttons.
    await _log_in(browser2, stack, "lead1")
    assert browser2.find_element(By.TAG_NAME, "body").get_attribute("data-role") == "supervisor"
    assert not browser2.find_element(By.ID, "btn-ready").is_displayed()
    assert browser2.find_element(By.ID, "wallboard").is_displayed()
    # Without /api/wallboard (404) it says so; with it, the figures show.
    await until(lambda: browser2.find_element(By.ID, "wb-empty").is_displayed()
                or browser2.find_element(By.ID, "wb-waiting").is_displayed(), "the wallboard")
    await until(lambda: "暂停（用餐）" in _text(browser2, agent_row), "agent1 in the table")

    # The supervisor makes agent1 ready; agent1 takes a call.
    await _click(browser2, f"{agent_row} .btn-sup-ready", "supervisor's 就绪")
    await until(lambda: body.get_attribute("data-agent-state") == "ready", "made ready")
    stack.call("12345", "13800138021")
    await until(lambda: body.get_attribute("data-agent-state") == "on_call", "on call", timeout=40)

    # A pause asked for during the call waits for its end, and can be cancelled.
    reasons.select_by_value("training")
    browser.find_element(By.ID, "btn-not-ready").click()
    after = browser.find_element(By.ID, "after-call")
    await until(lambda: after.is_displayed() and "通话结束后暂停（培训）" in after.text,
                "the pending pause")
    assert (await agent_db())["after_call"] == "pause:training"
    await until(lambda: "通话结束后暂停（培训）" in _text(browser2, agent_row),
                "the pending pause on the supervisor's desk")
    browser.find_element(By.ID, "btn-cancel-pending").click()
    await until(lambda: not after.is_displayed(), "the pending pause cancelled")
    assert (await agent_db())["after_call"] is None

    # The supervisor's pause during the call is pending too; the supervisor undoes it.
    await _click(browser2, f"{agent_row} .btn-sup-pause", "supervisor's 暂停")
    await until(lambda: after.is_displayed() and "通话结束后暂停（值班长设置）" in after.text,
                "the supervisor's pending pause")
    assert (await agent_db())["after_call"] == "pause:supervisor"
    await _click(browser2, f"{agent_row} .btn-sup-ready", "supervisor's 撤销")
    await until(lambda: not after.is_displayed(), "the supervisor's pause undone")
    assert body.get_attribute("data-agent-state") == "on_call"

    # The call ends: wrap-up (3 s in the test queue) with a countdown, extended by 30 s.
    call = await db.fetchrow("SELECT id, agent_channel_id FROM calls WHERE agent_id = $1 "
                             "AND state = 'connected'", agent_id)
    async with stack.ari() as ari:
        await ari.channel(call["agent_channel_id"]).hangup()
    countdown = browser.find_element(By.ID, "wrap-up-countdown")
    await until(lambda: body.get_attribute("data-agent-state") == "wrap_up"
                and countdown.is_displayed(), "the wrap-up countdown", timeout=10)
    assert "00:00" <= countdown.text <= "00:04"
    browser.find_element(By.ID, "btn-wrap-up-extend").click()
    await until(lambda: countdown.text >= "00:25", "the extended countdown", timeout=5)
    row = await agent_db()
    assert row["state"] == "wrap_up"
    assert (row["wrap_up_until"] - row["state_since"]).total_seconds() == pytest.approx(33, abs=1)
    assert "通话已结束" in browser.find_element(By.ID, "call-banner").text
    browser.save_screenshot(str(VAR / "desk-wrap-up.png"))
    browser.find_element(By.ID, "btn-wrap-up-ready").click()
    await until(lambda: body.get_attribute("data-agent-state") == "ready", "ready after wrap-up")
    assert not browser.find_element(By.ID, "wrap-up-bar").is_displayed()

    # Now idle: the supervisor's pause (for a meeting) is immediate.
    Select(browser2.find_element(By.ID, "sup-pause-reason")).select_by_value("meeting")
    await _click(browser2, f"{agent_row} .btn-sup-pause", "supervisor's 暂停")
    await until(lambda: badge.text == "暂停（会议）", "paused by the supervisor")
    assert tuple(await agent_db())[:2] == ("paused", "meeting")
    await until(lambda: "暂停（会议）" in _text(browser2, agent_row), "on the supervisor's desk")
    browser2.save_screenshot(str(VAR / "desk-supervisor.png"))

    # The supervisor logs agent1 out (two clicks): agent1 closes the case, then is at login.
    await _click(browser2, f"{agent_row} .btn-sup-logout", "supervisor's 退出")
    await _click(browser2, f"{agent_row} .btn-sup-logout[data-armed='1']", "确认退出")
    await until(lambda: body.get_attribute("data-agent-state") == "logged_out", "logged out")
    assert browser.find_element(By.ID, "desk-view").is_displayed()  # the case is still open
    browser.find_element(By.ID, "case-close").click()
    await until(lambda: browser.find_element(By.ID, "login-form").is_displayed(), "login form")
    assert "退出登录" in browser.find_element(By.ID, "login-error").text
    assert await db.fetchval("SELECT count(*) FROM desk_sessions s JOIN agents a "
                             "ON a.id = s.agent_id WHERE a.login = 'agent1'") == 0
