"""The directory of network linkage units (网络联动单位), three levels, and their handlers.

Level 1: county and district governments, municipal departments, public utilities (power,
water, gas, heating, transport). Levels 2 and 3: townships and sub-district offices, county
departments, and the enterprises, stations and teams under a linkage unit. Each unit has a
duty phone, a responsible leader, a department and a contact person, and handler accounts
(desk logins with role 'handler') that accept and answer the cases sent to it.

The directory is kept in a file the admin edits (`config/units.yaml`, or a CSV exported
from a spreadsheet) and imported with `hotline units import FILE`; single units are edited
at the desk with `update`. A unit is never deleted (cases reference it): a unit missing
from an imported file is deactivated.

YAML::

    units:
      - code: wancheng                 # letters, digits, - _ . (unique, never reused)
        name: 宛城区人民政府
        level: 1                       # 1 has no parent; 2 and 3 name their parent
        kind: government               # see KINDS
        duty_phone: 0377-6xxxxxx
        leader: ...
        department: ...
        contact_person: ...
        contact_phone: ...
        handlers:
          - {login: wc_handler, name: 宛城区热线办, initial_password: hotline}
      - code: wancheng-xinhua
        name: 新华街道办事处
        parent: wancheng
        level: 2

CSV (first row the header; UTF-8, as Excel's "CSV UTF-8" saves it)::

    code,name,parent_code,level,kind,duty_phone,leader,department,contact_person,contact_phone

A CSV carries no accounts; handlers come from a second CSV (`parse_handlers_csv`) with the
header ``unit_code,login,name,initial_password``. Imported without one, the handler
accounts already in the database are left as they are.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from db import agents as agent_store
from dialplan import yamlsrc
from dialplan.yamlsrc import Node

CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$")
LOGIN = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
# Fixed lines with an area code (0377-6xxxxxx, 0377 6xxxxxx), service numbers (95598,
# 12345), mobiles, each optionally with an extension (-801).
PHONE = re.compile(r"^(?:0\d{2,3}[- ]?\d{7,8}|[1-9]\d{2,11})(?:-\d{1,6})?$")
KINDS = {
    "government": "人民政府",
    "department": "职能部门",
    "utility": "公用事业单位",
    "township": "乡镇、街道",
    "community": "社区、村",
    "enterprise": "企业",
    "station": "站所、队",
}
FIELDS = ("name", "kind", "duty_phone", "leader", "department", "contact_person",
          "contact_phone")
CSV_COLUMNS = ("code", "name", "parent_code", "level", "kind", "duty_phone", "leader",
               "department", "contact_person", "contact_phone")
HANDLER_COLUMNS = ("unit_code", "login", "name", "initial_password")


class FileProblems(ValueError):
    """Mistakes in a file; ``problems`` holds each as (file, line, sentence)."""

    def __init__(self, problems: list[tuple[str, int, str]]):
        self.problems = sorted(problems, key=lambda p: (p[0], p[1]))
        super().__init__("\n".join(f"{f}:{line}: {msg}" for f, line, msg in self.problems))


class UnitError(ValueError):
    """An edit the directory refuses; the message is a plain sentence for the desk."""


@dataclass(frozen=True)
class HandlerSpec:
    """A handler account as a file lists it."""

    login: str
    name: str
    initial_password: str | None = None
    line: int = 0
    file: str = ""  # the file that lists it, for mistakes found at import


@dataclass(frozen=True)
class UnitSpec:
    """A unit as a file lists it (validated)."""

    code: str
    name: str
    level: int
    parent_code: str | None = None
    kind: str = "department"
    duty_phone: str = ""
    leader: str = ""
    department: str = ""
    contact_person: str = ""
    contact_phone: str = ""
    handlers: tuple[HandlerSpec, ...] = ()
    line: int = 0


@dataclass
class Unit:
    """A unit of the directory, as stored; ``children`` is filled by `tree` only."""

    id: int
    code: str
    name: str
    parent_id: int | None
    level: int
    kind: str
    duty_phone: str
    leader: str
    department: str
    contact_person: str
    contact_phone: str
    active: bool
    updated_at: datetime
    children: list[Unit] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The unit (and its children) as the desk shows it."""
        return {
            "id": self.id, "code": self.code, "name": self.name, "parent_id": self.parent_id,
            "level": self.level, "kind": self.kind, "kind_name": KINDS.get(self.kind, self.kind),
            "duty_phone": self.duty_phone, "leader": self.leader,
            "department": self.department, "contact_person": self.contact_person,
            "contact_phone": self.contact_phone, "active": self.active,
            "updated_at": self.updated_at.isoformat(),
            "children": [c.as_dict() for c in self.children],
        }


@dataclass(frozen=True)
class ImportResult:
    """What an import changed."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deactivated: int = 0
    handlers_created: int = 0
    handlers_updated: int = 0
    handlers_deactivated: int = 0

    def summary(self) -> str:
        return (f"{self.created} units created, {self.updated} updated, "
                f"{self.unchanged} unchanged, {self.deactivated} deactivated; handler accounts: "
                f"{self.handlers_created} created, {self.handlers_updated} updated, "
                f"{self.handlers_deactivated} deactivated")


# -- reading YAML while keeping line numbers (dialplan/yamlsrc.py) ----------------------------


def read_text(source: str | Path, filename: str | None) -> tuple[str, str]:
    """(text, filename) of a path, or of text given directly."""
    if isinstance(source, Path):
        name = filename or str(source)
        try:
            return source.read_text(encoding="utf-8-sig"), name
        except OSError as e:
            raise FileProblems([(name, 0, f"cannot read the file: {e.strerror}")]) from None
        except UnicodeDecodeError:
            raise FileProblems([(name, 0, "the file is not UTF-8 text (in Excel, save it as "
                                          "'CSV UTF-8'; in an editor, choose UTF-8)")]) from None
    return source.removeprefix("\ufeff"), filename or "<text>"


def read_yaml(text: str, filename: str) -> Node:
    """Parse YAML into Nodes that know their lines; FileProblems if it is not YAML."""
    try:
        return yamlsrc.compose(text, filename)
    except yamlsrc.YamlProblems as e:
        raise FileProblems(e.problems) from None


def scalar_text(node: Node | None) -> str | None:
    """A scalar's text as written, stripped; None for a mapping or a list."""
    if node is None or node.value is None:
        return ""
    if isinstance(node.value, dict | list):
        return None
    return (node.raw if node.raw is not None else str(node.value)).strip()


# -- parsing the directory ---------------------------------------------------------------------


class _Problems:
    def __init__(self, filename: str):
        self.file = filename
        self.list: list[tuple[str, int, str]] = []

    def err(self, line: int, msg: str) -> None:
        self.list.append((self.file, line, msg))


def _check_unit_fields(p: _Problems, line: int, code: str, values: Mapping[str, str],
                       level_text: str, lines: Mapping[str, int]) -> int:
    """Checks one unit's own fields (not its parent); returns the level, 0 if invalid."""
    def at(key: str) -> int:
        return lines.get(key, line)

    if not code:
        p.err(line, "a unit is missing its code")
    elif not CODE.match(code):
        p.err(at("code"), f"the unit code '{code}' may use only letters, digits, - _ . "
                          "(at most 48)")
    who = f"unit {code}" if code else "this unit"
    if not values.get("name"):
        p.err(at("name"), f"{who} has no name")
    level = 0
    if not level_text:
        p.err(at("level"), f"{who} has no level (1, 2 or 3)")
    elif level_text not in ("1", "2", "3"):
        p.err(at("level"), f"the level of {who} must be 1, 2 or 3, not '{level_text}'")
    else:
        level = int(level_text)
    kind = values.get("kind") or "department"
    if kind not in KINDS:
        p.err(at("kind"), f"the kind of {who} must be one of {', '.join(KINDS)}, not '{kind}'")
    duty = values.get("duty_phone", "")
    if not duty:
        p.err(at("duty_phone"), f"{who} has no duty phone (every unit must publish one)")
    elif not PHONE.match(duty):
        p.err(at("duty_phone"), f"the duty phone of {who}, '{duty}', does not look like a "
                                "phone number (e.g. 0377-63160000)")
    contact = values.get("contact_phone", "")
    if contact and not PHONE.match(contact):
        p.err(at("contact_phone"), f"the contact phone of {who}, '{contact}', does not look "
                                   "like a phone number")
    return level


def _check_tree(p: _Problems, specs: Sequence[UnitSpec], parent_lines: Mapping[str, int]) -> None:
    """Unique codes, parents that exist, level = parent's level + 1."""
    by_code: dict[str, UnitSpec] = {}
    for s in specs:
        if s.code in by_code:
            p.err(s.line, f"the unit code '{s.code}' is already used on line "
                          f"{by_code[s.code].line}")
        else:
            by_code[s.code] = s
    for s in specs:
        at = parent_lines.get(s.code, s.line)
        if s.level == 1 and s.parent_code:
            p.err(at, f"unit {s.code} is at level 1 and so cannot have a parent "
                      f"('{s.parent_code}')")
        elif s.level in (2, 3) and not s.parent_code:
            p.err(s.line, f"unit {s.code} is at level {s.level} and needs a parent unit")
        elif s.level in (2, 3) and s.parent_code:
            parent = by_code.get(s.parent_code)
            if parent is None:
                p.err(at, f"the parent '{s.parent_code}' of unit {s.code} is not in the file")
            elif parent.level and parent.level != s.level - 1:
                p.err(at, f"unit {s.code} is at level {s.level}, so its parent must be at "
                          f"level {s.level - 1}, but {parent.code} is at level {parent.level}")
    logins: dict[str, int] = {}
    for s in specs:
        for h in s.handlers:
            if h.login in logins:
                p.err(h.line, f"the handler login '{h.login}' is already used on line "
                              f"{logins[h.login]}")
            logins.setdefault(h.login, h.line)


def _check_handler(p: _Problems, line: int, unit_code: str, login: str, name: str,
                   lines: Mapping[str, int]) -> None:
    if not login:
        p.err(line, f"a handler of unit {unit_code} has no login")
    elif not LOGIN.match(login):
        p.err(lines.get("login", line), f"the handler login '{login}' may use only letters, "
                                        "digits, . _ - (at most 32)")
    if not name:
        p.err(lines.get("name", line), f"the handler {login or ''} of unit {unit_code} "
                                       "has no name")


def parse_units_yaml(source: str | Path, filename: str | None = None) -> list[UnitSpec]:
    """The units of a YAML directory (a Path is read; a str is the text itself).

    Raises FileProblems listing every mistake as file:line: sentence.
    """
    text, name = read_text(source, filename)
    root = read_yaml(text, name)
    p = _Problems(name)
    if not isinstance(root.value, dict) or "units" not in root.value:
        raise FileProblems([(name, root.line, "the file must have a list 'units:'")])
    for key, line in root.keys.items():
        if key != "units":
            p.err(line, f"unknown key '{key}' (the file has only 'units:')")
    units_node = root.value["units"]
    if not isinstance(units_node.value, list):
        raise FileProblems([(name, units_node.line, "'units' must be a list of units")])
    allowed = {"code", "parent", "level", *FIELDS, "handlers"}
    specs: list[UnitSpec] = []
    parent_lines: dict[str, int] = {}
    for node in units_node.value:
        if not isinstance(node.value, dict):
            p.err(node.line, "each unit must be a mapping (code:, name:, level: ...)")
            continue
        u: dict[str, Node] = node.value
        for key, line in node.keys.items():
            if key not in allowed:
                p.err(line, f"unknown key '{key}' in a unit (known: {', '.join(sorted(allowed))})")
        values: dict[str, str] = {}
        for key in ("code", "parent", "level", *FIELDS):
            t = scalar_text(u.get(key))
            if t is None:
                p.err(u[key].line, f"'{key}' must be a single value")
                t = ""
            values[key] = t
        code = values["code"]
        level = _check_unit_fields(p, node.line, code, values, values["level"], node.keys)
        handlers: list[HandlerSpec] = []
        if "handlers" in u:
            hnode = u["handlers"]
            if not isinstance(hnode.value, list):
                p.err(hnode.line, f"the handlers of unit {code} must be a list")
            else:
                for h in hnode.value:
                    if not isinstance(h.value, dict):
                        p.err(h.line, "each handler must be a mapping (login:, name:, "
                                      "initial_password:)")
                        continue
                    for key, line in h.keys.items():
                        if key not in ("login", "name", "initial_password"):
                            p.err(line, f"unknown key '{key}' in a handler (known: login, "
                                        "name, initial_password)")
                    hv = {k: scalar_text(h.value.get(k)) or ""
                          for k in ("login", "name", "initial_password")}
                    _check_handler(p, h.line, code, hv["login"], hv["name"], h.keys)
                    handlers.append(HandlerSpec(hv["login"], hv["name"],
                                                hv["initial_password"] or None, h.line, name))
        if "parent" in node.keys:
            parent_lines[code] = node.keys["parent"]
        specs.append(UnitSpec(
            code=code, name=values["name"], level=level, parent_code=values["parent"] or None,
            kind=values["kind"] or "department", duty_phone=values["duty_phone"],
            leader=values["leader"], department=values["department"],
            contact_person=values["contact_person"], contact_phone=values["contact_phone"],
            handlers=tuple(handlers), line=node.line))
    _check_tree(p, specs, parent_lines)
    if p.list:
        raise FileProblems(p.list)
    return specs


def _csv_rows(text: str, filename: str, columns: Sequence[str],
              required: Iterable[str]) -> list[tuple[int, dict[str, str]]]:
    """(line, row) of a CSV whose header names the columns; blank rows are skipped."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
    except csv.Error as e:
        raise FileProblems([(filename, 1, f"this is not a valid CSV file: {e}")]) from None
    if header is None:
        raise FileProblems([(filename, 1, "the file is empty")])
    header = [h.strip() for h in header]
    problems = [(filename, 1, f"unknown column '{h}' (known: {', '.join(columns)})")
                for h in header if h not in columns]
    problems += [(filename, 1, f"the column '{c}' is missing from the header")
                 for c in required if c not in header]
    if problems:
        raise FileProblems(problems)
    rows = []
    while True:
        start = reader.line_num + 1  # a quoted value may run over lines: report the first
        try:
            cells = next(reader, None)
        except csv.Error as e:
            raise FileProblems([(filename, start, f"this is not a valid CSV line: {e}")]) \
                from None
        if cells is None:
            break
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            problems.append((filename, start, f"this line has {len(cells)} values but the "
                                              f"header names {len(header)} columns"))
            continue
        rows.append((start, {h: (cells[i].strip() if i < len(cells) else "")
                             for i, h in enumerate(header)}))
    if problems:
        raise FileProblems(problems)
    return rows


def parse_units_csv(source: str | Path, filename: str | None = None) -> list[UnitSpec]:
    """The units of a CSV directory (see the module's docstring for the columns).

    Raises FileProblems listing every mistake as file:line: sentence.
    """
    text, name = read_text(source, filename)
    rows = _csv_rows(text, name, CSV_COLUMNS, ("code", "name", "level", "duty_phone"))
    p = _Problems(name)
    specs = []
    for line, row in rows:
        level = _check_unit_fields(p, line, row["code"], row, row["level"], {})
        specs.append(UnitSpec(
            code=row["code"], name=row["name"], level=level,
            parent_code=row.get("parent_code") or None, kind=row.get("kind") or "department",
            duty_phone=row.get("duty_phone", ""), leader=row.get("leader", ""),
            department=row.get("department", ""), contact_person=row.get("contact_person", ""),
            contact_phone=row.get("contact_phone", ""), line=line))
    if not specs:
        p.err(1, "the file lists no unit")
    _check_tree(p, specs, {})
    if p.list:
        raise FileProblems(p.list)
    return specs


def parse_handlers_csv(source: str | Path, specs: Sequence[UnitSpec],
                       filename: str | None = None) -> list[UnitSpec]:
    """The units with the handlers of a CSV (unit_code,login,name,initial_password) added."""
    text, name = read_text(source, filename)
    rows = _csv_rows(text, name, HANDLER_COLUMNS, ("unit_code", "login", "name"))
    p = _Problems(name)
    codes = {s.code for s in specs}
    by_unit: dict[str, list[HandlerSpec]] = {}
    for line, row in rows:
        unit = row["unit_code"]
        if unit not in codes:
            p.err(line, f"the unit '{unit}' of handler {row['login']} is not in the units file"
                  if unit else f"handler {row['login']} has no unit_code")
        _check_handler(p, line, unit, row["login"], row["name"], {})
        by_unit.setdefault(unit, []).append(
            HandlerSpec(row["login"], row["name"], row.get("initial_password") or None, line,
                        name))
    out = [replace(s, handlers=s.handlers + tuple(by_unit.get(s.code, ()))) for s in specs]
    logins: dict[str, int] = {}
    for s in out:
        for h in s.handlers:
            if h.login in logins:
                p.err(h.line, f"the handler login '{h.login}' is already used on line "
                              f"{logins[h.login]}")
            logins.setdefault(h.login, h.line)
    if p.list:
        raise FileProblems(p.list)
    return out


def parse_file(path: Path, handlers_csv: Path | None = None) -> tuple[list[UnitSpec], bool]:
    """The units of a .yaml/.yml or .csv file (with a handlers CSV for a CSV), and whether
    the file set the handler accounts (a YAML, or a CSV with handlers)."""
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        if handlers_csv is not None:
            raise FileProblems([(str(handlers_csv), 0, "a handlers CSV goes with a units CSV; "
                                 "a YAML lists the handlers under each unit")])
        return parse_units_yaml(path), True
    if suffix == ".csv":
        specs = parse_units_csv(path)
        if handlers_csv is None:
            return specs, False
        return parse_handlers_csv(handlers_csv, specs), True
    raise FileProblems([(str(path), 0, "the file must end in .yaml, .yml or .csv")])


# -- importing ---------------------------------------------------------------------------------


async def import_units(conn: asyncpg.Connection, specs: Sequence[UnitSpec], now: datetime,
                       *, with_handlers: bool = True) -> ImportResult:
    """Make the directory what the file says, in one transaction.

    Units are upserted by code, parents first; units not in the file are deactivated (cases
    reference them, so never deleted). Handler accounts become agents with role 'handler'
    and the unit set; an existing account keeps its password. With with_handlers (the file
    lists the accounts), handler accounts not in it are deactivated; handlers of a
    deactivated unit always are. A login already used by a non-handler account is refused.
    """
    n = {"created": 0, "updated": 0, "unchanged": 0, "deactivated": 0,
         "handlers_created": 0, "handlers_updated": 0, "handlers_deactivated": 0}
    ordered = sorted(specs, key=lambda s: s.level)
    async with conn.transaction():
        # One import at a time: two would each deactivate what the other creates.
        await conn.execute("LOCK TABLE units IN SHARE ROW EXCLUSIVE MODE")
        logins = [h.login for s in specs for h in s.handlers]
        taken = await conn.fetch(
            "SELECT login, role FROM agents WHERE login = ANY($1) AND role <> 'handler'", logins)
        if taken:
            roles = {r["login"]: r["role"] for r in taken}
            raise FileProblems([(h.file, h.line, f"the login '{h.login}' already belongs to a "
                                             f"{roles[h.login]} account; choose another")
                                for s in specs for h in s.handlers if h.login in roles])
        existing = {r["code"]: r for r in await conn.fetch("SELECT * FROM units")}
        ids: dict[str, int] = {}
        for s in ordered:
            parent_id = ids[s.parent_code] if s.parent_code else None
            wanted = {"name": s.name, "parent_id": parent_id, "level": s.level, "kind": s.kind,
                      "duty_phone": s.duty_phone, "leader": s.leader,
                      "department": s.department, "contact_person": s.contact_person,
                      "contact_phone": s.contact_phone, "active": True}
            old = existing.get(s.code)
            if old is None:
                ids[s.code] = await conn.fetchval(
                    """INSERT INTO units (code, name, parent_id, level, kind, duty_phone, leader,
                         department, contact_person, contact_phone, active, updated_at)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, true, $11) RETURNING id""",
                    s.code, s.name, parent_id, s.level, s.kind, s.duty_phone, s.leader,
                    s.department, s.contact_person, s.contact_phone, now)
                n["created"] += 1
                continue
            ids[s.code] = old["id"]
            if all(old[k] == v for k, v in wanted.items()):
                n["unchanged"] += 1
                continue
            await conn.execute(
                """UPDATE units SET name = $2, parent_id = $3, level = $4, kind = $5,
                     duty_phone = $6, leader = $7, department = $8, contact_person = $9,
                     contact_phone = $10, active = true, updated_at = $11 WHERE id = $1""",
                old["id"], s.name, parent_id, s.level, s.kind, s.duty_phone, s.leader,
                s.department, s.contact_person, s.contact_phone, now)
            n["updated"] += 1
        gone = await conn.fetch(
            """UPDATE units SET active = false, updated_at = $2
               WHERE active AND NOT (code = ANY($1)) RETURNING id""", list(ids), now)
        n["deactivated"] = len(gone)

        for s in ordered:
            for h in s.handlers:
                old = await conn.fetchrow(
                    "SELECT id, display_name, unit_id, active, password_hash FROM agents "
                    "WHERE login = $1", h.login)
                if old is None:
                    pw = agent_store.hash_password(h.initial_password) \
                        if h.initial_password else None
                    await conn.execute(
                        """INSERT INTO agents (login, display_name, phone, password_hash, role,
                             unit_id, state, state_since, idle_since)
                           VALUES ($1, $2, NULL, $3, 'handler', $4, 'logged_out', $5, $5)""",
                        h.login, h.name, pw, ids[s.code], now)
                    n["handlers_created"] += 1
                elif (old["display_name"], old["unit_id"], old["active"]) != \
                        (h.name, ids[s.code], True) or \
                        (old["password_hash"] is None and h.initial_password):
                    # Never overwrite a password: the handler may have changed theirs.
                    pw = agent_store.hash_password(h.initial_password) \
                        if h.initial_password and old["password_hash"] is None else None
                    await conn.execute(
                        """UPDATE agents SET display_name = $2, unit_id = $3, active = true,
                             password_hash = COALESCE(password_hash, $4)
                           WHERE id = $1""", old["id"], h.name, ids[s.code], pw)
                    n["handlers_updated"] += 1
        listed = logins if with_handlers else None
        retired = await conn.fetch(
            """UPDATE agents SET active = false WHERE role = 'handler' AND active
                 AND (unit_id IS NULL OR unit_id IN (SELECT id FROM units WHERE NOT active)
                      OR ($1::text[] IS NOT NULL AND NOT (login = ANY($1))))
               RETURNING id""", listed)
        n["handlers_deactivated"] = len(retired)
        # A retired account's open desk sessions end with it.
        await conn.execute("DELETE FROM desk_sessions WHERE agent_id = ANY($1)",
                           [r["id"] for r in retired])
    return ImportResult(**n)


def _parse_if_present(path: Path) -> tuple[list[UnitSpec], bool] | None:
    return parse_file(path) if path.exists() else None


async def load_if_present(conn: asyncpg.Connection, path: Path, now: datetime) -> list[str]:
    """Import the directory file at start if it exists (`hotline run`); returns the mistakes
    as file:line: sentence (nothing is imported then) or an empty list."""
    try:
        parsed = _parse_if_present(path)
        if parsed is None:
            return []
        await import_units(conn, parsed[0], now, with_handlers=parsed[1])
    except FileProblems as e:
        return str(e).splitlines()
    return []


# -- reading and editing -------------------------------------------------------------------------


def _unit(row: asyncpg.Record) -> Unit:
    return Unit(id=row["id"], code=row["code"], name=row["name"], parent_id=row["parent_id"],
                level=row["level"], kind=row["kind"], duty_phone=row["duty_phone"],
                leader=row["leader"], department=row["department"],
                contact_person=row["contact_person"], contact_phone=row["contact_phone"],
                active=row["active"], updated_at=row["updated_at"])


async def tree(conn: asyncpg.Connection, include_inactive: bool = False) -> list[Unit]:
    """The directory as a tree: level-1 units with their children nested, by code."""
    rows = await conn.fetch(
        "SELECT * FROM units WHERE active OR $1 ORDER BY level, code", include_inactive)
    units = {r["id"]: _unit(r) for r in rows}
    roots: list[Unit] = []
    for u in units.values():
        parent = units.get(u.parent_id) if u.parent_id is not None else None
        if parent is not None:
            parent.children.append(u)
        elif u.parent_id is None:
            roots.append(u)
        # An active unit under an inactive parent is not shown without include_inactive.
    return roots


async def get(conn: asyncpg.Connection, unit_id: int) -> Unit | None:
    """One unit (without children), or None."""
    row = await conn.fetchrow("SELECT * FROM units WHERE id = $1", unit_id)
    return _unit(row) if row else None


async def by_code(conn: asyncpg.Connection, code: str) -> Unit | None:
    """One unit by its code, or None."""
    row = await conn.fetchrow("SELECT * FROM units WHERE code = $1", code)
    return _unit(row) if row else None


async def update(conn: asyncpg.Connection, unit_id: int, changes: Mapping[str, Any],
                 by: int | None, now: datetime) -> Unit:
    """An admin's edit of one unit: any of name, kind, duty_phone, leader, department,
    contact_person, contact_phone, active, parent_id (to a unit one level up, so the
    level stays). Raises UnitError with a plain sentence (Chinese, for the desk)."""
    del by  # who edited is not stored on the unit; the desk logs admin actions
    allowed = {*FIELDS, "active", "parent_id"}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise UnitError(f"不能修改的字段：{', '.join(unknown)}")
    async with conn.transaction():
        row = await conn.fetchrow("SELECT * FROM units WHERE id = $1 FOR UPDATE", unit_id)
        if row is None:
            raise UnitError("没有这个单位")
        new = dict(row)
        for key in FIELDS:
            if key in changes:
                value = changes[key]
                if not isinstance(value, str):
                    raise UnitError(f"{key} 必须是文字")
                new[key] = value.strip()
        if not new["name"]:
            raise UnitError("单位名称不能为空")
        if len(new["name"]) > 100:
            raise UnitError("单位名称过长（最多 100 个字）")
        if new["kind"] not in KINDS:
            raise UnitError(f"单位类型只能是：{'、'.join(KINDS.values())}")
        if not new["duty_phone"]:
            raise UnitError("值班电话不能为空")
        if not PHONE.match(new["duty_phone"]):
            raise UnitError("值班电话格式不对（例如 0377-63160000）")
        if new["contact_phone"] and not PHONE.match(new["contact_phone"]):
            raise UnitError("联系电话格式不对")
        if "parent_id" in changes and changes["parent_id"] != row["parent_id"]:
            if row["level"] == 1:
                raise UnitError("一级单位没有上级单位")
            parent = await conn.fetchrow("SELECT level, active FROM units WHERE id = $1",
                                         changes["parent_id"])
            if parent is None:
                raise UnitError("没有这个上级单位")
            if parent["level"] != row["level"] - 1:
                raise UnitError(f"{row['level']} 级单位的上级必须是 {row['level'] - 1} 级单位")
            if not parent["active"]:
                raise UnitError("上级单位已停用")
            new["parent_id"] = changes["parent_id"]
        if "active" in changes:
            if not isinstance(changes["active"], bool):
                raise UnitError("active 必须是 true 或 false")
            new["active"] = changes["active"]
        if new["active"] and not row["active"] and new["parent_id"] is not None:
            if not await conn.fetchval("SELECT active FROM units WHERE id = $1",
                                       new["parent_id"]):
                raise UnitError("上级单位已停用，请先启用上级单位")
        if not new["active"] and row["active"]:
            if await conn.fetchval("SELECT count(*) FROM units WHERE parent_id = $1 AND active",
                                   unit_id):
                raise UnitError("该单位还有启用的下级单位，请先停用下级单位")
        updated = await conn.fetchrow(
            """UPDATE units SET name = $2, kind = $3, duty_phone = $4, leader = $5,
                 department = $6, contact_person = $7, contact_phone = $8, active = $9,
                 parent_id = $10, updated_at = $11 WHERE id = $1 RETURNING *""",
            unit_id, new["name"], new["kind"], new["duty_phone"], new["leader"],
            new["department"], new["contact_person"], new["contact_phone"], new["active"],
            new["parent_id"], now)
        if not new["active"]:
            gone = await conn.fetch(
                """UPDATE agents SET active = false WHERE unit_id = $1 AND role = 'handler'
                   AND active RETURNING id""", unit_id)
            await conn.execute("DELETE FROM desk_sessions WHERE agent_id = ANY($1)",
                               [r["id"] for r in gone])
    return _unit(updated)


async def handlers_of(conn: asyncpg.Connection, unit_id: int,
                      include_inactive: bool = False) -> list[dict[str, Any]]:
    """The handler accounts of a unit (id, login, display_name, active), by login."""
    rows = await conn.fetch(
        """SELECT id, login, display_name, active FROM agents
           WHERE unit_id = $1 AND role = 'handler' AND (active OR $2) ORDER BY login""",
        unit_id, include_inactive)
    return [dict(r) for r in rows]
