"""The weekly publication of 2026-W08: its content, the CSV Excel opens, the printable page,
and never a caller's personal data."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import asyncpg
import pytest

from casework import publication
from tests.casework.test_stats import (
    CALLER_ADDRESS,
    CALLER_NAME,
    CALLER_NUMBER,
    TZ,
    _case,
    keyring,
    seed_week,
    t,
)

PERSONAL = (CALLER_NAME, CALLER_NUMBER, CALLER_NUMBER[-8:], CALLER_ADDRESS)


def _sections(text: str) -> dict[str, list[list[str]]]:
    """The CSV's sections by their title row: header row first, then the data rows."""
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    out: dict[str, list[list[str]]] = {}
    current: list[list[str]] | None = None
    for prev, row in zip([[]] + rows, rows, strict=False):
        if not row:
            current = None
        elif not prev and len(row) == 1:
            current = out.setdefault(row[0], [])
        elif current is not None:
            current.append(row)
    return out


async def test_the_week_in_figures(conn: asyncpg.Connection) -> None:
    w = await seed_week(conn)
    pub = await publication.weekly(conn, 2026, 8)
    assert pub.start == datetime(2026, 2, 16, tzinfo=TZ)
    assert pub.end == datetime(2026, 2, 23, tzinfo=TZ)
    assert pub.title == "市长热线办理情况周报（2026年第8周）"
    assert pub.period == "2026年2月16日至2026年2月22日"
    assert [c.case_no for c in pub.closed] == [w.case_no[n] for n in (9, 1, 2, 10, 5)]
    # Units with activity only (市水务集团 had none), each with its score.
    assert [(u.figures.unit_name, u.score) for u in pub.units] == [
        ("市供电公司", 70.0), ("市住建局", 0.0), ("城东街道办事处", 99.0)]
    # The hotline's totals: every case once (categories 02, 03, 04, 05).
    tot = pub.totals
    assert (tot.received, tot.closed, tot.closed_on_time, tot.overdue, tot.urgings,
            tot.rehandlings, tot.returns, tot.revisits, tot.satisfied, tot.replied) == \
        (6, 5, 4, 2, 3, 2, 1, 5, 3, 4)
    assert [(c.case_no, c.urgings, c.days_overdue) for c in pub.criticism] == \
        [(w.case_no[3], 2, 5)]
    # The threshold is a setting: at 3 urgings nobody was criticised that week.
    assert (await publication.weekly(conn, 2026, 8, criticism_urgings=3)).criticism == []


async def test_the_csv_opens_in_excel_with_every_section(conn: asyncpg.Connection) -> None:
    w = await seed_week(conn)
    text = publication.to_csv(await publication.weekly(conn, 2026, 8))
    data = text.encode("utf-8")
    assert data.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs for Chinese
    assert "\r\n" in text
    first = next(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    assert first == ["市长热线办理情况周报（2026年第8周）", "2026年2月16日至2026年2月22日"]
    s = _sections(text)
    assert list(s) == ["本周汇总", "本周办结事项", "各单位办理情况",
                       "公开批评（催办2次及以上仍未办结）"]
    assert s["本周汇总"][0] == ["受理", "交办", "办结", "按时办结", "超期", "催办", "重办",
                             "退单", "回访", "满意", "按时办结率", "满意率", "回复率"]
    closed = s["本周办结事项"]
    assert closed[0] == ["办件编号", "事项", "类别", "承办单位", "受理日期", "办结日期",
                         "是否按时", "满意度"]
    assert closed[2] == [w.case_no[1], "已更换变压器，电压恢复正常",
                         "直接关系群众生活的问题及突发事件处置", "市供电公司", "2026-02-16",
                         "2026-02-20", "是", "满意"]
    assert closed[3][6:] == ["否", "满意"]  # case 2: late
    assert closed[5][6:] == ["是", "未评价"]  # case 5: caller unreachable
    units = s["各单位办理情况"]
    assert units[0][0] == "单位" and units[0][-1] == "考核得分"
    assert units[1] == ["市供电公司", "3", "4", "4", "3", "1", "1", "1", "0", "5", "3",
                        "75.0%", "75.0%", "75.0%", "70.0"]
    assert units[2][-4:] == ["0.0%", "", "", "0.0"]  # no rate to show is left empty
    assert s["公开批评（催办2次及以上仍未办结）"][1] == [
        w.case_no[3], "楼道积水无人处理",
        "改革开放、经济建设、发展环境、市政建设和城市管理方面的意见", "市住建局", "2026-02-10",
        "2026-02-17", "2", "5"]


async def test_the_totals_row_by_hand(conn: asyncpg.Connection) -> None:
    await seed_week(conn)
    s = _sections(publication.to_csv(await publication.weekly(conn, 2026, 8)))
    # received 6 (1, 4, 5, 9, 11, 12); assigned: distinct cases per category 1+0+4+1;
    # closed 5 (1, 2, 5, 9, 10), 4 on time; overdue: case 3 open + case 2 late; urgings 3;
    # re-handled 2 and 12; returned 4; on-time 4 / (5 closed + 1 open overdue);
    # satisfaction 3/4; reply 4/5.
    assert s["本周汇总"][1] == ["6", "6", "5", "4", "2", "3", "2", "1", "5", "3",
                             "66.7%", "75.0%", "80.0%"]


async def test_a_cell_that_looks_like_a_formula_stays_text(conn: asyncpg.Connection) -> None:
    await _case(conn, keyring(), 1, category="03", status="closed",
                public_summary="=HYPERLINK(\"http://evil\")", received_at=t(17, 9),
                closed_at=t(17, 10), replied=True)
    s = _sections(publication.to_csv(await publication.weekly(conn, 2026, 8)))
    assert s["本周办结事项"][1][1] == "'=HYPERLINK(\"http://evil\")"


async def test_the_printable_page(conn: asyncpg.Connection) -> None:
    w = await seed_week(conn)
    await _case(conn, keyring(), 40, category="03", status="closed",
                public_summary="<script>alert(1)</script>&", received_at=t(17, 9),
                closed_at=t(17, 10), replied=True)
    page = publication.to_html(await publication.weekly(conn, 2026, 8))
    assert page.startswith("<!DOCTYPE html>")
    assert '<html lang="zh-CN">' in page
    assert "<title>市长热线办理情况周报（2026年第8周）</title>" in page
    assert "@page { size: A4" in page
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&amp;" in page
    assert w.case_no[3] in page and "公开批评（催办2次及以上仍未办结）" in page
    assert "<td>市供电公司</td>" in page
    assert '<td class="n">70.0</td>' in page


async def test_an_empty_week_says_so(conn: asyncpg.Connection) -> None:
    pub = await publication.weekly(conn, 2026, 8)
    page = publication.to_html(pub)
    assert "本周无办结事项。" in page and "本周无公开批评事项。" in page
    s = _sections(publication.to_csv(pub))
    assert s["本周办结事项"] == [s["本周办结事项"][0]]  # the header, no rows


async def test_no_personal_data_is_ever_published(conn: asyncpg.Connection) -> None:
    await seed_week(conn)
    pub = await publication.weekly(conn, 2026, 8)
    for text in (publication.to_csv(pub), publication.to_html(pub), repr(pub)):
        for value in PERSONAL:
            assert value not in text


async def test_a_week_that_does_not_exist(conn: asyncpg.Connection) -> None:
    with pytest.raises(ValueError, match="2025 has no ISO week 53"):
        await publication.weekly(conn, 2025, 53)
    with pytest.raises(ValueError, match="2026 has no ISO week 0"):
        await publication.weekly(conn, 2026, 0)
    # 2026 starts on a Thursday, so it has a week 53, running into 2027.
    start, end = publication.week_bounds(2026, 53)
    assert (start, end) == (datetime(2026, 12, 28, tzinfo=TZ), datetime(2027, 1, 4, tzinfo=TZ))
