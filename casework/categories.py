"""The categories of hotline matters: a coded tree an admin edits.

The roots are the six acceptance categories of the hotline (01-06) and 63160000's own
services (91 news tip, 92 information query, 93 hotline interaction). A child's code is its
parent's code and two more digits (04 -> 0401 -> 040101), so a code alone tells its place
and a prefix finds a whole branch. ``gbt_code`` maps a category to the national
classification GB/T 39666 where known. Categories are never deleted, only deactivated:
cases keep the code they were filed under.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg

ROOT_CODE = re.compile(r"^\d{2}$")
CODE = re.compile(r"^\d{2,10}$")
GBT_CODE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.-]{0,19}$")
MAX_NAME = 100


class CategoryError(ValueError):
    """A change the tree refuses; the message is a plain sentence for the desk (Chinese)."""


@dataclass
class Category:
    """A category; ``children`` is filled by `tree` only."""

    code: str
    name: str
    parent: str | None
    gbt_code: str | None
    active: bool
    sort: int
    children: list[Category] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "parent": self.parent,
                "gbt_code": self.gbt_code, "active": self.active, "sort": self.sort,
                "children": [c.as_dict() for c in self.children]}


def _category(row: asyncpg.Record) -> Category:
    return Category(code=row["code"], name=row["name"], parent=row["parent"],
                    gbt_code=row["gbt_code"], active=row["active"], sort=row["sort"])


async def tree(conn: asyncpg.Connection, active_only: bool = False) -> list[Category]:
    """The roots with their children nested, each level by sort then code. With
    active_only (the case form), inactive categories and everything under them are left out."""
    rows = await conn.fetch(
        "SELECT * FROM categories WHERE active OR NOT $1 ORDER BY length(code), sort, code",
        active_only)
    nodes = {r["code"]: _category(r) for r in rows}
    roots: list[Category] = []
    for c in nodes.values():  # parents come first: their codes are shorter
        if c.parent is None:
            roots.append(c)
        elif c.parent in nodes:
            nodes[c.parent].children.append(c)
    return roots


async def get(conn: asyncpg.Connection, code: str) -> Category | None:
    row = await conn.fetchrow("SELECT * FROM categories WHERE code = $1", code)
    return _category(row) if row else None


def _name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise CategoryError("类别名称不能为空")
    name = name.strip()
    if len(name) > MAX_NAME:
        raise CategoryError(f"类别名称过长（最多 {MAX_NAME} 个字）")
    return name


def _gbt(gbt_code: Any) -> str | None:
    if gbt_code is None or gbt_code == "":
        return None
    if not isinstance(gbt_code, str) or not GBT_CODE.match(gbt_code.strip()):
        raise CategoryError("国标分类代码只能由字母、数字、点和短横组成（最多 20 位）")
    return gbt_code.strip()


def _sort(sort: Any) -> int:
    if isinstance(sort, bool) or not isinstance(sort, int) or not 0 <= sort <= 100000:
        raise CategoryError("排序号必须是 0 到 100000 之间的整数")
    return sort


async def add(conn: asyncpg.Connection, code: str, name: str, parent: str | None = None,
              gbt_code: str | None = None, sort: int | None = None) -> Category:
    """A new category. A root's code is two digits; a child's code is its parent's code
    followed by two digits. Raises CategoryError with a plain sentence."""
    code = (code or "").strip()
    parent = (parent or "").strip() or None
    if not CODE.match(code):
        raise CategoryError("类别编码只能是数字（2 到 10 位）")
    if parent is None and not ROOT_CODE.match(code):
        raise CategoryError("一级类别的编码是两位数字，例如 07")
    if parent is not None and not (code.startswith(parent) and len(code) == len(parent) + 2):
        raise CategoryError(f"下级类别的编码应是上级编码 {parent} 再加两位数字，"
                            f"例如 {parent}01")
    name = _name(name)
    gbt = _gbt(gbt_code)
    order = _sort(sort) if sort is not None else int(code[-2:])
    async with conn.transaction():
        if parent is not None:
            up = await conn.fetchrow("SELECT active FROM categories WHERE code = $1", parent)
            if up is None:
                raise CategoryError(f"没有编码为 {parent} 的上级类别")
            if not up["active"]:
                raise CategoryError("上级类别已停用，不能在其下添加类别")
        if await conn.fetchval("SELECT 1 FROM categories WHERE code = $1", code):
            raise CategoryError(f"编码 {code} 已被使用（停用的类别的编码也不能再用：工单仍引用它）")
        if await conn.fetchval(
                "SELECT 1 FROM categories WHERE parent IS NOT DISTINCT FROM $1 AND name = $2",
                parent, name):
            raise CategoryError(f"同一级下已有名为“{name}”的类别")
        row = await conn.fetchrow(
            """INSERT INTO categories (code, parent, name, sort, gbt_code, active)
               VALUES ($1, $2, $3, $4, $5, true) RETURNING *""",
            code, parent, name, order, gbt)
    return _category(row)


async def update(conn: asyncpg.Connection, code: str, changes: Mapping[str, Any]) -> Category:
    """Change a category's name, gbt_code, sort or active (its code and parent never change:
    cases are filed under the code). Reactivating needs an active parent; deactivating goes
    through `deactivate`, which takes the branch with it."""
    unknown = sorted(set(changes) - {"name", "gbt_code", "sort", "active"})
    if unknown:
        raise CategoryError(f"不能修改的字段：{', '.join(unknown)}（编码和上级不能修改）")
    async with conn.transaction():
        row = await conn.fetchrow("SELECT * FROM categories WHERE code = $1 FOR UPDATE", code)
        if row is None:
            raise CategoryError(f"没有编码为 {code} 的类别")
        new = dict(row)
        if "name" in changes:
            new["name"] = _name(changes["name"])
            if new["name"] != row["name"] and await conn.fetchval(
                    """SELECT 1 FROM categories WHERE parent IS NOT DISTINCT FROM $1
                       AND name = $2 AND code <> $3""", row["parent"], new["name"], code):
                raise CategoryError(f"同一级下已有名为“{new['name']}”的类别")
        if "gbt_code" in changes:
            new["gbt_code"] = _gbt(changes["gbt_code"])
        if "sort" in changes:
            new["sort"] = _sort(changes["sort"])
        if "active" in changes:
            if not isinstance(changes["active"], bool):
                raise CategoryError("active 必须是 true 或 false")
            if changes["active"] is False and row["active"]:
                await deactivate(conn, code)
            if changes["active"] and not row["active"] and row["parent"] is not None and \
                    not await conn.fetchval("SELECT active FROM categories WHERE code = $1",
                                            row["parent"]):
                raise CategoryError("上级类别已停用，请先启用上级类别")
            new["active"] = changes["active"]
        updated = await conn.fetchrow(
            """UPDATE categories SET name = $2, gbt_code = $3, sort = $4, active = $5
               WHERE code = $1 RETURNING *""",
            code, new["name"], new["gbt_code"], new["sort"], new["active"])
    return _category(updated)


async def deactivate(conn: asyncpg.Connection, code: str) -> int:
    """Take a category and its whole branch out of use (kept for the cases filed under
    them); returns how many were deactivated."""
    async with conn.transaction():
        if await conn.fetchval("SELECT 1 FROM categories WHERE code = $1", code) is None:
            raise CategoryError(f"没有编码为 {code} 的类别")
        rows = await conn.fetch(
            """WITH RECURSIVE branch AS (
                 SELECT code FROM categories WHERE code = $1
                 UNION ALL
                 SELECT c.code FROM categories c JOIN branch b ON c.parent = b.code)
               UPDATE categories SET active = false
               WHERE active AND code IN (SELECT code FROM branch) RETURNING code""", code)
    return len(rows)
