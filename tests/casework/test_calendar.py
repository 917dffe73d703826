"""Deadlines in working days on China's official calendar: the package's holidays, an
admin's State Council notice, and the counting from the working day after receipt."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casework import calendar
from casework.calendar import TZ, CalendarDay, WorkCalendar
from hotline import cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "calendar" / "2027.example.yaml"
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=TZ)


def at(y: int, m: int, d: int, hh: int = 0, mm: int = 0, tz: ZoneInfo = TZ) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=tz)


def end_of(y: int, m: int, d: int) -> datetime:
    """The end of a working day: the local midnight that starts the next day."""
    return at(y, m, d) + timedelta(days=1)


@pytest.fixture
async def seeded(conn: asyncpg.Connection) -> WorkCalendar:
    """The calendar as the hotline has it after seeding from the package."""
    await calendar.seed_from_package(conn)
    return await calendar.load(conn)


# -- the 2026 Spring Festival (Feb 15-23 rest; Sat Feb 14 and Sat Feb 28 work) -------------


async def test_a_written_assignment_before_spring_festival_is_due_on_2_march(
        seeded: WorkCalendar) -> None:
    # Feb 14 (working Saturday), 24, 25, 26, 27, 28 (working Saturday), Mar 2.
    due = seeded.add_working_days(at(2026, 2, 13, 10), 7)
    assert due == end_of(2026, 3, 2)
    assert due.tzinfo == TZ and due.isoformat() == "2026-03-03T00:00:00+08:00"


async def test_a_phone_assignment_before_spring_festival_is_due_on_25_february(
        seeded: WorkCalendar) -> None:
    assert seeded.add_working_days(at(2026, 2, 13, 10), 3) == end_of(2026, 2, 25)
    # Received late in the evening: still Feb 13, the same deadline.
    assert seeded.add_working_days(at(2026, 2, 13, 23, 59), 3) == end_of(2026, 2, 25)


async def test_received_on_the_working_saturday_counts_from_24_february(
        seeded: WorkCalendar) -> None:
    assert seeded.add_working_days(at(2026, 2, 14, 9), 1) == end_of(2026, 2, 24)
    assert seeded.add_working_days(at(2026, 2, 14, 9), 3) == end_of(2026, 2, 26)
    # 20:30 UTC on Feb 13 is already Feb 14 in Beijing: the receipt's day is Beijing's.
    utc = at(2026, 2, 13, 20, 30, tz=ZoneInfo("UTC"))
    assert seeded.add_working_days(utc, 1) == end_of(2026, 2, 24)
    ny = at(2026, 2, 13, 8, 0, tz=ZoneInfo("America/New_York"))  # 21:00 in Beijing
    assert seeded.add_working_days(ny, 1) == end_of(2026, 2, 14)


async def test_national_day_2026(seeded: WorkCalendar) -> None:
    # Oct 1-7 rest; Sun Sep 20 and Sat Oct 10 work.
    assert not any(seeded.is_working_day(date(2026, 10, d)) for d in range(1, 8))
    assert seeded.is_working_day(date(2026, 9, 20)) and seeded.is_working_day(date(2026, 10, 10))
    assert not seeded.is_working_day(date(2026, 10, 11))
    # Oct 8, 9, 10, 12, 13, 14, 15.
    assert seeded.add_working_days(at(2026, 9, 30, 16), 7) == end_of(2026, 10, 15)
    # Fri Sep 18 by phone: Sun Sep 20, Mon 21, Tue 22.
    assert seeded.add_working_days(at(2026, 9, 18, 11), 3) == end_of(2026, 9, 22)


def test_every_other_weekday_works_and_every_other_weekend_rests() -> None:
    cal = WorkCalendar()
    assert cal.is_working_day(date(2026, 3, 6))  # a Friday
    assert not cal.is_working_day(date(2026, 3, 7))  # a Saturday
    assert cal.add_working_days(at(2026, 3, 6, 17), 1) == end_of(2026, 3, 9)
    with pytest.raises(ValueError, match="timezone"):
        cal.add_working_days(datetime(2026, 3, 6, 17), 1)
    with pytest.raises(ValueError, match="at least 1"):
        cal.add_working_days(at(2026, 3, 6, 17), 0)


# -- how late ------------------------------------------------------------------------------


async def test_working_days_late(seeded: WorkCalendar) -> None:
    due = end_of(2026, 2, 13)  # a Friday; the next day is a working Saturday
    late = seeded.working_days_late
    assert late(due, at(2026, 2, 13, 18)) == 0
    assert late(due, due) == 0
    assert late(due, at(2026, 2, 14, 9)) == 1
    assert late(due, at(2026, 2, 23, 23)) == 1  # the Spring Festival does not count
    assert late(due, at(2026, 2, 24, 8)) == 2
    assert late(due, at(2026, 3, 2, 8)) == 7
    # An ordinary Friday deadline: late over the weekend, 1 working day on the Monday.
    due = end_of(2026, 3, 6)
    assert late(due, at(2026, 3, 8, 12)) == 0
    assert late(due, at(2026, 3, 9, 0, 1)) == 1
    assert late(due, at(2026, 3, 9, 0, 1, tz=ZoneInfo("UTC"))) == 1  # 08:01 in Beijing


# -- seeding from the package ----------------------------------------------------------------


async def test_seeding_stores_only_the_exceptions_with_chinese_names(
        conn: asyncpg.Connection) -> None:
    added = await calendar.seed_from_package(conn)
    rows = {r["day"]: r for r in await conn.fetch("SELECT * FROM calendar_days")}
    assert added == len(rows) > 100
    assert (rows[date(2026, 2, 14)]["working"], rows[date(2026, 2, 14)]["name"]) == (
        True, "春节调休")
    assert (rows[date(2026, 2, 16)]["working"], rows[date(2026, 2, 16)]["name"]) == (
        False, "春节")
    assert date(2026, 2, 15) not in rows  # a Sunday of the holiday rests anyway
    assert {rows[date(2026, m, d)]["name"] for m, d in [(1, 1), (4, 6), (5, 1), (6, 19),
                                                        (9, 25), (10, 1)]} == {
        "元旦", "清明节", "劳动节", "端午节", "中秋节", "国庆节"}
    assert all(r["source"] == "chinesecalendar" for r in rows.values())
    assert all(r["working"] == (r["day"].weekday() >= 5) for r in rows.values())


async def test_seeding_twice_adds_nothing(conn: asyncpg.Connection) -> None:
    assert await calendar.seed_from_package(conn) > 0
    count = await conn.fetchval("SELECT count(*) FROM calendar_days")
    assert await calendar.seed_from_package(conn) == 0
    assert await conn.fetchval("SELECT count(*) FROM calendar_days") == count


# -- the admin's notice ------------------------------------------------------------------------

# A made-up correction of 2026: Feb 14 rests after all and Feb 28 is not mentioned.
NOTICE_2026 = """\
year: 2026
notice: 国务院办公厅关于2026年部分节假日安排的通知（测试）
holidays:
  - {name: 春节, from: 2026-02-14, to: 2026-02-22}
  - {name: 国庆节, from: 2026-10-01, to: 2026-10-07}
working_days:
  - {date: 2026-02-28, name: 春节调休}
"""


async def test_an_admin_notice_overrides_the_package_and_seeding_leaves_it(
        conn: asyncpg.Connection) -> None:
    await calendar.seed_from_package(conn)
    notice = calendar.parse_notice(NOTICE_2026)
    written = await calendar.apply_notice(conn, notice, None, NOW)
    # Feb 16-20 (Mon-Fri) and Oct 1, 2, 5, 6, 7 rest; Feb 28 works.
    assert written == 11
    cal = await calendar.load(conn)
    assert not cal.is_working_day(date(2026, 2, 14))  # the package said it works
    assert cal.is_working_day(date(2026, 2, 23))  # the package said it rests
    assert not cal.is_working_day(date(2026, 9, 20))  # a package-only working Sunday: gone
    assert cal.is_working_day(date(2026, 2, 28))
    assert not cal.is_working_day(date(2025, 10, 1))  # other years keep the package's days
    assert cal.add_working_days(at(2026, 2, 13, 10), 1) == end_of(2026, 2, 23)
    rows = await conn.fetch(
        "SELECT source, set_by, set_at FROM calendar_days WHERE extract(year FROM day) = 2026")
    assert {(r["source"], r["set_by"], r["set_at"]) for r in rows} == {("admin", None, NOW)}
    # Seeding again (as at every start) neither overwrites the notice nor adds to its year.
    assert await calendar.seed_from_package(conn) == 0
    assert (await calendar.load(conn)).exceptions(2026) == cal.exceptions(2026)


async def test_a_second_notice_of_the_year_replaces_the_first(conn: asyncpg.Connection) -> None:
    await calendar.apply_notice(conn, calendar.parse_notice(NOTICE_2026), None, NOW)
    fixed = "\n".join(line for line in NOTICE_2026.splitlines() if "国庆节" not in line)
    assert await calendar.apply_notice(conn, calendar.parse_notice(fixed), None, NOW) == 6
    cal = await calendar.load(conn)
    assert cal.is_working_day(date(2026, 10, 1))
    assert [d.day for d in cal.exceptions(2026)] == [
        date(2026, 2, d) for d in (16, 17, 18, 19, 20, 28)]


async def test_the_example_notice_covers_2027_once_imported(conn: asyncpg.Connection) -> None:
    notice = calendar.parse_notice(EXAMPLE)
    assert notice.year == 2027 and "示例" in notice.title
    assert not (await calendar.load(conn)).covers(2027)
    await calendar.apply_notice(conn, notice, None, NOW)
    cal = await calendar.load(conn)
    assert cal.covers(2027)
    assert cal.is_working_day(date(2027, 2, 14)) and not cal.is_working_day(date(2027, 2, 8))


def test_covers_and_the_november_warning() -> None:
    cal = WorkCalendar([CalendarDay(date(2026, 10, 1), False, "国庆节")])
    assert cal.covers(2026) and not cal.covers(2027)
    assert calendar.coverage_warning(cal, at(2026, 10, 31, 23)) is None
    warning = calendar.coverage_warning(cal, at(2026, 11, 1, 8))
    assert warning is not None and "2027" in warning
    # 1 November in Beijing is still 31 October in UTC.
    assert calendar.coverage_warning(cal, datetime(2026, 10, 31, 17, tzinfo=UTC)) is not None
    covered = WorkCalendar([*cal.exceptions(2026), CalendarDay(date(2027, 1, 1), False, "元旦")])
    assert calendar.coverage_warning(covered, at(2026, 12, 1)) is None


def test_an_admin_day_wins_over_a_package_day_given_both() -> None:
    day = date(2026, 2, 14)
    for order in ([CalendarDay(day, True, "春节调休"), CalendarDay(day, False, "春节", "admin")],
                  [CalendarDay(day, False, "春节", "admin"), CalendarDay(day, True, "春节调休")]):
        assert not WorkCalendar(order).is_working_day(day)


# -- mistakes in a notice file ---------------------------------------------------------------

BAD = """\
year: 2027
notic: 通知
holidays:
  - {name: 元旦, from: 2027-01-01, to: 2027-01-03}
  - {name: 春节, from: 2027-02-06, to: 2027-02-30}
  - {name: 清明节, from: 2027-04-05, to: 2027-04-03}
  - {name: 劳动节, from: 2026-05-01}
  - {name: 端午节, from: 2027-6-9, to: 2027-12-09}
  - {name: 国庆节, from: 2027-10-01, to: 2027-10-07}
  - {name: 中秋节, from: 2027-10-07}
  - {from: 2027-11-01}
working_days:
  - {date: 2027-02-15, name: 春节调休}
  - {date: 2027-01-02}
  - {date: 2027-09-26, name: 国庆节调休}
  - {date: 2027-09-26, name: 国庆节调休}
  - {date: tomorrow}
"""


def test_each_mistake_of_a_notice_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "2027.yaml"
    path.write_text(BAD, encoding="utf-8")
    with pytest.raises(calendar.NoticeError) as caught:
        calendar.parse_notice(path)
    f = str(path)
    assert caught.value.problems == [
        (f, 2, "unknown key 'notic' in the notice (did you mean 'notice'?)"),
        (f, 5, "holiday 2 (春节): to 2027-02-30 is not a real date"),
        (f, 6, "清明节: 'from' 2027-04-05 is after 'to' 2027-04-03"),
        (f, 7, "holiday 4 (劳动节): from 2026-05-01 is not in 2027, the year of the notice"),
        (f, 8, "端午节 would last 184 days, longer than any official holiday: check the dates"),
        (f, 10, "中秋节 and 国庆节 (line 9) both include 2027-10-07"),
        (f, 11, "holiday 8 is missing 'name'"),
        (f, 13, "2027-02-15 is a Monday, which works anyway: a working day of the notice "
                "must be a Saturday or Sunday"),
        (f, 14, "2027-01-02 is both a working day and part of 元旦 (line 4)"),
        (f, 16, "2027-09-26 is listed twice as a working day (also line 15)"),
        (f, 17, "working day 5: date must be a date written YYYY-MM-DD, not 'tomorrow'"),
    ]
    assert str(caught.value).splitlines()[0] == (
        f"{f}:2: unknown key 'notic' in the notice (did you mean 'notice'?)")


@pytest.mark.parametrize(("text", "line", "message"), [
    ("", 1, "the file is empty"),
    ("year: 2027\nholidays: [\n", 3, "this is not valid YAML"),
    ("year: 2027\nyear: 2028\nholidays: []\n", 2, "the key 'year' appears twice"),
    ("year: 2027\nholidays: []\n", 2, "holidays is empty"),
    ("year: 2027\n", 1, "the notice is missing 'holidays'"),
    ("year: next\nholidays:\n  - {name: 元旦, from: 2027-01-01}\n", 1,
     "year must be a year such as 2027, not 'next'"),
    ("- 2027\n", 1, "the notice must be a mapping"),
])
def test_a_broken_notice_is_a_plain_sentence(text: str, line: int, message: str) -> None:
    with pytest.raises(calendar.NoticeError) as caught:
        calendar.parse_notice(text, filename="n.yaml")
    file, got_line, got = caught.value.problems[0]
    assert (file, got_line) == ("n.yaml", line) and got.startswith(message)


def test_a_missing_file_is_a_plain_sentence(tmp_path: Path) -> None:
    with pytest.raises(calendar.NoticeError, match="cannot read the file"):
        calendar.parse_notice(str(tmp_path / "2027.yaml"))


# -- the property ----------------------------------------------------------------------------

PACKAGE_CALENDAR = WorkCalendar(calendar.package_days())
ZONES = [TZ, ZoneInfo("UTC"), ZoneInfo("America/New_York"), ZoneInfo("Pacific/Kiritimati")]


@settings(max_examples=300, deadline=None)
@given(received=st.datetimes(min_value=datetime(2004, 1, 1), max_value=datetime(2027, 12, 31),
                             timezones=st.sampled_from(ZONES)),
       n=st.integers(min_value=1, max_value=40), m=st.integers(min_value=1, max_value=10))
def test_a_deadline_is_the_end_of_the_nth_working_day_after_receipt(
        received: datetime, n: int, m: int) -> None:
    cal = PACKAGE_CALENDAR
    due = cal.add_working_days(received, n)
    assert due.tzinfo == TZ and due.time() == datetime.min.time()
    last = due.date() - timedelta(days=1)
    assert cal.is_working_day(last)
    first = received.astimezone(TZ).date() + timedelta(days=1)
    between = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    assert sum(cal.is_working_day(d) for d in between) == n
    # At the end of the m-th working day after the deadline, it is m working days late.
    later = cal.add_working_days(due - timedelta(seconds=1), m)
    assert cal.working_days_late(due, later) == m
    assert cal.working_days_late(due, due) == 0


# -- the command line --------------------------------------------------------------------------


def _clear(dsn: str) -> None:
    async def run() -> None:
        c = await asyncpg.connect(dsn)
        try:
            await c.execute("TRUNCATE calendar_days")
        finally:
            await c.close()

    asyncio.run(run())


def test_cli_import_show_and_seed(pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DATABASE_URL", pg_dsn)
    _clear(pg_dsn)
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD, encoding="utf-8")
    assert cli.main(["calendar", "import", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:5: holiday 2 (春节): to 2027-02-30 is not a real date" in err
    assert "nothing was imported" in err
    assert cli.main(["calendar", "import", str(EXAMPLE)]) == 2
    assert "is an example" in capsys.readouterr().err

    assert cli.main(["calendar", "show", "2027"]) == 0
    assert "2027 is NOT covered" in capsys.readouterr().out
    good = tmp_path / "2027.yaml"
    good.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    assert cli.main(["calendar", "import", str(good)]) == 0
    assert "19 exception day(s)" in capsys.readouterr().out
    assert cli.main(["calendar", "show", "2027"]) == 0
    out = capsys.readouterr().out
    assert "2027-02-14  Sun  working  春节调休" in out and "(admin)" in out
    assert "2027 is covered" in out

    assert cli.main(["calendar", "seed"]) == 0
    assert capsys.readouterr().out.split()[0] != "0"
    assert cli.main(["calendar", "seed"]) == 0
    assert capsys.readouterr().out.startswith("0 day(s) added")
    _clear(pg_dsn)
