"""Deadlines in working days under China's official calendar.

Only the exceptions are stored (table ``calendar_days``): public holidays that fall on a
weekday, and the weekends that work instead (调休). Every other Monday-Friday works and
every other Saturday and Sunday rests. The exceptions come from the ``chinesecalendar``
package (which hard-codes the State Council's notices year by year) and, when a release
lags, from the notice itself entered by an admin as a small YAML file
(see ``parse_notice``). An admin's notice is the whole truth for its year: applying it
removes the package's rows of that year, and seeding never writes into a year the admin
has entered.

A deadline counts from the working day after receipt, in Asia/Shanghai: a matter received
at any time on day R with N working days is due at the end of the N-th working day after R.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg

from dialplan import yamlsrc
from dialplan.yamlsrc import Node

log = logging.getLogger(__name__)

TZ = ZoneInfo("Asia/Shanghai")
PACKAGE = "chinesecalendar"
ADMIN = "admin"

# chinesecalendar names holidays in English; the desk and the notices speak Chinese.
HOLIDAY_NAMES = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Tomb-sweeping Day": "清明节",
    "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "National Day": "国庆节",
    "Mid-autumn Festival": "中秋节",
    "Anti-Fascist 70th Day": "抗战胜利70周年纪念日",
}
WORKING_SUFFIX = "调休"  # a working weekend is named after its holiday: 春节调休
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# Longer than any holiday the State Council has announced: most likely a typo in a date.
MAX_HOLIDAY_DAYS = 31


@dataclass(frozen=True)
class CalendarDay:
    """One exception to the Monday-Friday rule."""

    day: date
    working: bool
    name: str = ""
    source: str = PACKAGE


class WorkCalendar:
    """Which days work, from the exceptions; every other Mon-Fri works, Sat/Sun rest."""

    def __init__(self, exceptions: Iterable[CalendarDay] = ()):
        self._days: dict[date, CalendarDay] = {}
        for d in exceptions:
            # The table has one row per day; given both (as in a test), the admin's wins.
            known = self._days.get(d.day)
            if known is None or known.source != ADMIN or d.source == ADMIN:
                self._days[d.day] = d
        self._years = {d.year for d in self._days}

    def is_working_day(self, d: date) -> bool:
        """Whether ``d`` is a working day."""
        known = self._days.get(d)
        if known is not None:
            return known.working
        return d.weekday() < 5

    def add_working_days(self, received: datetime, days: int) -> datetime:
        """The deadline of a matter received at ``received`` with ``days`` working days.

        Day 1 is the first working day strictly after the receipt's local date (Asia/Shanghai);
        the deadline is the end of the last one, i.e. the local midnight that starts the next
        calendar day, returned as an aware datetime in Asia/Shanghai.
        """
        if days < 1:
            raise ValueError(f"a deadline needs at least 1 working day, not {days}")
        d = _local_date(received)
        counted = 0
        while counted < days:
            d += timedelta(days=1)
            if self.is_working_day(d):
                counted += 1
        return start_of(d + timedelta(days=1))

    def working_days_late(self, due: datetime, now: datetime) -> int:
        """How many working days have begun since the deadline ``due``, up to ``now``.

        0 if not late; also 0 while the deadline has passed only over rest days (a deadline
        at the end of a Friday is 1 working day late on the Monday).
        """
        if now <= due:
            return 0
        late = 0
        d = _local_date(due)
        last = _local_date(now)
        while d <= last:
            start = start_of(d)
            if due <= start < now and self.is_working_day(d):
                late += 1
            d += timedelta(days=1)
        return late

    def covers(self, year: int) -> bool:
        """Whether any exception of ``year`` is known (a year without its notice is not)."""
        return year in self._years

    def exceptions(self, year: int) -> list[CalendarDay]:
        """The exception days of ``year``, in date order."""
        return sorted((d for d in self._days.values() if d.day.year == year),
                      key=lambda d: d.day)


def coverage_warning(cal: WorkCalendar, now: datetime) -> str | None:
    """A plain warning when next year's notice is still missing after 1 November.

    The State Council announces next year's holidays around November; until the notice is
    entered, deadlines running into next year would count its holidays as working days.
    """
    local = now.astimezone(TZ)
    nxt = local.year + 1
    if local.month < 11 or cal.covers(nxt):
        return None
    return (f"the working-day calendar has no holidays for {nxt} yet: deadlines that run "
            f"into {nxt} count every Monday-Friday as working. Update the chinesecalendar "
            f"package or enter the State Council's notice with `hotline calendar import FILE`")


def start_of(d: date) -> datetime:
    """The local midnight (Asia/Shanghai) that starts ``d``."""
    return datetime.combine(d, time(0), tzinfo=TZ)


def _local_date(moment: datetime) -> date:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a time without a timezone cannot be placed on the calendar")
    return moment.astimezone(TZ).date()


# -- the database ------------------------------------------------------------------------------


async def load(conn: asyncpg.Connection) -> WorkCalendar:
    """The calendar as stored in ``calendar_days``."""
    rows = await conn.fetch("SELECT day, working, name, source FROM calendar_days")
    return WorkCalendar(CalendarDay(r["day"], r["working"], r["name"], r["source"])
                        for r in rows)


def package_days() -> list[CalendarDay]:
    """Every exception the installed ``chinesecalendar`` knows, names in Chinese."""
    from chinese_calendar import constants

    out: list[CalendarDay] = []
    for d, name in constants.holidays.items():
        if d.weekday() < 5:  # a weekend holiday rests anyway
            out.append(CalendarDay(d, False, HOLIDAY_NAMES.get(name, name), PACKAGE))
    for d, name in constants.workdays.items():
        if d.weekday() >= 5:  # a weekday "workday" works anyway
            out.append(CalendarDay(d, True, HOLIDAY_NAMES.get(name, name) + WORKING_SUFFIX,
                                   PACKAGE))
    return sorted(out, key=lambda d: d.day)


async def seed_from_package(conn: asyncpg.Connection, now: datetime | None = None) -> int:
    """Store the package's exceptions; return how many rows were added.

    Admin rows, and every day of a year the admin entered a notice for, are left alone; a
    package row that a newer package changed is updated (not counted). Safe to run again.
    """
    days = package_days()
    at = now or datetime.now(UTC)
    rows = await conn.fetch(
        """INSERT INTO calendar_days AS c (day, working, name, source, set_at)
           SELECT u.day, u.working, u.name, 'chinesecalendar', $4
           FROM unnest($1::date[], $2::boolean[], $3::text[]) AS u(day, working, name)
           WHERE NOT EXISTS (
               SELECT 1 FROM calendar_days a
               WHERE a.source = 'admin'
                 AND a.day >= date_trunc('year', u.day)::date
                 AND a.day < (date_trunc('year', u.day) + interval '1 year')::date)
           ON CONFLICT (day) DO UPDATE
               SET working = excluded.working, name = excluded.name, set_at = excluded.set_at
               WHERE c.source = 'chinesecalendar'
                 AND (c.working, c.name) IS DISTINCT FROM (excluded.working, excluded.name)
           RETURNING (xmax = 0) AS added""",
        [d.day for d in days], [d.working for d in days], [d.name for d in days], at)
    added = sum(1 for r in rows if r["added"])
    if added or rows:
        log.info("calendar: %d day(s) added, %d updated from %s", added, len(rows) - added,
                 PACKAGE)
    return added


async def apply_notice(conn: asyncpg.Connection, notice: Notice, by: int | None,
                       now: datetime) -> int:
    """Make ``notice`` the calendar of its year (rows with source 'admin'); return the rows.

    In one transaction: every row of that year (the admin's earlier entry and the package's)
    is replaced, since the notice is the whole truth for its year.
    """
    days = notice.days()
    first, last = date(notice.year, 1, 1), date(notice.year, 12, 31)
    async with conn.transaction():
        await conn.execute("DELETE FROM calendar_days WHERE day BETWEEN $1 AND $2", first, last)
        await conn.executemany(
            "INSERT INTO calendar_days (day, working, name, source, set_by, set_at) "
            "VALUES ($1, $2, $3, 'admin', $4, $5)",
            [(d.day, d.working, d.name, by, now) for d in days])
    log.info("calendar: the notice for %d entered (%d exception days)", notice.year, len(days))
    return len(days)


# -- the admin's entry of a State Council notice -------------------------------------------


class NoticeError(Exception):
    """Mistakes in a notice file; ``problems`` holds each as (file, line, sentence)."""

    def __init__(self, problems: list[tuple[str, int, str]]):
        self.problems = problems
        super().__init__("\n".join(f"{f}:{line}: {msg}" for f, line, msg in problems))


@dataclass(frozen=True)
class Holiday:
    """A holiday of the notice: every day from ``first`` to ``last`` rests."""

    name: str
    first: date
    last: date
    line: int = 0


@dataclass(frozen=True)
class WorkingWeekend:
    """A Saturday or Sunday the notice makes a working day (调休)."""

    day: date
    name: str
    line: int = 0


@dataclass(frozen=True)
class Notice:
    """A State Council notice of one year's holidays, as an admin entered it."""

    year: int
    title: str
    holidays: tuple[Holiday, ...]
    working_days: tuple[WorkingWeekend, ...]
    source: str = ""

    def days(self) -> list[CalendarDay]:
        """The exceptions it makes: its weekday holidays and its working weekends."""
        out = [CalendarDay(h.first + timedelta(days=i), False, h.name, ADMIN)
               for h in self.holidays for i in range((h.last - h.first).days + 1)
               if (h.first + timedelta(days=i)).weekday() < 5]
        out += [CalendarDay(w.day, True, w.name, ADMIN) for w in self.working_days]
        return sorted(out, key=lambda d: d.day)


_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")


class _Checker(yamlsrc.Checker):
    def text(self, node: Node | None, where: str) -> str | None:
        if node is None:
            return None
        if not isinstance(node.value, str) or not node.value.strip():
            self.err(node.line, f"{where} must be a non-empty text")
            return None
        return node.value.strip()

    def day(self, node: Node | None, where: str, year: int | None) -> date | None:
        if node is None:
            return None
        m = _DATE.match(node.value) if isinstance(node.value, str) else None
        if m is None:
            self.err(node.line, f"{where} must be a date written YYYY-MM-DD, "
                                f"not '{node.value or ''}'")
            return None
        try:
            d = date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            self.err(node.line, f"{where} {node.value} is not a real date")
            return None
        if year is not None and d.year != year:
            self.err(node.line, f"{where} {d} is not in {year}, the year of the notice")
            return None
        return d

    def items(self, node: Node | None, where: str) -> list[Node]:
        if node is None or node.value is None:
            return []
        if not isinstance(node.value, list):
            self.err(node.line, f"{where} must be a list")
            return []
        return list(node.value)


def parse_notice(path_or_text: str | Path, filename: str | None = None) -> Notice:
    """Read and check an admin's notice file (a Path, a path ending in .yaml/.yml, or text).

    Raise NoticeError listing every mistake as ``file:line: sentence``.
    """
    if isinstance(path_or_text, Path) or (
            "\n" not in path_or_text and path_or_text.endswith((".yaml", ".yml"))):
        p = Path(path_or_text)
        name = filename or str(p)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as e:
            raise NoticeError([(name, 0, f"cannot read the file: {e.strerror}")]) from None
        except UnicodeDecodeError:
            raise NoticeError([(name, 0, "the file is not UTF-8 text")]) from None
    else:
        text, name = path_or_text, filename or "<notice>"
    try:
        # Scalars kept as text: YAML would turn 2027-02-30 into an exception, not a mistake.
        tree = yamlsrc.compose(text, name, typed=False)
    except yamlsrc.YamlProblems as e:
        raise NoticeError(e.problems) from None
    c = _Checker(name)
    notice = _validate(tree, c, name)
    if c.problems or notice is None:
        raise NoticeError(sorted(c.problems, key=lambda p: p[1]))
    return notice


def _validate(tree: Node, c: _Checker, source: str) -> Notice | None:
    if not c.mapping(tree, "the notice", {"year", "notice", "holidays", "working_days"},
                     {"year", "holidays"}):
        return None
    top: dict[str, Node] = tree.value
    year: int | None = None
    y = top.get("year")
    if y is not None:
        if isinstance(y.value, str) and y.value.isdigit() and 2000 <= int(y.value) <= 2100:
            year = int(y.value)
        else:
            c.err(y.line, f"year must be a year such as 2027, not '{y.value or ''}'")
    title = c.text(top.get("notice"), "notice") or ""

    holidays: list[Holiday] = []
    rest: dict[date, Holiday] = {}
    hol_node = top.get("holidays")
    if hol_node is not None and hol_node.value in (None, []):
        c.err(hol_node.line, "holidays is empty: a notice names at least one holiday")
    for i, item in enumerate(c.items(hol_node, "holidays"), 1):
        where = f"holiday {i}"
        if not c.mapping(item, where, {"name", "from", "to"}, {"name", "from"}):
            continue
        f: dict[str, Node] = item.value
        if "name" in f and isinstance(f["name"].value, str) and f["name"].value.strip():
            where = f"holiday {i} ({f['name'].value.strip()})"
        name = c.text(f.get("name"), f"{where}: name")
        first = c.day(f.get("from"), f"{where}: from", year)
        last = c.day(f.get("to"), f"{where}: to", year) if "to" in f else first
        if name is None or first is None or last is None:
            continue
        if first > last:
            c.err(f["to"].line, f"{name}: 'from' {first} is after 'to' {last}")
            continue
        if (last - first).days + 1 > MAX_HOLIDAY_DAYS:
            c.err(f["to"].line, f"{name} would last {(last - first).days + 1} days, longer "
                                "than any official holiday: check the dates")
            continue
        h = Holiday(name, first, last, item.line)
        for d in _span(first, last):
            other = rest.get(d)
            if other is not None:
                c.err(item.line, f"{name} and {other.name} (line {other.line}) both "
                                 f"include {d}")
                break
            rest[d] = h
        holidays.append(h)

    working: list[WorkingWeekend] = []
    seen: dict[date, int] = {}
    for i, item in enumerate(c.items(top.get("working_days"), "working_days"), 1):
        where = f"working day {i}"
        if not c.mapping(item, where, {"date", "name"}, {"date"}):
            continue
        f = item.value
        day = c.day(f.get("date"), f"{where}: date", year)
        name = c.text(f.get("name"), f"{where}: name") if "name" in f else WORKING_SUFFIX
        if day is None or name is None:
            continue
        line = f["date"].line
        if day.weekday() < 5:
            c.err(line, f"{day} is a {WEEKDAYS[day.weekday()]}, which works anyway: a working day "
                        "of the notice must be a Saturday or Sunday")
        elif day in rest:
            h = rest[day]
            c.err(line, f"{day} is both a working day and part of {h.name} (line {h.line})")
        elif day in seen:
            c.err(line, f"{day} is listed twice as a working day (also line {seen[day]})")
        else:
            seen[day] = line
            working.append(WorkingWeekend(day, name, item.line))
    if year is None:
        return None
    return Notice(year, title, tuple(holidays), tuple(working), source)


def _span(first: date, last: date) -> Iterator[date]:
    d = first
    while d <= last:
        yield d
        d += timedelta(days=1)
