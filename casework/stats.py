"""Case figures by period, unit and category, and each unit's assessment score.

Every figure is computed from the workflow's rows (cases, assignments, urgings, revisits,
extensions) for a half-open period [start, end); the definitions are in docs/casework.md
("Figures and assessment"). Nothing here reads case_personal or cases.content.

A case's *lead assignment* as of `end` is its latest lead (主办) assignment made before
`end` that was neither withdrawn nor returned before `end`; its unit is the unit a closure,
an overdue case or a revisit is charged to, and its deadline (extended by an approved
extension) is the one on-time and overdue are judged against. A case with no lead
assignment row at all falls back to cases.lead_unit_id and cases.due_at.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import asyncpg

# Cases that are not counted anywhere: still being taken, not a case, or a repeat request
# merged into another case (the parent case carries the figures).
_EXCLUDED = "('intake', 'invalid', 'merged')"

# Per-case facts as of $2 (the end of the period). $1 is the start of the period;
# `period` only declares both parameters' type for queries that use just one.
FACTS_CTE = f"""
period AS (SELECT $1::timestamptz AS period_start, $2::timestamptz AS period_end),
lead AS (
    SELECT DISTINCT ON (a.case_id) a.case_id, a.id, a.unit_id, a.due_at, a.reported_at
    FROM assignments a
    WHERE a.role = 'lead' AND a.assigned_at < $2 AND a.status <> 'withdrawn'
      AND (a.returned_at IS NULL OR a.returned_at >= $2)
      AND NOT (a.status = 'returned' AND a.returned_at IS NULL)
    ORDER BY a.case_id, a.round DESC, a.assigned_at DESC, a.id DESC
), ext AS (
    SELECT assignment_id, max(new_due_at) AS new_due
    FROM extensions
    WHERE status = 'approved' AND new_due_at IS NOT NULL
      AND coalesce(decided_at, asked_at) < $2
    GROUP BY assignment_id
), facts AS (
    SELECT c.id, c.case_no, c.category, c.title, c.public_summary, c.replied,
           c.satisfaction,
           coalesce(c.received_at, c.created_at) AS received_at,
           c.closed_at,
           CASE WHEN l.id IS NOT NULL THEN l.unit_id
                WHEN NOT EXISTS (SELECT 1 FROM assignments x
                                 WHERE x.case_id = c.id AND x.role = 'lead')
                THEN c.lead_unit_id END AS unit_id,
           CASE WHEN l.id IS NOT NULL THEN greatest(l.due_at, e.new_due)
                ELSE c.due_at END AS due_at,
           CASE WHEN l.id IS NOT NULL THEN coalesce(l.reported_at, c.closed_at)
                ELSE coalesce(c.reported_at, c.closed_at) END AS done_at
    FROM cases c
    LEFT JOIN lead l ON l.case_id = c.id
    LEFT JOIN ext e ON e.assignment_id = l.id
    WHERE c.status NOT IN {_EXCLUDED}
)
"""

# The category tree in display order (each parent followed by its children, by sort then
# code at every level), with the parent's name: `ord` is the row's place.
CATEGORY_TREE_SQL = """
WITH RECURSIVE tree AS (
    SELECT k.code, ARRAY[lpad((k.sort + 1000000000)::text, 11, '0') || k.code] AS path
    FROM categories k WHERE k.parent IS NULL
    UNION ALL
    SELECT k.code, t.path || (lpad((k.sort + 1000000000)::text, 11, '0') || k.code)
    FROM categories k JOIN tree t ON k.parent = t.code
)
SELECT k.code, k.name, k.parent, k.gbt_code, k.active, p.name AS parent_name,
       row_number() OVER (ORDER BY t.path) AS ord
FROM categories k JOIN tree t ON t.code = k.code
LEFT JOIN categories p ON p.code = k.parent
"""

# On time: reported (or, with no report, closed) by the deadline; no deadline (urgent
# matters, "report as it develops") counts as on time.
_ON_TIME = "(f.due_at IS NULL OR f.done_at <= f.due_at)"
_CLOSED_IN = "(f.closed_at >= $1 AND f.closed_at < $2)"
# Open at the end of the period, past its deadline, and not reported by the deadline.
_OVERDUE_OPEN = """(f.received_at < $2 AND (f.closed_at IS NULL OR f.closed_at >= $2)
    AND f.due_at < $2 AND (f.done_at IS NULL OR f.done_at >= $2 OR f.done_at > f.due_at))"""


@dataclass(frozen=True, kw_only=True)
class Figures:
    """The counts of one unit or category over a period, and the rates made of them.

    A rate is None when its denominator is 0 (nothing to measure), never a division by 0.
    """

    received: int = 0
    assigned: int = 0
    closed: int = 0
    closed_on_time: int = 0
    closed_late: int = 0
    overdue_open: int = 0
    urgings: int = 0
    rehandlings: int = 0
    returns: int = 0
    revisits: int = 0
    satisfied: int = 0
    unsatisfied: int = 0
    replied: int = 0

    @property
    def overdue(self) -> int:
        """Open past the deadline at the end of the period, plus closed late in it."""
        return self.overdue_open + self.closed_late

    @property
    def on_time_rate(self) -> float | None:
        """按时办结率: closed on time / (closed + open past the deadline at the end): of the
        cases whose deadline the period had to meet, the share met."""
        return _rate(self.closed_on_time, self.closed + self.overdue_open)

    @property
    def satisfaction_rate(self) -> float | None:
        """满意率: satisfied / revisits that reached the caller (satisfied + unsatisfied)."""
        return _rate(self.satisfied, self.satisfied + self.unsatisfied)

    @property
    def reply_rate(self) -> float | None:
        """回复率: closed cases whose caller got a reply / closed."""
        return _rate(self.replied, self.closed)

    def any_activity(self) -> bool:
        """Whether any count is non-zero (a row worth showing in a publication)."""
        return any(getattr(self, f.name) for f in fields(Figures))


@dataclass(frozen=True, kw_only=True)
class UnitFigures(Figures):
    """Figures of one linkage unit."""

    unit_id: int
    unit_code: str
    unit_name: str
    level: int
    parent_id: int | None


@dataclass(frozen=True, kw_only=True)
class CategoryFigures(Figures):
    """Figures of one category (code None: cases with no category yet)."""

    code: str | None
    name: str
    parent: str | None


@dataclass(frozen=True)
class ClosedCase:
    """A case closed in a period, with only what may be published."""

    case_no: str
    title: str
    public_summary: str
    category_code: str | None
    category_name: str | None
    unit_name: str | None
    received_at: datetime
    closed_at: datetime
    due_at: datetime | None
    on_time: bool
    satisfaction: str | None
    replied: bool


@dataclass(frozen=True)
class UrgedCase:
    """A case open at a moment after being urged a number of times (public criticism)."""

    case_no: str
    title: str
    public_summary: str
    category_name: str | None
    unit_name: str | None
    received_at: datetime
    due_at: datetime | None
    urgings: int
    days_overdue: int


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def _check_period(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("the period's start and end must carry a time zone")
    if start >= end:
        raise ValueError("the period must start before it ends")


# Each query yields (key, count) rows; key is the unit id or the category code.
# Units: the lead unit for case-level counts, the assignment's or urging's own unit else.
_UNIT_QUERIES: dict[str, str] = {
    "received": f"""WITH {FACTS_CTE}
        SELECT x.unit_id AS key, count(DISTINCT x.case_id) AS n
        FROM (SELECT a.unit_id, a.case_id FROM assignments a WHERE a.assigned_at < $2
              UNION SELECT f.unit_id, f.id FROM facts f WHERE f.unit_id IS NOT NULL) x
        JOIN facts f ON f.id = x.case_id
        WHERE f.received_at >= $1 AND f.received_at < $2
        GROUP BY x.unit_id""",
    "assigned": f"""SELECT a.unit_id AS key, count(*) AS n FROM assignments a
        JOIN cases c ON c.id = a.case_id AND c.status NOT IN {_EXCLUDED}
        WHERE a.assigned_at >= $1 AND a.assigned_at < $2 GROUP BY a.unit_id""",
    "closed": f"""WITH {FACTS_CTE} SELECT f.unit_id AS key, count(*) AS n FROM facts f
        WHERE {_CLOSED_IN} AND f.unit_id IS NOT NULL GROUP BY f.unit_id""",
    "closed_on_time": f"""WITH {FACTS_CTE} SELECT f.unit_id AS key, count(*) AS n
        FROM facts f WHERE {_CLOSED_IN} AND {_ON_TIME} AND f.unit_id IS NOT NULL
        GROUP BY f.unit_id""",
    "replied": f"""WITH {FACTS_CTE} SELECT f.unit_id AS key, count(*) AS n FROM facts f
        WHERE {_CLOSED_IN} AND f.replied AND f.unit_id IS NOT NULL GROUP BY f.unit_id""",
    "overdue_open": f"""WITH {FACTS_CTE} SELECT f.unit_id AS key, count(*) AS n
        FROM facts f WHERE {_OVERDUE_OPEN} AND f.unit_id IS NOT NULL GROUP BY f.unit_id""",
    "urgings": f"""SELECT u.unit_id AS key, count(*) AS n FROM urgings u
        JOIN cases c ON c.id = u.case_id AND c.status NOT IN {_EXCLUDED}
        WHERE u.at >= $1 AND u.at < $2 GROUP BY u.unit_id""",
    "returns": f"""SELECT a.unit_id AS key, count(*) AS n FROM assignments a
        JOIN cases c ON c.id = a.case_id AND c.status NOT IN {_EXCLUDED}
        WHERE a.returned_at >= $1 AND a.returned_at < $2 GROUP BY a.unit_id""",
}

# A re-handling (重办): a new round whose previous round's lead unit had reported a result
# (the hotline rejected it at review, or the caller at the revisit). A new round after a
# return (改派) is not one: the returning lead reported nothing. Counted when the new
# round is assigned, charged to the unit whose result was rejected.
_REHANDLINGS = f"""
SELECT a.case_id, a.round, p.unit_id, c.category
FROM assignments a
JOIN cases c ON c.id = a.case_id AND c.status NOT IN {_EXCLUDED}
JOIN LATERAL (
    SELECT pa.unit_id, pa.reported_at FROM assignments pa
    WHERE pa.case_id = a.case_id AND pa.role = 'lead' AND pa.round < a.round
      AND pa.status <> 'withdrawn'
    ORDER BY pa.round DESC, pa.assigned_at DESC, pa.id DESC LIMIT 1) p ON true
WHERE a.role = 'lead' AND a.assigned_at >= $1 AND a.assigned_at < $2
  AND p.reported_at IS NOT NULL AND p.reported_at <= a.assigned_at
"""

# Revisits in the period, charged to the lead unit of the round revisited.
_REVISITS = f"""
WITH {FACTS_CTE}
SELECT r.outcome, c.category,
       coalesce((SELECT ra.unit_id FROM assignments ra
                 WHERE ra.case_id = r.case_id AND ra.role = 'lead' AND ra.round = r.round
                   AND ra.status NOT IN ('withdrawn', 'returned')
                 ORDER BY ra.assigned_at DESC, ra.id DESC LIMIT 1),
                f.unit_id) AS unit_id
FROM revisits r
JOIN cases c ON c.id = r.case_id AND c.status NOT IN {_EXCLUDED}
LEFT JOIN facts f ON f.id = r.case_id
WHERE r.at >= $1 AND r.at < $2
"""

_CATEGORY_QUERIES: dict[str, str] = {
    "received": f"""WITH {FACTS_CTE} SELECT f.category AS key, count(*) AS n FROM facts f
        WHERE f.received_at >= $1 AND f.received_at < $2 GROUP BY f.category""",
    "assigned": f"""SELECT c.category AS key, count(DISTINCT a.case_id) AS n
        FROM assignments a JOIN cases c ON c.id = a.case_id AND c.status NOT IN {_EXCLUDED}
        WHERE a.assigned_at >= $1 AND a.assigned_at < $2 GROUP BY c.category""",
    "closed": f"""WITH {FACTS_CTE} SELECT f.category AS key, count(*) AS n FROM facts f
        WHERE {_CLOSED_IN} GROUP BY f.category""",
    "closed_on_time": f"""WITH {FACTS_CTE} SELECT f.category AS key, count(*) AS n
        FROM facts f WHERE {_CLOSED_IN} AND {_ON_TIME} GROUP BY f.category""",
    "replied": f"""WITH {FACTS_CTE} SELECT f.category AS key, count(*) AS n FROM facts f
        WHERE {_CLOSED_IN} AND f.replied GROUP BY f.category""",
    "overdue_open": f"""WITH {FACTS_CTE} SELECT f.category AS key, count(*) AS n
        FROM facts f WHERE {_OVERDUE_OPEN} GROUP BY f.category""",
    "urgings": f"""SELECT c.category AS key, count(*) AS n FROM urgings u
        JOIN cases c ON c.id = u.case_id AND c.status NOT IN {_EXCLUDED}
        WHERE u.at >= $1 AND u.at < $2 GROUP BY c.category""",
    "returns": f"""SELECT c.category AS key, count(*) AS n FROM assignments a
        JOIN cases c ON c.id = a.case_id AND c.status NOT IN {_EXCLUDED}
        WHERE a.returned_at >= $1 AND a.returned_at < $2 GROUP BY c.category""",
}


async def _counts(conn: asyncpg.Connection, start: datetime, end: datetime,
                  queries: Mapping[str, str], key: str) -> dict[Any, dict[str, int]]:
    """Every count of every key ("unit_id" or "category") over the period."""
    out: dict[Any, dict[str, int]] = defaultdict(dict)
    for name, sql in queries.items():
        for r in await conn.fetch(sql, start, end):
            out[r["key"]][name] = r["n"]
    for r in await conn.fetch(_REHANDLINGS, start, end):
        counts = out[r[key]]
        counts["rehandlings"] = counts.get("rehandlings", 0) + 1
    for r in await conn.fetch(_REVISITS, start, end):
        counts = out[r[key]]
        counts["revisits"] = counts.get("revisits", 0) + 1
        if r["outcome"] in ("satisfied", "unsatisfied"):
            counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    for counts in out.values():
        counts["closed_late"] = counts.get("closed", 0) - counts.get("closed_on_time", 0)
    return out


async def unit_figures(conn: asyncpg.Connection, start: datetime, end: datetime,
                       unit_id: int | None = None) -> list[UnitFigures]:
    """Figures per linkage unit over [start, end): one unit, or every active unit and any
    inactive one with activity in the period, ordered by level and code.

    Raises ValueError for a naive or empty period, or a unit that does not exist.
    """
    _check_period(start, end)
    counts = await _counts(conn, start, end, _UNIT_QUERIES, "unit_id")
    if unit_id is not None:
        units = await conn.fetch("SELECT * FROM units WHERE id = $1", unit_id)
        if not units:
            raise ValueError(f"there is no unit with id {unit_id}")
    else:
        units = await conn.fetch(
            "SELECT * FROM units WHERE active OR id = any($1::int[]) ORDER BY level, code",
            [k for k in counts if k is not None])
    return [UnitFigures(unit_id=u["id"], unit_code=u["code"], unit_name=u["name"],
                        level=u["level"], parent_id=u["parent_id"],
                        **counts.get(u["id"], {})) for u in units]


async def category_figures(conn: asyncpg.Connection, start: datetime,
                           end: datetime) -> list[CategoryFigures]:
    """Figures per category (as recorded on the case) over [start, end), for every
    category with activity in the period, in the tree's order (parents before their
    children); cases with no category
    yet come last under code None.

    Raises ValueError for a naive or empty period.
    """
    _check_period(start, end)
    counts = await _counts(conn, start, end, _CATEGORY_QUERIES, "category")
    rows = await conn.fetch(
        f"SELECT * FROM ({CATEGORY_TREE_SQL}) x WHERE code = any($1::text[]) ORDER BY ord",
        [k for k in counts if k is not None])
    out = [CategoryFigures(code=r["code"], name=r["name"], parent=r["parent"],
                           **counts[r["code"]]) for r in rows]
    known = {r["code"] for r in rows}
    # A code no longer in the tree still shows, under its code, rather than vanish.
    for code in sorted(k for k in counts if k is not None and k not in known):
        out.append(CategoryFigures(code=code, name=code, parent=None, **counts[code]))
    if None in counts:
        out.append(CategoryFigures(code=None, name="未分类", parent=None, **counts[None]))
    return out


async def closed_cases(conn: asyncpg.Connection, start: datetime,
                       end: datetime) -> list[ClosedCase]:
    """The cases closed in [start, end), oldest closure first, publishable fields only."""
    _check_period(start, end)
    rows = await conn.fetch(
        f"""WITH {FACTS_CTE}
            SELECT f.*, {_ON_TIME} AS on_time, k.name AS category_name,
                   u.name AS unit_name
            FROM facts f
            LEFT JOIN categories k ON k.code = f.category
            LEFT JOIN units u ON u.id = f.unit_id
            WHERE {_CLOSED_IN} ORDER BY f.closed_at, f.case_no""", start, end)
    return [ClosedCase(case_no=r["case_no"], title=r["title"],
                       public_summary=r["public_summary"], category_code=r["category"],
                       category_name=r["category_name"], unit_name=r["unit_name"],
                       received_at=r["received_at"], closed_at=r["closed_at"],
                       due_at=r["due_at"], on_time=r["on_time"],
                       satisfaction=r["satisfaction"], replied=r["replied"])
            for r in rows]


async def urged_open_cases(conn: asyncpg.Connection, at: datetime,
                           min_urgings: int = 2) -> list[UrgedCase]:
    """Cases still not handled at `at` (not closed, and no result reported by the current
    lead unit) that had been urged at least `min_urgings` times before it (urgings rows,
    so a past week reads as it was), most urged first.

    days_overdue counts calendar days from the deadline to `at` (0 when not yet due).
    """
    if at.tzinfo is None:
        raise ValueError("the moment must carry a time zone")
    if min_urgings < 1:
        raise ValueError("the number of urgings must be at least 1")
    rows = await conn.fetch(
        f"""WITH {FACTS_CTE}, urged AS (
                SELECT case_id, count(*) AS n FROM urgings WHERE at < $2 GROUP BY case_id)
            SELECT f.*, g.n AS urgings, k.name AS category_name, u.name AS unit_name
            FROM facts f JOIN urged g ON g.case_id = f.id
            LEFT JOIN categories k ON k.code = f.category
            LEFT JOIN units u ON u.id = f.unit_id
            WHERE g.n >= $3 AND f.received_at < $1
              AND (f.closed_at IS NULL OR f.closed_at >= $2)
              AND (f.done_at IS NULL OR f.done_at >= $2)
            ORDER BY g.n DESC, f.due_at NULLS LAST, f.case_no""",
        at, at, min_urgings)
    return [UrgedCase(case_no=r["case_no"], title=r["title"],
                      public_summary=r["public_summary"], category_name=r["category_name"],
                      unit_name=r["unit_name"], received_at=r["received_at"],
                      due_at=r["due_at"], urgings=r["urgings"],
                      days_overdue=max(0, (at - r["due_at"]).days) if r["due_at"] else 0)
            for r in rows]


# -- assessment ------------------------------------------------------------------------


@dataclass(frozen=True)
class AssessmentFormula:
    """How a unit's assessment score (考核得分, 0-100) is made of its figures.

    score = W x (sum of weight x rate over the rates that can be measured)
              / (sum of those weights)
            - urging_penalty x urgings - rehandling_penalty x re-handlings
            - return_penalty x returns - overdue_penalty x overdue
    clamped to 0..100, where W is the sum of all three weights (100 by default). A rate
    with no denominator (no closures, no revisit reaching the caller) leaves the score to
    the rates that can be measured; with none, the base is W.
    """

    on_time_weight: float = 40.0
    satisfaction_weight: float = 40.0
    reply_weight: float = 20.0
    urging_penalty: float = 1.0
    rehandling_penalty: float = 2.0
    return_penalty: float = 1.0
    overdue_penalty: float = 2.0

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any]) -> AssessmentFormula:
        """A formula from a mapping of some of its field names to numbers (others keep
        their defaults); raises ValueError in plain words for an unknown key, a value that
        is not a finite number >= 0, or weights that add up to 0."""
        if not isinstance(d, Mapping):
            raise ValueError("the assessment formula must be a mapping of names to numbers")
        known = [f.name for f in fields(cls)]
        values: dict[str, float] = {}
        for key, value in d.items():
            if key not in known:
                raise ValueError(f"unknown assessment setting '{key}'; known settings: "
                                 + ", ".join(known))
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value):
                raise ValueError(f"the assessment setting '{key}' must be a number, "
                                 f"not {value!r}")
            if value < 0:
                raise ValueError(f"the assessment setting '{key}' cannot be negative")
            values[key] = float(value)
        formula = cls(**values)
        if formula.total_weight <= 0:
            raise ValueError("the assessment weights add up to 0; give at least one weight")
        return formula

    @property
    def total_weight(self) -> float:
        """The score of a unit with every rate at 100 % and no penalty (before clamping)."""
        return self.on_time_weight + self.satisfaction_weight + self.reply_weight


def assessment_score(fig: Figures, formula: AssessmentFormula | None = None) -> float:
    """A unit's assessment score from its figures, clamped to 0..100 (see
    AssessmentFormula for the formula)."""
    f = formula or AssessmentFormula()
    measured = [(w, r) for w, r in ((f.on_time_weight, fig.on_time_rate),
                                    (f.satisfaction_weight, fig.satisfaction_rate),
                                    (f.reply_weight, fig.reply_rate))
                if r is not None and w > 0]
    weights = sum(w for w, _ in measured)
    base = f.total_weight * sum(w * r for w, r in measured) / weights if weights \
        else f.total_weight
    score = (base - f.urging_penalty * fig.urgings - f.rehandling_penalty * fig.rehandlings
             - f.return_penalty * fig.returns - f.overdue_penalty * fig.overdue)
    return min(100.0, max(0.0, score))
