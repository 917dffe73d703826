"""Nothing leaks: a scripted day of calls leaves no caller's number or name in plain text in
the logs, the database dump, the exports or the desk's error pages (issue 5)."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest

from casework import publication
from hotline.asterisk import AsteriskInstance, locate
from hotline.postgres import pg_dump
from tests.conftest import VAR, DeskClient, Stack, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean")]

# Personal data of the day, distinctive so a hit can only come from this test.
NAMES = {"answered": "司马泄甲", "withheld": "上官泄乙", "callback": "欧阳泄丙"}
ADDRESSES = {"answered": "宛城区不泄露街17号", "withheld": "卧龙区无痕巷8号",
             "callback": "宛城区守口如瓶路3号"}
WORK_UNIT = "泄露检测示范有限公司"


def _number() -> str:
    """A mobile number of a range no other test uses (147...), new for every run."""
    return "147" + f"{random.SystemRandom().randrange(10**8):08d}"


def _forms(number: str) -> list[str]:
    """The written forms to look for: any form holding the last 8 digits in a row (plain,
    +86, 0086) and the grouped ones."""
    return [number[-8:], f"{number[:3]}-{number[3:7]}-{number[7:]}",
            f"{number[:3]} {number[3:7]} {number[7:]}"]


async def _next_call(agent: DeskClient, handled: set[str]) -> dict[str, Any]:
    """The next call connected to this agent that the test has not handled yet."""
    agent.messages[:] = [m for m in agent.messages if not (
        m.get("type") == "connected" and m["call"]["call_id"] in handled)]
    msg = await agent.expect("connected", timeout=40)
    handled.add(msg["call"]["call_id"])
    return msg


async def _hang_up_agent(stack: Stack, db: asyncpg.Connection, call_id: str) -> None:
    row = await db.fetchrow("SELECT * FROM calls WHERE id = $1", uuid.UUID(call_id))
    async with stack.ari() as ari:
        await ari.channel(row["agent_channel_id"]).hangup()
    await wait_until(db, "SELECT state = 'ended' FROM calls WHERE id = $1", row["id"])


async def _fill_case(agent: DeskClient, case_id: int, who: str, seen: list[str],
                     callback_number: str = "") -> None:
    path = f"/api/cases/{case_id}"
    seen.append(path)
    status, body = await agent.request("PUT", path, json={
        "name": NAMES[who], "address": ADDRESSES[who], "work_unit": WORK_UNIT,
        "category": "04", "content": "路灯不亮已有一周，夜间出行不便。",
        "callback_number": callback_number})
    assert status == 200, body
    assert body["case"]["name"] == NAMES[who]  # the agent handling it sees it in full


async def test_a_scripted_day_leaves_no_caller_number_or_name_in_plain_text(
    stack: Stack, db: asyncpg.Connection, desk, carrier: Any
) -> None:
    n = {k: _number() for k in ("answered", "keyed", "callback", "abandoned", "voice")}
    seen_urls: list[str] = []
    responses: list[str] = []  # error pages and exports, as received

    # -- the morning: nobody ready yet -------------------------------------------------
    before = {r["id"] for r in await db.fetch("SELECT id FROM calls")}
    # A caller waits past max_wait (8 s) on 96005 and leaves a voice message.
    speak = stack.prompt_seconds("t_hello") + 8 + stack.prompt_seconds("voice_message") + 2
    # It speaks for a while (the menu prompt stands in for its voice): an announcement
    # playing at max_wait puts the beep off by a few seconds, and a recording of silence
    # alone is not kept.
    stack.call("96005", n["voice"], "--hold", "4", "--dtmf-delay",
               f"{speak:.1f}", "--say", "hotline/menu_63160000")
    # A caller gives up while waiting.
    stack.call("12345", n["abandoned"], "--hold",
               f"{stack.prompt_seconds('welcome_12345') + 3:.1f}")
    # A withheld caller keys a callback number.
    delay = stack.prompt_seconds("welcome_12345") + 1.5
    stack.call("12345", "withheld", "--dtmf-delay", f"{delay:.1f}",
               "--dtmf", f"{n['keyed']}#")
    # A caller on 96006 asks to be called back (1, then 1 to confirm) and hangs up.
    stack.call("96006", n["callback"], "--dtmf-delay",
               f"{stack.prompt_seconds('t_hello') + 3:.1f}", "--dtmf", "1wwwwww1",
               "--hold", "20")
    new = "NOT (c.id = ANY($1::uuid[]))"
    await wait_until(db, f"SELECT count(*) = 4 FROM calls c WHERE {new}", list(before))
    await wait_until(db, f"SELECT count(*) FROM calls c WHERE {new} AND callback_at IS NOT NULL",
                     list(before), timeout=40)
    await wait_until(db, f"SELECT count(*) FROM calls c JOIN cases k ON k.id = c.case_id "
                         f"WHERE {new} AND c.dialled_number = '12345' AND c.state = 'waiting' "
                         f"AND k.caller_withheld", list(before))
    # `hotline status --json` while they wait.
    responses.append(stack.cli("status", "--json", check=False).stdout)
    await wait_until(db, f"SELECT count(*) FROM calls c WHERE {new} "
                         "AND end_reason = 'overflow_voice_message'", list(before), timeout=30)
    await wait_until(db, f"SELECT count(*) FROM calls c WHERE {new} "
                         "AND end_reason = 'caller_hangup'", list(before), timeout=30)

    # -- an agent answers the withheld caller and calls the 96006 caller back ----------
    a1 = await desk("agent1")
    await a1.set_state("ready")
    handled: set[str] = set()
    for _ in range(2):
        msg = await _next_call(a1, handled)
        call_id = msg["call"]["call_id"]
        dialled = await db.fetchval("SELECT dialled_number FROM calls WHERE id = $1",
                                    uuid.UUID(call_id))
        who = "callback" if dialled == "96006" else "withheld"
        await _fill_case(a1, msg["case"]["id"], who, seen_urls,
                         n["keyed"] if who == "withheld" else "")
        if who == "callback":  # the callback leg was really dialled to the citizen
            await wait_until(db, "SELECT callback_channel_id IS NOT NULL FROM calls "
                                 "WHERE id = $1", uuid.UUID(call_id))
        await _hang_up_agent(stack, db, call_id)
    # (After wrap-up the agent is ready and the next waiting call is offered at once.)
    await wait_until(db, "SELECT state = 'ready' FROM agents WHERE login = 'agent1'")

    # -- a caller with caller ID: the case goes its whole way and is published ----------
    stack.call("12345", n["answered"])
    msg = await _next_call(a1, handled)
    case_id = msg["case"]["id"]
    await _fill_case(a1, case_id, "answered", seen_urls)
    await _hang_up_agent(stack, db, msg["call"]["call_id"])

    async def step(client: DeskClient, path: str, **body: Any) -> dict[str, Any]:
        seen_urls.append(path)
        status, out = await client.request("POST", path, json=body)
        assert status == 200, (path, out)
        return out

    base = f"/api/casework/cases/{case_id}"
    valid = dict.fromkeys(("clear_target", "objective", "concise", "real_identity",
                           "truthful"), True)
    await step(a1, base + "/register", title="路灯不亮", category="04", validity=valid)
    unit = await db.fetchval("SELECT id FROM units WHERE code = 'wancheng'")
    await step(a1, base + "/assign", lead_unit=unit, mode="phone", note="请尽快修复")
    handler = await desk("h_wancheng")
    seen_urls.append(base)
    status, detail = await handler.request("GET", base)
    assert status == 200, detail
    assignment = detail["case"]["assignments"][0]["id"]
    await step(handler, f"/api/casework/assignments/{assignment}/accept")
    await step(handler, f"/api/casework/assignments/{assignment}/result",
               result="已修复路灯", reply="已电话答复来电人", replied=True)
    await step(a1, base + "/review", approve=True, public_summary="路灯已修复")
    await step(a1, base + "/revisit", outcome="satisfied")
    case_no = await db.fetchval("SELECT case_no FROM cases WHERE id = $1", case_id)
    assert await db.fetchval("SELECT status FROM cases WHERE id = $1", case_id) == "closed"

    # -- exports --------------------------------------------------------------------
    seen_urls.append(base + "/form")
    async with a1.http.get(stack.desk_url + base + "/form") as r:
        form = await r.text()
        assert r.status == 200 and case_no in form
    responses.append(form)
    now = datetime.now(UTC)
    year, week, _ = now.astimezone(publication.TZ).isocalendar()
    pub = await publication.weekly(db, year, week)  # this week's, as it will be published
    assert case_no in (csv := publication.to_csv(pub))
    responses += [csv, publication.to_html(pub)]
    last_year, last_week, _ = (now - timedelta(days=7)).astimezone(publication.TZ).isocalendar()
    async with aiohttp.ClientSession() as http:
        for path in (f"/public/weekly/{last_year}-W{last_week:02d}.csv",
                     f"/public/weekly/{last_year}-W{last_week:02d}.html",
                     "/open311/v2/requests.json", f"/open311/v2/requests/{case_no}.json",
                     # error pages
                     "/open311/v2/requests/no-such.case.json", "/public/weekly/2026-W99.csv"):
            seen_urls.append(path)
            async with http.get(stack.desk_url + path) as r:
                responses.append(await r.text())
                if "requests.json" in path or path.endswith(f"{case_no}.json"):
                    assert r.status == 200 and case_no in responses[-1]
        # A failed login, one with a caller's number typed in the login box by mistake.
        for login in ("agent1", n["answered"]):
            async with http.post(stack.desk_url + "/api/login",
                                 json={"login": login, "password": "wrong"}) as r:
                assert r.status in (401, 429)
                responses.append(await r.text())
    # Desk error pages: a case that does not exist, a case of another agent, a refused edit.
    a2 = await desk("agent2")
    for client, method, path, body in (
        (a1, "GET", "/api/casework/cases/999999999", None),
        (a2, "GET", f"/api/cases/{case_id}", None),
        (a1, "PUT", f"/api/cases/{case_id}",
         {"name": NAMES["answered"] * 40, "callback_number": n["answered"]}),
        (a1, "PUT", f"/api/cases/{case_id}", {"address": ADDRESSES["answered"], "phone": 1}),
    ):
        seen_urls.append(path)
        status, out = await client.request(method, path, json=body)
        assert status in (400, 403, 404), (path, status, out)
        responses.append(str(out))
    responses.append(stack.cli("status", "--json", check=False).stdout)

    # The voice message is kept encrypted; Asterisk's plaintext copy is gone.
    await wait_until(db, f"SELECT count(*) FROM case_recordings r JOIN calls c "
                         f"ON c.id = r.call_id WHERE {new}", list(before), timeout=60)
    asterisk = AsteriskInstance(locate(), VAR)
    assert not list((asterisk.host_base / "spool" / "recording").glob("hotline-vm-*.wav"))

    # -- and now look everywhere -------------------------------------------------------
    await asyncio.sleep(1)  # let the services flush their last lines
    files = [*(VAR / "log").glob("*.log"), VAR / "asterisk.log", VAR / "run.log",
             VAR / "pg" / "postgres.log", *(asterisk.host_base / "log").glob("*"),
             *(asterisk.host_base / "spool" / "hotline-fallback").glob("*.txt")]
    texts = {str(f): f.read_text(encoding="utf-8", errors="replace")
             for f in files if f.is_file()}
    assert any("asterisk.log" in name for name in texts) and len(texts) >= 4
    texts["pg_dump"] = pg_dump(stack.dsn)
    assert "case_personal" in texts["pg_dump"]
    for i, text in enumerate(responses):
        texts[f"response {i}"] = text
    texts["desk URLs"] = "\n".join(seen_urls)

    secrets = [f for number in n.values() for f in _forms(number)]
    secrets += [*NAMES.values(), *ADDRESSES.values(), WORK_UNIT]
    leaks = [f"{where}: {secret!r} in …{text[max(0, i - 80):i + 40]!r}"
             for where, text in texts.items() for secret in secrets
             if (i := text.find(secret)) >= 0]
    assert not leaks, "\n".join(leaks)

