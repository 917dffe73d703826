"""The public Open311 GeoReport v2 API and the weekly publication's pages, over a real
PostgreSQL (the casework tests' own), served by aiohttp's test server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agent_desk.open311 import open311_routes
from agent_desk.publication_routes import publication_routes
from tests.casework.test_stats import (
    CALLER_ADDRESS,
    CALLER_NAME,
    CALLER_NUMBER,
    Week,
    _case,
    keyring,
    seed_week,
    t,
)

PERSONAL = (CALLER_NAME, CALLER_NUMBER, CALLER_NUMBER[-8:], CALLER_ADDRESS)
FEB = "start_date=2026-02-01T00:00:00%2B08:00&end_date=2026-03-01T00:00:00Z"
# Published the Monday after week 8 ended, 09:00 Beijing time.
CLOCK = datetime(2026, 2, 23, 9, tzinfo=UTC)


@pytest.fixture
async def client(pg_dsn: str) -> AsyncIterator[TestClient[Any, Any]]:
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
    app = web.Application()
    app.add_routes(open311_routes(pool))
    app.add_routes(publication_routes(pool, clock=lambda: CLOCK))
    async with TestClient(TestServer(app)) as c:
        yield c
    await pool.close()


@pytest.fixture
async def week(conn: asyncpg.Connection) -> Week:
    return await seed_week(conn)


async def _get(client: TestClient[Any, Any], path: str, status: int = 200) -> Any:
    resp = await client.get(path)
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    return await resp.json()


def _ids(body: list[dict[str, Any]]) -> list[str]:
    return [r["service_request_id"] for r in body]


async def test_services_are_the_category_tree(client: TestClient[Any, Any],
                                              conn: asyncpg.Connection) -> None:
    # The categories table keeps its rows between tests: these two go at the end.
    await conn.execute(
        """INSERT INTO categories (code, parent, name, sort, gbt_code, active) VALUES
           ('0498', '04', '测试二级类别', 0, NULL, true),
           ('049801', '0498', '测试三级类别', 1, '0307', true),
           ('0499', '04', '停用的类别', 99, NULL, false)""")
    try:
        services = await _get(client, "/open311/v2/services.json")
    finally:
        await conn.execute("DELETE FROM categories WHERE code IN ('049801', '0498', '0499')")
    codes = [s["service_code"] for s in services]
    by_code = {s["service_code"]: s for s in services}
    # The tree's order: each parent, then its children by their sort.
    assert codes[:2] == ["01", "02"]
    assert codes.index("04") < codes.index("0498") < codes.index("049801") \
        < codes.index("0401") < codes.index("05")
    assert "0499" not in by_code  # inactive categories are not offered
    assert by_code["04"] == {
        "service_code": "04", "service_name": "直接关系群众生活的问题及突发事件处置",
        "description": "直接关系群众生活的问题及突发事件处置", "metadata": False,
        "type": "realtime", "keywords": "", "group": "直接关系群众生活的问题及突发事件处置"}
    assert by_code["0498"]["group"] == "直接关系群众生活的问题及突发事件处置"
    assert by_code["049801"] == {
        "service_code": "049801", "service_name": "测试三级类别", "description": "测试三级类别",
        "metadata": False, "type": "realtime", "keywords": "GB/T 39666:0307",
        "group": "测试二级类别"}


async def test_one_request_by_its_case_number(client: TestClient[Any, Any],
                                              week: Week) -> None:
    (req,) = await _get(client, f"/open311/v2/requests/{week.case_no[1]}.json")
    assert req["updated_datetime"] is not None
    del req["updated_datetime"]
    assert req == {
        "service_request_id": week.case_no[1], "status": "closed", "status_notes": "已办结",
        "service_name": "直接关系群众生活的问题及突发事件处置", "service_code": "04",
        "description": "已更换变压器，电压恢复正常", "agency_responsible": "市供电公司",
        "service_notice": "书面交办，承办单位须在7个工作日内书面反馈办理结果",
        "requested_datetime": "2026-02-16T09:00:00+08:00",
        "expected_datetime": "2026-02-20T18:00:00+08:00",
        "address": None, "address_id": None, "zipcode": None, "lat": None, "long": None,
        "media_url": None}
    (open_one,) = await _get(client, f"/open311/v2/requests/{week.case_no[3]}.json")
    assert (open_one["status"], open_one["status_notes"], open_one["description"],
            open_one["agency_responsible"]) == ("open", "承办单位已签收，正在办理",
                                                "楼道积水无人处理", "市住建局")


async def test_invalid_merged_and_unknown_cases_are_not_found(
        client: TestClient[Any, Any], week: Week, conn: asyncpg.Connection) -> None:
    await _case(conn, keyring(), 20, status="intake", received_at=t(17, 9))
    for case_no in (week.case_no[6], week.case_no[7], "20260216000020", "nope"):
        body = await _get(client, f"/open311/v2/requests/{case_no}.json", 404)
        assert body == [{"code": 404, "description": f"没有编号为 {case_no} 的公开办件"}]


async def test_requests_filtered(client: TestClient[Any, Any], week: Week) -> None:
    no = week.case_no
    body = await _get(client, f"/open311/v2/requests.json?{FEB}")
    # Newest first; no invalid (6) or merged (7) case.
    assert _ids(body) == [no[n] for n in (5, 11, 4, 9, 1, 12, 10, 8, 3, 2)]
    body = await _get(client, f"/open311/v2/requests.json?{FEB}&status=open")
    assert _ids(body) == [no[n] for n in (4, 12, 8, 3)]
    body = await _get(client, f"/open311/v2/requests.json?{FEB}&status=closed")
    assert _ids(body) == [no[n] for n in (5, 11, 9, 1, 10, 2)]
    body = await _get(client, f"/open311/v2/requests.json?{FEB}&status=open,closed")
    assert len(body) == 10
    body = await _get(client, f"/open311/v2/requests.json?{FEB}&service_code=02,05")
    assert _ids(body) == [no[n] for n in (4, 12, 8, 3)]
    # A week only: requested from Monday 16th to Sunday 22nd.
    body = await _get(client, "/open311/v2/requests.json?start_date=2026-02-16"
                              "&end_date=2026-02-22T23:59:59%2B08:00")
    assert _ids(body) == [no[n] for n in (5, 11, 4, 9, 1, 12)]
    # start_date alone covers the 90 days after it.
    body = await _get(client, "/open311/v2/requests.json?start_date=2026-02-12")
    assert _ids(body) == [no[n] for n in (5, 11, 4, 9, 1, 12, 10)]
    # Ids: every other parameter is ignored (the spec); invalid case 6 stays hidden.
    body = await _get(client, f"/open311/v2/requests.json?service_request_id="
                              f"{no[3]},{no[1]},{no[6]}&status=closed")
    assert sorted(_ids(body)) == sorted([no[1], no[3]])


async def test_requests_default_to_the_last_90_days(client: TestClient[Any, Any],
                                                    conn: asyncpg.Connection) -> None:
    now = datetime.now(UTC)
    await _case(conn, keyring(), 30, received_at=now - timedelta(days=1))
    await _case(conn, keyring(), 31, received_at=now - timedelta(days=91))
    body = await _get(client, "/open311/v2/requests.json")
    assert _ids(body) == ["20260216000030"]


async def test_at_most_1000_requests(client: TestClient[Any, Any],
                                     conn: asyncpg.Connection) -> None:
    await conn.execute(
        """INSERT INTO cases (case_no, dialled_number, service, status, received_at)
           SELECT 'B' || n, '12345', 'hotline', 'pending', $1::timestamptz + n * interval '1 s'
           FROM generate_series(1, 1001) AS n""", t(17, 9))
    body = await _get(client, f"/open311/v2/requests.json?{FEB}")
    assert len(body) == 1000
    assert body[0]["service_request_id"] == "B1001"


@pytest.mark.parametrize(("query", "message"), [
    ("start_date=yesterday", "start_date 不是有效的日期时间"),
    ("end_date=2026-02-30", "end_date 不是有效的日期时间"),
    ("start_date=2026-03-01&end_date=2026-02-01", "start_date 不能晚于 end_date"),
    ("start_date=2026-01-01&end_date=2026-06-01", "相隔不能超过 90 天"),
    ("status=pending", "status 只能是 open 或 closed"),
    ("service_request_id=", "service_request_id 不能为空"),
    ("service_request_id=a'b", "service_request_id 含无效的编号"),
])
async def test_bad_parameters_are_400_in_open311_form(client: TestClient[Any, Any],
                                                      query: str, message: str) -> None:
    body = await _get(client, f"/open311/v2/requests.json?{query}", 400)
    assert len(body) == 1 and body[0]["code"] == 400
    assert message in body[0]["description"]


async def test_xml_is_not_offered(client: TestClient[Any, Any]) -> None:
    for path in ("services.xml", "requests.xml", "requests/20260216000001.xml"):
        body = await _get(client, f"/open311/v2/{path}", 404)
        assert body == [{"code": 404,
                         "description": "本接口只提供 JSON 格式，请把地址中的 .xml 换成 .json"}]


async def test_the_weekly_publication_pages(client: TestClient[Any, Any], week: Week) -> None:
    resp = await client.get("/public/weekly/2026-W08.csv")
    assert resp.status == 200
    assert resp.content_type == "text/csv"
    assert resp.headers["Content-Disposition"] == \
        'attachment; filename="hotline-weekly-2026-W08.csv"'
    data = await resp.read()
    assert data.startswith(b"\xef\xbb\xbf")
    assert week.case_no[3] in data.decode("utf-8")
    resp = await client.get("/public/weekly/2026-W8.html")
    assert resp.status == 200 and resp.content_type == "text/html"
    assert "市长热线办理情况周报（2026年第8周）" in await resp.text()
    # Week 9 has not ended on the clock's Monday; 2025 has no week 53.
    resp = await client.get("/public/weekly/2026-W09.html")
    assert resp.status == 404
    assert await resp.text() == "2026年第9周尚未结束，周报在该周结束后公布。"
    resp = await client.get("/public/weekly/2025-W53.csv")
    assert (resp.status, await resp.text()) == (404, "2025年没有第53周。")
    assert (await client.get("/public/weekly/2026-W08.pdf")).status == 404


async def test_no_personal_data_in_any_public_answer(client: TestClient[Any, Any],
                                                     week: Week) -> None:
    paths = ["/open311/v2/services.json", f"/open311/v2/requests.json?{FEB}",
             "/open311/v2/requests.json?start_date=2026-02-01&status=open",
             "/public/weekly/2026-W07.csv", "/public/weekly/2026-W08.csv",
             "/public/weekly/2026-W08.html"]
    paths += [f"/open311/v2/requests/{no}.json" for no in week.case_no.values()]
    for path in paths:
        resp = await client.get(path)
        text = await resp.text()
        if resp.content_type == "application/json":
            # As the client reads it too, in case a value were \u-escaped.
            text += json.dumps(json.loads(text), ensure_ascii=False)
        for value in PERSONAL:
            assert value not in text, f"{value} in {path}"
