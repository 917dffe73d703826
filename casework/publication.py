"""The weekly publication (每周公布): the week's results with no personal data, as one
CSV file and as a printable page in Chinese, with the public-criticism list.

A week is an ISO week in Asia/Shanghai: Monday 00:00 to the next Monday 00:00. Only
publishable fields are ever read (case number, title, public summary, category, unit,
status, dates, counts); never case_personal, never cases.content. Definitions:
docs/casework.md ("Figures and assessment", "The weekly publication").
"""

from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from casework import stats
from casework.stats import (
    AssessmentFormula,
    ClosedCase,
    Figures,
    UnitFigures,
    UrgedCase,
    assessment_score,
)

TZ = ZoneInfo("Asia/Shanghai")
CRITICISM_URGINGS = 2
SATISFACTION = {"satisfied": "满意", "unsatisfied": "不满意", None: "未评价"}


@dataclass(frozen=True)
class UnitResult:
    """One unit's figures for the week and its assessment score."""

    figures: UnitFigures
    score: float


@dataclass(frozen=True)
class Publication:
    """Everything the week's publication shows."""

    year: int
    week: int
    start: datetime  # Monday 00:00 Asia/Shanghai
    end: datetime  # the next Monday 00:00 (exclusive)
    totals: Figures  # the whole hotline (every case counted once, by its category)
    closed: list[ClosedCase]
    units: list[UnitResult]  # units with any activity in the week
    criticism: list[UrgedCase]
    criticism_urgings: int

    @property
    def title(self) -> str:
        return f"市长热线办理情况周报（{self.year}年第{self.week}周）"

    @property
    def period(self) -> str:
        last = (self.end - timedelta(days=1)).date()
        first = self.start.date()
        return (f"{first.year}年{first.month}月{first.day}日至"
                f"{last.year}年{last.month}月{last.day}日")


def week_bounds(year: int, week: int) -> tuple[datetime, datetime]:
    """The ISO week's [Monday 00:00, next Monday 00:00) in Asia/Shanghai; ValueError in
    plain words for a week that does not exist."""
    if not 2000 <= year <= 9999:
        raise ValueError(f"year {year} is out of range")
    try:
        monday = date.fromisocalendar(year, week, 1)
    except ValueError:
        raise ValueError(f"{year} has no ISO week {week}") from None
    start = datetime.combine(monday, time(0), TZ)
    return start, datetime.combine(monday + timedelta(days=7), time(0), TZ)


async def weekly(conn: asyncpg.Connection, year: int, week: int, *,
                 criticism_urgings: int = CRITICISM_URGINGS,
                 formula: AssessmentFormula | None = None) -> Publication:
    """The publication of ISO week `week` of `year`: cases closed in the week, each active
    unit's figures and score, and the cases still open at the end of the week after
    `criticism_urgings` or more urgings (the public-criticism list)."""
    start, end = week_bounds(year, week)
    by_category = await stats.category_figures(conn, start, end)
    totals = Figures(**{f.name: sum(getattr(c, f.name) for c in by_category)
                        for f in fields(Figures)})
    units = [UnitResult(u, assessment_score(u, formula))
             for u in await stats.unit_figures(conn, start, end) if u.any_activity()]
    return Publication(
        year=year, week=week, start=start, end=end, totals=totals,
        closed=await stats.closed_cases(conn, start, end), units=units,
        criticism=await stats.urged_open_cases(conn, end, criticism_urgings),
        criticism_urgings=criticism_urgings)


# -- formatting ------------------------------------------------------------------------


def _day(at: datetime | None) -> str:
    return at.astimezone(TZ).date().isoformat() if at else ""


def _pct(rate: float | None, empty: str) -> str:
    return f"{rate * 100:.1f}%" if rate is not None else empty


def _summary(c: ClosedCase | UrgedCase) -> str:
    return c.public_summary or c.title


TOTAL_HEADER = ["受理", "交办", "办结", "按时办结", "超期", "催办", "重办", "退单", "回访",
                "满意", "按时办结率", "满意率", "回复率"]
CLOSED_HEADER = ["办件编号", "事项", "类别", "承办单位", "受理日期", "办结日期", "是否按时",
                 "满意度"]
UNIT_HEADER = ["单位", *TOTAL_HEADER, "考核得分"]
CRITICISM_HEADER = ["办件编号", "事项", "类别", "承办单位", "受理日期", "办理期限", "催办次数",
                    "超期天数"]


def _figure_cells(f: Figures, empty: str) -> list[str]:
    return [str(v) for v in (f.received, f.assigned, f.closed, f.closed_on_time, f.overdue,
                             f.urgings, f.rehandlings, f.returns, f.revisits, f.satisfied)] + \
        [_pct(f.on_time_rate, empty), _pct(f.satisfaction_rate, empty),
         _pct(f.reply_rate, empty)]


def _rows(pub: Publication, empty: str) -> dict[str, list[list[str]]]:
    """The publication's tables as text cells, shared by the CSV and the page."""
    return {
        "totals": [_figure_cells(pub.totals, empty)],
        "closed": [[c.case_no, _summary(c), c.category_name or c.category_code or "",
                    c.unit_name or "热线直接答复", _day(c.received_at), _day(c.closed_at),
                    "是" if c.on_time else "否", SATISFACTION.get(c.satisfaction, "")]
                   for c in pub.closed],
        "units": [[u.figures.unit_name, *_figure_cells(u.figures, empty), f"{u.score:.1f}"]
                  for u in pub.units],
        # No lead unit at the end of the week: the last one returned it (退单).
        "criticism": [[c.case_no, _summary(c), c.category_name or "",
                       c.unit_name or "（退回待重新交办）",
                       _day(c.received_at), _day(c.due_at), str(c.urgings),
                       str(c.days_overdue)] for c in pub.criticism],
    }


def _criticism_heading(pub: Publication) -> str:
    return f"公开批评（催办{pub.criticism_urgings}次及以上仍未办结）"


def _cell(value: str) -> str:
    # A cell starting like a formula would run as one in Excel (CSV injection): quote it.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def to_csv(pub: Publication) -> str:
    """The publication as one CSV text (UTF-8 with a BOM once encoded, CRLF lines) with
    four sections, each a title row, a header row and its rows, separated by a blank
    row: 本周汇总, 本周办结事项, 各单位办理情况, 公开批评. Rates with no denominator are
    left empty."""
    out = io.StringIO()
    out.write("\ufeff")
    w = csv.writer(out, lineterminator="\r\n")
    rows = _rows(pub, "")
    w.writerow([pub.title, pub.period])
    for heading, header, key in (("本周汇总", TOTAL_HEADER, "totals"),
                                 ("本周办结事项", CLOSED_HEADER, "closed"),
                                 ("各单位办理情况", UNIT_HEADER, "units"),
                                 (_criticism_heading(pub), CRITICISM_HEADER, "criticism")):
        w.writerow([])
        w.writerow([heading])
        w.writerow(header)
        w.writerows([_cell(v) for v in row] for row in rows[key])
    return out.getvalue()


_CSS = """
@page { size: A4; margin: 15mm 12mm; }
body { font-family: "Noto Sans CJK SC", "WenQuanYi Zen Hei", "Microsoft YaHei", sans-serif;
       font-size: 10.5pt; color: #000; margin: 0 auto; max-width: 190mm; }
h1 { font-size: 18pt; text-align: center; margin: 0 0 4pt; }
.period { text-align: center; margin: 0 0 12pt; }
h2 { font-size: 13pt; margin: 14pt 0 6pt; border-bottom: 1pt solid #000; }
table { width: 100%; border-collapse: collapse; margin-bottom: 6pt; }
th, td { border: 0.5pt solid #444; padding: 2pt 4pt; text-align: left; vertical-align: top; }
th { background: #eee; }
td.n { text-align: right; white-space: nowrap; }
td.k { white-space: nowrap; }
thead { display: table-header-group; }
tr { page-break-inside: avoid; break-inside: avoid; }
.none { color: #555; }
.note { font-size: 9pt; color: #333; margin-top: 12pt; }
@media print { th { -webkit-print-color-adjust: exact; print-color-adjust: exact; } }
"""


def _table(header: list[str], rows: list[list[str]], numeric_from: int | None,
           empty_text: str, nowrap: tuple[int, ...] = ()) -> str:
    if not rows:
        return f'<p class="none">{html.escape(empty_text)}</p>'
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for i, v in enumerate(row):
            cls = ' class="n"' if numeric_from is not None and i >= numeric_from else \
                ' class="k"' if i in nowrap else ""
            cells.append(f"<td{cls}>{html.escape(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<table><thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(body)
            + "\n</tbody></table>")


def to_html(pub: Publication) -> str:
    """The publication as a printable A4 page in Chinese (no script, every value escaped)."""
    rows = _rows(pub, "—")
    title = html.escape(pub.title)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="zh-CN"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title><style>{_CSS}</style></head><body>",
        f"<h1>{title}</h1>",
        f'<p class="period">{html.escape(pub.period)}</p>',
        "<h2>本周汇总</h2>",
        _table(TOTAL_HEADER, rows["totals"], 0, ""),
        "<h2>本周办结事项</h2>",
        _table(CLOSED_HEADER, rows["closed"], None, "本周无办结事项。", (0, 4, 5, 6, 7)),
        "<h2>各单位办理情况</h2>",
        _table(UNIT_HEADER, rows["units"], 1, "本周各单位无办理记录。"),
        f"<h2>{html.escape(_criticism_heading(pub))}</h2>",
        _table(CRITICISM_HEADER, rows["criticism"], 6, "本周无公开批评事项。", (0, 4, 5)),
        '<p class="note">说明：按时办结率＝按时办结数÷（办结数＋期末已过办理期限仍未办结数）；'
        "满意率＝满意数÷（满意数＋不满意数），未联系上的回访不计；"
        "回复率＝已答复来电人的办结数÷办结数；超期含期末仍未办结且已过办理期限的事项和本周超期办结的事项；"
        "超期天数按自然日计至周末；“—”表示本周无可计算的数据。"
        "本周报不含来电人任何个人信息。</p>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
