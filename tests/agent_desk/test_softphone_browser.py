"""The desk's softphone in a real browser: Chromium (fake microphone) registers as agent_web's
webrtc phone 8201 through the desk's /sip, a citizen's SIP call (SIPp as the carrier) rings
it, the agent clicks 接听, and Asterisk bridges the citizen with the browser's channel with
DTLS-SRTP flowing both ways; 静音 silences what Asterisk hears from the browser, 保持 is a
hold Asterisk sees, 挂断 in the browser ends the call in the database."""

from __future__ import annotations

import array
import asyncio
import io
import time
import wave
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from ivr.ari import Ari
from tests.agent_desk.test_desk_browser import _chromium, until
from tests.conftest import SIP_TARGET, VAR, Stack, new_id, wait_until
from tests.sip import citizen_call

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean")]

PHONE = "8201"  # agent_web's webrtc phone (tests/conftest.py)
# Keeps every RTCPeerConnection the page makes, to read the browser's side of the media
# (the page's own code has no handle on it from outside).
KEEP_PEER_CONNECTIONS = """
(() => {
  const Native = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Native(...args);
    window.__pcs.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
})();
"""
BROWSER_MEDIA = """
const done = arguments[arguments.length - 1];
const pc = window.__pcs[window.__pcs.length - 1];
if (!pc) { done(null); return; }
pc.getStats().then((report) => {
  const out = {sent: 0, received: 0, pair: null, codec: null,
               mic_enabled: pc.getSenders().map((s) => s.track && s.track.enabled)};
  const byId = {};
  report.forEach((s) => { byId[s.id] = s; });
  report.forEach((s) => {
    if (s.type === 'outbound-rtp' && s.kind === 'audio') out.sent = s.packetsSent;
    if (s.type === 'inbound-rtp' && s.kind === 'audio') {
      out.received = s.packetsReceived;
      out.codec = s.codecId && byId[s.codecId] ? byId[s.codecId].mimeType : null;
    }
    if (s.type === 'transport' && s.selectedCandidatePairId) {
      const p = byId[s.selectedCandidatePairId];
      const l = byId[p.localCandidateId], r = byId[p.remoteCandidateId];
      out.pair = `${l.address}:${l.port} -> ${r.address}:${r.port}`;
      out.dtls = s.dtlsState;
      out.srtp = s.srtpCipher;
    }
  });
  done(out);
});
"""


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    # The microphone: allowed without asking, and a generated beep.
    for b in _chromium("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                       "--autoplay-policy=no-user-gesture-required"):
        b.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                          {"source": KEEP_PEER_CONNECTIONS})
        b.set_script_timeout(10)
        yield b


def _bar(browser: WebDriver, attribute: str) -> str:
    return browser.find_element(By.ID, "softphone-bar").get_attribute(attribute) or ""


def _shown(browser: WebDriver, element_id: str) -> bool:
    return browser.find_element(By.ID, element_id).is_displayed()


async def _rtp(ari: Ari, channel: str) -> tuple[int, int]:
    """What Asterisk sent to and received from this channel: RTP packets (tx, rx)."""
    stats = await ari.request("GET", f"/channels/{channel}/rtp_statistics")
    return int(stats["txcount"]), int(stats["rxcount"])


async def _loudest_heard(ari: Ari, in_stasis: set[str], channel: str, seconds: float) -> int:
    """The loudest sample Asterisk hears from this channel over `seconds` (a snoop on what
    the channel sends, recorded by Asterisk and fetched over ARI). in_stasis: the channels
    that entered the observer's app (the snoop can record only once it is there)."""
    snoop, name = f"hotline-test-snoop-{new_id()}", f"hotline-test-{new_id()}"
    await ari.request("POST", f"/channels/{channel}/snoop",
                      params={"spy": "in", "app": ari.app, "snoopId": snoop})
    try:
        await until(lambda: snoop in in_stasis, "the snoop channel in the app", 5)
        await ari.request("POST", f"/channels/{snoop}/record",
                          params={"name": name, "format": "wav", "ifExists": "overwrite"})
        await asyncio.sleep(seconds)
        await ari.request("POST", f"/recordings/live/{name}/stop")
        async with ari.session.get(f"{ari.base}/recordings/stored/{name}/file") as r:
            assert r.status == 200, await r.text()
            data = await r.read()
        await ari.request("DELETE", f"/recordings/stored/{name}")
    finally:
        await ari.channel(snoop).hangup()
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getsampwidth(), w.getnchannels()) == (2, 1)
        samples = array.array("h", w.readframes(w.getnframes()))
    assert len(samples) > 8000 * seconds * 0.7, "the recording is shorter than asked for"
    return max((abs(s) for s in samples), default=0)


async def test_the_browser_is_the_agents_phone(
        stack: Stack, db: asyncpg.Connection, browser: WebDriver) -> None:
    started = time.monotonic()
    agent_id = await db.fetchval("SELECT id FROM agents WHERE login = 'agent_web'")
    async with stack.ari(subscribe_all=True) as ari:
        holds: list[str] = []

        async def hold_seen(event: dict[str, Any]) -> None:
            if event["channel"]["name"].startswith(f"PJSIP/{PHONE}-"):
                holds.append(event["type"])

        in_stasis: set[str] = set()

        async def stasis_start(event: dict[str, Any]) -> None:
            in_stasis.add(event["channel"]["id"])

        ari.on("ChannelHold", hold_seen)
        ari.on("ChannelUnhold", hold_seen)
        ari.on("StasisStart", stasis_start)
        watcher = asyncio.create_task(ari.run())
        await asyncio.wait_for(ari.connected.wait(), 15)

        # Log in: the page registers the browser through the desk's /sip.
        browser.get(stack.desk_url + "/")
        await until(lambda: _shown(browser, "login-form"), "login form")
        browser.find_element(By.ID, "login").send_keys("agent_web")
        browser.find_element(By.ID, "password").send_keys("hotline")
        browser.find_element(By.ID, "login-submit").click()
        await until(lambda: _bar(browser, "data-reg") == "registered", "registered", 15)
        assert "已注册" in browser.find_element(By.ID, "sp-status").text
        endpoint = await ari.request("GET", f"/endpoints/PJSIP/{PHONE}")
        assert endpoint["state"] == "online"  # Asterisk has the browser's contact

        body = browser.find_element(By.TAG_NAME, "body")
        browser.find_element(By.ID, "btn-ready").click()
        await until(lambda: body.get_attribute("data-agent-state") == "ready", "ready")

        # A citizen calls 12345 over the carrier's SIP trunk (real RTP, A-law).
        async with await citizen_call(SIP_TARGET, "12345",
                                      caller="13800138066", hold=45,
                                      log_dir=VAR / "sipp") as calls:
            await until(lambda: _bar(browser, "data-call") == "ringing", "来电振铃", 30)
            assert "来电" in browser.find_element(By.ID, "sp-status").text
            assert _shown(browser, "sp-answer") and _shown(browser, "sp-hangup")
            call = await db.fetchrow("SELECT id, channel_id FROM calls WHERE state = 'offered'"
                                     " ORDER BY arrived_at DESC LIMIT 1")
            assert call is not None
            leg = await db.fetchval("SELECT channel_id FROM call_offers WHERE call_id = $1 "
                                    "AND agent_id = $2", call["id"], agent_id)
            # No auto-answer: the browser's leg rings until the agent clicks.
            await asyncio.sleep(1.5)
            channel = await ari.request("GET", f"/channels/{leg}")
            assert channel["name"].startswith(f"PJSIP/{PHONE}-")
            assert channel["state"] == "Ringing"

            browser.find_element(By.ID, "sp-answer").click()
            await until(lambda: _bar(browser, "data-call") == "connected", "通话中", 10)
            await wait_until(db, "SELECT state = 'connected' FROM calls WHERE id = $1",
                             call["id"], timeout=10)
            assert await db.fetchval("SELECT agent_channel_id FROM calls WHERE id = $1",
                                     call["id"]) == leg
            bridges = [b for b in await ari.bridges() if b["bridge_type"] == "mixing"
                       and set(b["channels"]) == {call["channel_id"], leg}]
            assert len(bridges) == 1, await ari.bridges()
            assert _shown(browser, "sp-mute") and _shown(browser, "sp-hold")
            assert not _shown(browser, "sp-answer")

            # Media both ways on the browser's channel, as Asterisk counts it...
            await asyncio.sleep(1)
            tx0, rx0 = await _rtp(ari, leg)
            media0 = browser.execute_async_script(BROWSER_MEDIA)
            await asyncio.sleep(5)
            tx1, rx1 = await _rtp(ari, leg)
            media1 = browser.execute_async_script(BROWSER_MEDIA)
            print(f"webrtc channel RTP: Asterisk sent {tx0} -> {tx1}, received {rx0} -> {rx1};"
                  f" browser {media0} -> {media1}")
            # The browser sends 50 packets a second. What Asterisk passes on to it is the
            # citizen's SIPp audio, a 7 s pcap replayed from its first RTP sequence number
            # each time: after the first replay Asterisk likely takes most of it for old packets
            # and forwards only some (5-9 a second were seen; a real carrier's stream does
            # not go back). Either way audio reaches the browser, not silence.
            assert tx1 - tx0 >= 15 and rx1 - rx0 >= 100
            # ...and as the browser counts it: DTLS-SRTP, G.711, the ICE pair it chose.
            assert media1["received"] - media0["received"] >= 15
            assert media1["sent"] - media0["sent"] >= 100
            assert media1["dtls"] == "connected" and media1["srtp"]
            assert media1["codec"] in ("audio/PCMU", "audio/PCMA")

            # 静音: what Asterisk hears from the browser goes silent (the fake microphone
            # beeps), while packets keep coming; 取消静音 brings the sound back.
            loud = await _loudest_heard(ari, in_stasis, leg, 1.5)
            browser.find_element(By.ID, "sp-mute").click()
            await until(lambda: _bar(browser, "data-muted") == "1", "已静音", 5)
            assert browser.find_element(By.ID, "sp-mute").text == "取消静音"
            await asyncio.sleep(0.3)
            muted = await _loudest_heard(ari, in_stasis, leg, 1.5)
            print(f"loudest sample Asterisk heard from the browser: {loud} before 静音, "
                  f"{muted} muted")
            # (The beep's loudest sample in a window varies, 600 to 26000; muted is 0.)
            assert loud > 100 and muted < 16
            assert browser.execute_async_script(BROWSER_MEDIA)["mic_enabled"] == [False]
            browser.find_element(By.ID, "sp-mute").click()
            await until(lambda: _bar(browser, "data-muted") == "0", "取消静音", 5)

            # 保持 / 恢复: re-INVITEs Asterisk takes as hold and unhold.
            browser.find_element(By.ID, "sp-hold").click()
            await until(lambda: _bar(browser, "data-held") == "1", "通话保持中", 5)
            assert browser.find_element(By.ID, "sp-status").text == "通话保持中"
            await until(lambda: holds == ["ChannelHold"], "Asterisk's ChannelHold", 5)
            browser.find_element(By.ID, "sp-hold").click()
            await until(lambda: _bar(browser, "data-held") == "0", "恢复", 5)
            await until(lambda: holds == ["ChannelHold", "ChannelUnhold"], "ChannelUnhold", 5)

            # 挂断 in the browser ends the call.
            browser.find_element(By.ID, "sp-hangup").click()
            await until(lambda: _bar(browser, "data-call") == "idle", "挂断", 10)
            await wait_until(db, "SELECT state = 'ended' AND end_reason = 'agent_hangup' "
                                 "FROM calls WHERE id = $1", call["id"], timeout=10)
            # The citizen's side got the hotline's BYE: the call really ended in Asterisk.
            result = (await calls.wait(timeout=10)).check()
            assert [c.ended_by for c in result.calls] == ["remote"]
        assert _bar(browser, "data-reg") == "registered"  # ready for the next call
        watcher.cancel()
    browser.save_screenshot(str(VAR / "desk-softphone.png"))
    assert time.monotonic() - started < 60
