"""The knowledge base: questions and answers an agent finds from the case form while on
the call, so that a question answered on the call closes the case there.

Search is for Chinese text, which PostgreSQL's default text-search parser does not split
into words; so each whitespace-separated term of the query is matched with ILIKE, and
entries are ranked by how many terms hit the question or the keywords, then the answer.
Agents type short terms (公积金 提取); the keywords of an entry carry the words citizens
use for it.

Seed file (`config/knowledge.yaml`, loaded at `hotline run` only while the table is empty,
so that the admin's edits are kept)::

    knowledge:
      - question: 如何提取住房公积金？
        answer: ...
        keywords: [公积金, 提取]      # or one string, words separated by spaces
        category: "0302"              # optional, a category code
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from casework.units import FileProblems, Node, read_text, read_yaml, scalar_text

MAX_QUESTION = 500
MAX_ANSWER = 5000
MAX_KEYWORDS = 500
MAX_TERMS = 8
# Whitespace (also the full-width space) and the separators agents type between terms.
_SPLIT = re.compile(r"[\s,，、;；]+")


class KnowledgeError(ValueError):
    """An entry the knowledge base refuses; the message is a plain sentence (Chinese)."""


@dataclass(frozen=True)
class Entry:
    id: int
    question: str
    answer: str
    keywords: str
    category: str | None
    active: bool
    updated_at: datetime
    score: int = 0  # search only: terms found in the question or keywords (x10) + answer

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "question": self.question, "answer": self.answer,
                "keywords": self.keywords, "category": self.category, "active": self.active,
                "updated_at": self.updated_at.isoformat()}


def _entry(row: asyncpg.Record) -> Entry:
    return Entry(id=row["id"], question=row["question"], answer=row["answer"],
                 keywords=row["keywords"], category=row["category"], active=row["active"],
                 updated_at=row["updated_at"], score=row.get("score") or 0)


def terms(query: str) -> list[str]:
    """The distinct search terms of a query, at most MAX_TERMS."""
    out: list[str] = []
    for t in _SPLIT.split(query or ""):
        if t and t not in out:
            out.append(t)
    return out[:MAX_TERMS]


def like_pattern(term: str) -> str:
    """An ILIKE pattern (ESCAPE '\\') finding the term anywhere, with % _ \\ taken literally."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search(conn: asyncpg.Connection, query: str, limit: int = 10,
                 category: str | None = None) -> list[Entry]:
    """Active entries matching any term of the query, best first: the most terms in the
    question or keywords, then in the answer. With category, only that category and the
    categories under it. An empty query finds nothing."""
    words = terms(query)
    if not words:
        return []
    patterns = [like_pattern(t) for t in words]
    in_title = " + ".join(
        f"(question ILIKE ${i} ESCAPE '\\' OR keywords ILIKE ${i} ESCAPE '\\')::int"
        for i in range(1, len(words) + 1))
    in_answer = " + ".join(f"(answer ILIKE ${i} ESCAPE '\\')::int"
                           for i in range(1, len(words) + 1))
    n = len(words)
    where_category = ""
    args: list[Any] = [*patterns, max(1, min(int(limit), 100))]
    if category:
        # A child category's code starts with its parent's: a prefix finds the branch.
        where_category = f"AND (category = ${n + 2} OR category LIKE ${n + 3} ESCAPE '\\')"
        args += [category, like_pattern(category)[1:]]
    rows = await conn.fetch(
        f"""SELECT *, in_title * 10 + in_answer AS score FROM (
              SELECT *, ({in_title}) AS in_title, ({in_answer}) AS in_answer FROM knowledge
              WHERE active {where_category}) k
            WHERE in_title + in_answer > 0
            ORDER BY in_title DESC, in_answer DESC, id
            LIMIT ${n + 1}""",
        *args)
    return [_entry(r) for r in rows]


async def get(conn: asyncpg.Connection, entry_id: int) -> Entry | None:
    row = await conn.fetchrow("SELECT * FROM knowledge WHERE id = $1", entry_id)
    return _entry(row) if row else None


def _keywords(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        if not all(isinstance(k, str) for k in value):
            raise KnowledgeError("关键词必须是文字")
        value = " ".join(k.strip() for k in value if k.strip())
    if not isinstance(value, str):
        raise KnowledgeError("关键词必须是文字")
    value = " ".join(value.split())
    if len(value) > MAX_KEYWORDS:
        raise KnowledgeError(f"关键词过长（最多 {MAX_KEYWORDS} 个字）")
    return value


def _text(value: Any, what: str, longest: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise KnowledgeError(f"{what}不能为空")
    value = value.strip()
    if len(value) > longest:
        raise KnowledgeError(f"{what}过长（最多 {longest} 个字）")
    return value


async def _category(conn: asyncpg.Connection, code: Any) -> str | None:
    if code is None or code == "":
        return None
    if not isinstance(code, str):
        raise KnowledgeError("类别编码必须是文字")
    active = await conn.fetchval("SELECT active FROM categories WHERE code = $1", code)
    if active is None:
        raise KnowledgeError(f"没有编码为 {code} 的类别")
    if not active:
        raise KnowledgeError(f"类别 {code} 已停用")
    return code


async def add(conn: asyncpg.Connection, question: str, answer: str, *, keywords: Any = "",
              category: str | None = None, by: int | None, now: datetime) -> Entry:
    """A new entry (keywords: words separated by spaces, or a list). Raises
    KnowledgeError with a plain sentence."""
    q = _text(question, "问题", MAX_QUESTION)
    a = _text(answer, "答复", MAX_ANSWER)
    kw = _keywords(keywords)
    cat = await _category(conn, category)
    row = await conn.fetchrow(
        """INSERT INTO knowledge (question, answer, keywords, category, active, updated_by,
             updated_at) VALUES ($1, $2, $3, $4, true, $5, $6) RETURNING *""",
        q, a, kw, cat, by, now)
    return _entry(row)


async def update(conn: asyncpg.Connection, entry_id: int, changes: Mapping[str, Any], *,
                 by: int | None, now: datetime) -> Entry:
    """Change an entry's question, answer, keywords, category or active."""
    unknown = sorted(set(changes) - {"question", "answer", "keywords", "category", "active"})
    if unknown:
        raise KnowledgeError(f"不能修改的字段：{', '.join(unknown)}")
    async with conn.transaction():
        row = await conn.fetchrow("SELECT * FROM knowledge WHERE id = $1 FOR UPDATE", entry_id)
        if row is None:
            raise KnowledgeError("没有这条知识")
        new = dict(row)
        if "question" in changes:
            new["question"] = _text(changes["question"], "问题", MAX_QUESTION)
        if "answer" in changes:
            new["answer"] = _text(changes["answer"], "答复", MAX_ANSWER)
        if "keywords" in changes:
            new["keywords"] = _keywords(changes["keywords"])
        if "category" in changes and changes["category"] != row["category"]:
            new["category"] = await _category(conn, changes["category"])
        if "active" in changes:
            if not isinstance(changes["active"], bool):
                raise KnowledgeError("active 必须是 true 或 false")
            new["active"] = changes["active"]
        updated = await conn.fetchrow(
            """UPDATE knowledge SET question = $2, answer = $3, keywords = $4, category = $5,
                 active = $6, updated_by = $7, updated_at = $8 WHERE id = $1 RETURNING *""",
            entry_id, new["question"], new["answer"], new["keywords"], new["category"],
            new["active"], by, now)
    return _entry(updated)


async def deactivate(conn: asyncpg.Connection, entry_id: int, *, by: int | None,
                     now: datetime) -> Entry:
    """Take an entry out of search (kept: cases may reference it)."""
    return await update(conn, entry_id, {"active": False}, by=by, now=now)


# -- the seed file -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedEntry:
    """An entry of the seed file, validated, with its lines for mistakes found later."""

    question: str
    answer: str
    keywords: str
    category: str | None
    line: int
    category_line: int


def parse_yaml(source: str | Path, filename: str | None = None) -> list[SeedEntry]:
    """The entries of a knowledge YAML; FileProblems with file:line: sentence per mistake."""
    text, name = read_text(source, filename)
    root = read_yaml(text, name)
    if not isinstance(root.value, dict) or "knowledge" not in root.value:
        raise FileProblems([(name, root.line, "the file must have a list 'knowledge:'")])
    problems: list[tuple[str, int, str]] = [
        (name, line, f"unknown key '{key}' (the file has only 'knowledge:')")
        for key, line in root.keys.items() if key != "knowledge"]
    node = root.value["knowledge"]
    if not isinstance(node.value, list):
        raise FileProblems([(name, node.line, "'knowledge' must be a list of entries")])
    seeds: list[SeedEntry] = []
    allowed = ("question", "answer", "keywords", "category")
    for item in node.value:
        if not isinstance(item.value, dict):
            problems.append((name, item.line, "each entry must be a mapping (question:, "
                                              "answer:, keywords:, category:)"))
            continue
        e: dict[str, Node] = item.value
        for key, line in item.keys.items():
            if key not in allowed:
                problems.append((name, line, f"unknown key '{key}' in an entry (known: "
                                             f"{', '.join(allowed)})"))
        fields: dict[str, str] = {}
        for key in ("question", "answer", "category"):
            t = scalar_text(e.get(key))
            if t is None:
                problems.append((name, e[key].line, f"'{key}' must be text"))
            fields[key] = t or ""
        for key, longest in (("question", MAX_QUESTION), ("answer", MAX_ANSWER)):
            if key in e and not fields[key]:
                problems.append((name, e[key].line, f"the {key} is empty"))
            elif key not in e:
                problems.append((name, item.line, f"an entry is missing '{key}'"))
            elif len(fields[key]) > longest:
                problems.append((name, e[key].line,
                                 f"the {key} is too long (at most {longest} characters)"))
        kw: list[str] = []
        if "keywords" in e:
            k = e["keywords"]
            if isinstance(k.value, list):
                for w in k.value:
                    t = scalar_text(w)
                    if not t:
                        problems.append((name, w.line, "each keyword must be a word"))
                    else:
                        kw.append(t)
            else:
                kw = (scalar_text(k) or "").split()
        seeds.append(SeedEntry(fields["question"], fields["answer"], " ".join(kw),
                           fields["category"] or None, item.line,
                           item.keys.get("category", item.line)))
    if problems:
        raise FileProblems(problems)
    return seeds


async def import_yaml(conn: asyncpg.Connection, path: str | Path, now: datetime,
                      by: int | None = None) -> int:
    """Add the entries of a knowledge YAML whose question is not in the base yet (so a
    second import adds nothing); returns how many were added. Everything or nothing."""
    path = Path(path)
    seeds = parse_yaml(path)
    codes = {r["code"]: r["active"] for r in await conn.fetch(
        "SELECT code, active FROM categories")}
    problems = [(str(path), s.category_line, f"there is no category with the code '{s.category}'"
                 if s.category not in codes else f"the category '{s.category}' is deactivated")
                for s in seeds if s.category is not None and not codes.get(s.category)]
    if problems:
        raise FileProblems(problems)
    added = 0
    async with conn.transaction():
        known = {r["question"] for r in await conn.fetch("SELECT question FROM knowledge")}
        for s in seeds:
            if s.question in known:
                continue
            known.add(s.question)
            await conn.execute(
                """INSERT INTO knowledge (question, answer, keywords, category, active,
                     updated_by, updated_at) VALUES ($1, $2, $3, $4, true, $5, $6)""",
                s.question, s.answer, s.keywords, s.category, by, now)
            added += 1
    return added


def _exists(path: Path) -> bool:
    return path.exists()


async def seed_if_empty(conn: asyncpg.Connection, path: Path, now: datetime) -> list[str]:
    """At start: import the seed file when the knowledge base has no entry yet (afterwards
    the admin's edits are the truth). Returns the file's mistakes as file:line: sentence."""
    if not _exists(path) or await conn.fetchval("SELECT count(*) FROM knowledge"):
        return []
    try:
        await import_yaml(conn, path, now)
    except FileProblems as e:
        return str(e).splitlines()
    return []


def as_dicts(entries: Sequence[Entry]) -> list[dict[str, Any]]:
    """Entries as the desk shows them."""
    return [e.as_dict() for e in entries]
