"""Voice messages are played back only through the desk, decrypted, to those allowed to
see the caller's personal data (the hotline; the handler of a unit the case is assigned
to now), and each listen is written to the case's audit trail."""

from __future__ import annotations

import io
import wave
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from agent_desk.app import CSRF_HEADER
from casework import calendar
from db import cases as case_store
from db import recordings
from tests.agent_desk.test_casework_api import CALLER, _login, _user, desk

__all__ = ["desk"]  # the fixture, shared with the case-workflow API tests


def _wav() -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x10\x00" * 4000)
    return buf.getvalue()


async def test_a_voice_message_is_played_only_to_those_allowed(
        desk: dict[str, Any], conn: asyncpg.Connection, tmp_path: Path) -> None:
    await calendar.seed_from_package(conn)
    power = await conn.fetchval("INSERT INTO units (code, name, level) VALUES "
                                "('P', '国网南阳供电公司', 1) RETURNING id")
    other = await conn.fetchval("INSERT INTO units (code, name, level) VALUES "
                                "('O', '宛城区人民政府', 1) RETURNING id")
    for login, role, unit in (("agent1", "agent", None), ("hp", "handler", power),
                              ("ho", "handler", other), ("admin", "admin", None)):
        await _user(conn, login, role, unit)
    case = (await case_store.create(conn, desk["keys"], call_id=None, dialled_number="12345",
                                    service="hotline", caller_number=CALLER))["id"]
    audio = _wav()
    (tmp_path / "spool.wav").write_bytes(audio)
    stored = tmp_path / "vm.wav.enc"
    key_id = await recordings.seal_file(conn, desk["keys"], tmp_path / "spool.wav", stored)
    rec = await recordings.attach(conn, case, None, "voice_message", str(stored), 0.5, key_id)
    assert not stored.read_bytes().startswith(b"RIFF")  # encrypted at rest

    server = desk["server"]
    agent, csrf = await _login(server, "agent1")
    url = f"/api/casework/cases/{case}/recordings/{rec}"

    async def get(client: TestClient) -> tuple[int, bytes]:
        r = await client.get(url)
        return r.status, await r.read()

    # Before the case is assigned, no handler may hear it.
    hp, _ = await _login(server, "hp")
    assert (await get(hp))[0] == 404
    status, body = await get(agent)
    assert status == 200 and body == audio
    valid = {k: True for k in ("clear_target", "objective", "concise", "real_identity",
                               "truthful")}
    base = f"/api/casework/cases/{case}"
    for path, body_ in ((base + "/register", {"title": "电压低", "category": "04",
                                              "validity": valid}),
                        (base + "/assign", {"lead_unit": power, "mode": "phone"})):
        r = await agent.post(path, json=body_, headers={CSRF_HEADER: csrf})
        assert r.status == 200, await r.json()
    status, body = await get(hp)
    assert status == 200 and body == audio
    ho, _ = await _login(server, "ho")
    admin, _ = await _login(server, "admin")
    assert (await get(ho))[0] == 404
    assert (await get(admin))[0] == 403
    # A recording of another case is not reachable through this case.
    other_case = (await case_store.create(conn, desk["keys"], call_id=None,
                                          dialled_number="12345", service="hotline",
                                          caller_number="13900000009"))["id"]
    r = await agent.get(f"/api/casework/cases/{other_case}/recordings/{rec}")
    assert r.status == 404
    plays = await conn.fetch("SELECT actor_id, detail FROM case_events WHERE case_id = $1 "
                             "AND action = 'recording_played'", case)
    assert len(plays) == 2
    assert all(CALLER not in p["detail"] for p in plays)
    for c in (agent, hp, ho, admin):
        await c.close()
