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
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from db import cases as case_store
from tests.conftest import VAR, Stack, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean")]


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail("chromium and chromium-driver are needed (`make test` installs them)")
    profile = tempfile.mkdtemp(prefix="hotline-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 "--window-size=1400,900", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    b = webdriver.Chrome(service=Service(executable_path=driver), options=opts)
    yield b
    b.quit()
    shutil.rmtree(profile, ignore_errors=True)


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
