"""Click-to-dial from the desk (回拨): on a case (a revisit, or any case of the duty room)
or on a worklist item. The agent's phone rings first, then the citizen.

The number is never sent by the browser nor shown to the agent: the server reads it from
the case's encrypted field and passes it through the dial guard (China's numbering plan,
caps per number and hour) before call control is asked to dial. A refusal comes back at
once in plain words; the attempt's outcome is pushed to the agent's desk and written on
the case's audit trail and the worklist item.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from agent_desk.casework_api import DeskState, _error, _int
from casework import views
from casework import workflow as wf
from db import cases as case_store
from db import dialguard
from db import outbound as outbound_store
from db.crypto import CryptoError

log = logging.getLogger(__name__)
DUTY_ROOM = ("agent", "supervisor")


def routes(key: web.AppKey[Any]) -> list[web.RouteDef]:
    """The routes, reading the desk's state from app[key]."""

    async def dial_case(request: web.Request) -> web.Response:
        """回拨 on a case: purpose `revisit` (回访) or `case`."""
        body = await _body(request)
        purpose = body.get("purpose", "case")
        if purpose not in ("revisit", "case"):
            return _error(400, "purpose 只能是 revisit（回访）或 case")
        return await _place(request.app[key], request, _int(request, "case_id"), purpose,
                            None)

    async def dial_worklist(request: web.Request) -> web.Response:
        """回拨 on a worklist item: the case of the missed call."""
        state: DeskState = request.app[key]
        try:
            call_id = uuid.UUID(request.match_info["call_id"])
        except ValueError:
            return _error(404, "没有这个待回拨记录")
        async with state.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT c.case_id FROM worklist w JOIN calls c ON c.id = w.call_id "
                "WHERE w.call_id = $1 AND w.status = 'open'", call_id)
        if row is None or row["case_id"] is None:
            return _error(404, "没有这个待回拨记录，或它已处理完")
        return await _place(state, request, row["case_id"], "worklist", call_id)

    return [
        web.post("/api/cases/{case_id}/dial", dial_case),
        web.post("/api/worklist/{call_id}/dial", dial_worklist),
    ]


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise web.HTTPBadRequest(text='{"error": "请求内容不是有效的 JSON"}',
                                 content_type="application/json") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"error": "请求内容必须是 JSON 对象"}',
                                 content_type="application/json")
    return body


async def _place(state: DeskState, request: web.Request, case_id: int, purpose: str,
                 worklist_call_id: uuid.UUID | None) -> web.Response:
    now = datetime.now(UTC)
    agent_id = request["session"].agent_id
    async with state.pool.acquire() as conn:
        actor = await wf.actor_for(conn, agent_id)
        if actor.role not in DUTY_ROOM:
            return _error(403, "回拨仅供值班室坐席和值班长使用")
        agent = await conn.fetchrow("SELECT phone, state FROM agents WHERE id = $1", agent_id)
        if not agent["phone"] or agent["phone"] not in state.cfg.phones:
            return _error(409, "您的账号没有配置电话，无法回拨")
        if agent["state"] not in ("ready", "paused", "wrap_up"):
            return _error(409, "您正在通话或未登录，请结束后再回拨")
        try:
            # Dialling uses the citizen's number: the same right as seeing it.
            await views.check_personal_access(conn, actor, case_id)
            case = await case_store.get(conn, state.keyring, case_id)
        except wf.WorkflowError:
            return _error(404, "没有这个工单")
        except CryptoError:
            return _error(409, "工单的个人信息暂时无法读取（密钥不可用），无法回拨")
        if case is None:
            return _error(404, "没有这个工单")
        number = case["callback_number"] or case["caller_number"]
        if not number:
            return _error(409, "该工单没有来电号码或回拨号码，无法回拨")
        async with conn.transaction():
            decision = await dialguard.check(
                conn, state.keyring, number, state.cfg.guard_rules(), purpose=purpose,
                now=now, call_id=worklist_call_id, case_id=case_id, agent_id=agent_id)
        if not decision.allowed:
            log.info("agent %d: call out for case %d refused (%s %s)", agent_id, case_id,
                     decision.masked, decision.code)
            return web.json_response({"error": f"不能回拨：{decision.reason}",
                                      "code": decision.code}, status=422)
        if not state.cfg.dial_out.trunks:
            return _error(409, "没有配置外呼线路（dial_out），无法回拨")
        try:
            out_id = await outbound_store.request(
                conn, case_id=case_id, agent_id=agent_id, purpose=purpose,
                worklist_call_id=worklist_call_id, dial_attempt_id=decision.attempt_id)
        except outbound_store.AgentBusy:
            return _error(409, "您正在通话或已在回拨中，请结束后再回拨")
    log.info("agent %d: call out %d for case %d (%s)", agent_id, out_id, case_id, purpose)
    return web.json_response({"outbound_id": out_id, "state": "requested",
                              "number": decision.masked}, status=202)
