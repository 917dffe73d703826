"""The knowledge base: found by the terms an agent types, the seed file, the admin's edits."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from casework import knowledge
from casework.units import FileProblems

SEED = Path(__file__).resolve().parents[2] / "config" / "knowledge.yaml"
NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


async def _add(conn: asyncpg.Connection, question: str, answer: str = "以官方通知为准。",
               keywords: str = "", category: str | None = None) -> knowledge.Entry:
    return await knowledge.add(conn, question, answer, keywords=keywords, category=category,
                               by=None, now=NOW)


async def test_the_seed_file_is_loaded_once(conn: asyncpg.Connection) -> None:
    assert await knowledge.seed_if_empty(conn, SEED, NOW) == []
    count = await conn.fetchval("SELECT count(*) FROM knowledge")
    assert count >= 15
    assert await knowledge.import_yaml(conn, SEED, NOW) == 0  # same questions: nothing new
    # The admin's edits are the truth afterwards: a start does not bring deleted text back.
    first = await conn.fetchval("SELECT min(id) FROM knowledge")
    await knowledge.deactivate(conn, first, by=None, now=NOW)
    await conn.execute("DELETE FROM knowledge WHERE id <> $1", first)
    assert await knowledge.seed_if_empty(conn, SEED, NOW) == []
    assert await conn.fetchval("SELECT count(*) FROM knowledge") == 1


async def test_an_agent_finds_the_housing_fund_answers(conn: asyncpg.Connection) -> None:
    await knowledge.import_yaml(conn, SEED, NOW)
    found = await knowledge.search(conn, "公积金")
    assert len(found) >= 2
    assert all("公积金" in e.question for e in found[:2])
    assert all(e.category == "0302" for e in found[:2])
    # Two terms: the entry about withdrawing comes before the one about loans.
    best = await knowledge.search(conn, "公积金 提取")
    assert best[0].question == "如何提取住房公积金？"
    assert best[0].score > best[1].score
    # Full-width spaces and Chinese commas separate terms too.
    assert (await knowledge.search(conn, "公积金　贷款"))[0].question.startswith("住房公积金贷款")
    assert (await knowledge.search(conn, "社保卡，补办"))[0].question == "社保卡丢了怎么补办？"
    assert await knowledge.search(conn, "  ") == []
    assert await knowledge.search(conn, "量子计算机") == []


async def test_the_question_and_keywords_count_before_the_answer(
        conn: asyncpg.Connection) -> None:
    in_answer = await _add(conn, "怎么办理某证？", "需要带户口本。")
    in_keywords = await _add(conn, "某事项怎么办？", "见通知。", keywords="户口本 迁移")
    in_question = await _add(conn, "户口本丢了怎么办？", "见通知。")
    found = await knowledge.search(conn, "户口本")
    assert [e.id for e in found] == [in_keywords.id, in_question.id, in_answer.id]
    assert await knowledge.search(conn, "户口本", limit=1) == found[:1]


async def test_percent_and_underscore_are_searched_as_typed(conn: asyncpg.Connection) -> None:
    percent = await _add(conn, "缴存比例是 12% 吗？", "缴存比例以公积金中心通知为准。")
    underscore = await _add(conn, "网站账号 user_name 怎么填？", "填身份证号。")
    await _add(conn, "居住证怎么办理？", "到派出所办理。")
    await _add(conn, "username 是什么", "登录名。")
    assert [e.id for e in await knowledge.search(conn, "%")] == [percent.id]
    assert [e.id for e in await knowledge.search(conn, "12%")] == [percent.id]
    assert [e.id for e in await knowledge.search(conn, "r_n")] == [underscore.id]
    assert await knowledge.search(conn, "\\") == []


async def test_a_category_narrows_the_search_to_its_branch(conn: asyncpg.Connection) -> None:
    await knowledge.import_yaml(conn, SEED, NOW)
    everywhere = {e.category for e in await knowledge.search(conn, "停电")}
    assert {"0402", "9201"} <= everywhere
    assert {e.category for e in await knowledge.search(conn, "停电", category="04")} == {"0402"}
    assert {e.category for e in await knowledge.search(conn, "停电", category="0402")} == \
        {"0402"}
    assert await knowledge.search(conn, "停电", category="%") == []


async def test_the_admin_edits_and_retires_entries(conn: asyncpg.Connection) -> None:
    entry = await _add(conn, "燃气费怎么交？", "可通过燃气公司营业厅或线上渠道缴纳。",
                       keywords="燃气费 缴费", category="0403")
    later = datetime(2025, 3, 5, 8, 0, tzinfo=UTC)
    edited = await knowledge.update(conn, entry.id, {"keywords": ["燃气费", "天然气费"]},
                                    by=None, now=later)
    assert (edited.keywords, edited.updated_at) == ("燃气费 天然气费", later)
    assert [e.id for e in await knowledge.search(conn, "天然气费")] == [entry.id]
    await knowledge.deactivate(conn, entry.id, by=None, now=later)
    assert await knowledge.search(conn, "燃气费") == []
    assert (await knowledge.get(conn, entry.id)) is not None  # kept for cases citing it

    for kwargs, message in [
        ({"question": " "}, "问题不能为空"),
        ({"answer": ""}, "答复不能为空"),
        ({"category": "0499"}, "没有编码为 0499 的类别"),
        ({"question": "问" * 501}, "问题过长"),
    ]:
        with pytest.raises(knowledge.KnowledgeError, match=message):
            await knowledge.add(conn, **{"question": "某问题", "answer": "某答复", **kwargs},
                                by=None, now=NOW)
    with pytest.raises(knowledge.KnowledgeError, match="不能修改的字段：id"):
        await knowledge.update(conn, entry.id, {"id": 9}, by=None, now=NOW)


BAD = """\
knowledge:
  - question: 如何提取住房公积金？
    answer: 以公积金中心通知为准。
    category: "0399"
  - question: 没有答复的问题
    keywords: [公积金]
  - question: ""
    answer: 空问题
    source: 某网站
intro: 说明
"""


async def test_every_mistake_in_a_knowledge_file_is_reported_with_its_line(
        conn: asyncpg.Connection, tmp_path: Path) -> None:
    with pytest.raises(FileProblems) as e:
        knowledge.parse_yaml(BAD, "knowledge.yaml")
    assert str(e.value).splitlines() == [
        "knowledge.yaml:5: an entry is missing 'answer'",
        "knowledge.yaml:7: the question is empty",
        "knowledge.yaml:9: unknown key 'source' in an entry (known: question, answer, "
        "keywords, category)",
        "knowledge.yaml:10: unknown key 'intro' (the file has only 'knowledge:')",
    ]
    path = tmp_path / "knowledge.yaml"
    path.write_text(BAD.split("  - question: 没有")[0], encoding="utf-8")
    with pytest.raises(FileProblems) as e:
        await knowledge.import_yaml(conn, path, NOW)
    assert str(e.value) == f"{path}:4: there is no category with the code '0399'"
    assert await conn.fetchval("SELECT count(*) FROM knowledge") == 0
    assert await knowledge.seed_if_empty(conn, path, NOW) == [str(e.value)]
