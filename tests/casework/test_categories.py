"""The category tree: the codes' rules, and categories deactivated, never deleted."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from casework import categories


@pytest.fixture
async def tree_kept(conn: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """The conn fixture, with the category tree put back as it was after the test (the
    tree is schema data the other tests share)."""
    before = await conn.fetch("SELECT * FROM categories")
    yield conn
    await conn.execute("DELETE FROM categories WHERE NOT (code = ANY($1))",
                       [r["code"] for r in before])
    for r in before:
        await conn.execute(
            "UPDATE categories SET name = $2, gbt_code = $3, sort = $4, active = $5 "
            "WHERE code = $1", r["code"], r["name"], r["gbt_code"], r["sort"], r["active"])


async def test_the_tree_holds_the_acceptance_categories_and_63160000s_services(
        conn: asyncpg.Connection) -> None:
    roots = await categories.tree(conn)
    assert [c.code for c in roots] == ["01", "02", "03", "04", "05", "06", "91", "92", "93"]
    supply = next(c for c in roots if c.code == "04")
    assert [(c.code, c.name) for c in supply.children][:6] == [
        ("0401", "供水"), ("0402", "供电"), ("0403", "燃气"), ("0404", "供暖"),
        ("0405", "交通出行"), ("0406", "突发事件")]
    assert all(c.parent == "04" for c in supply.children)
    news = next(c for c in roots if c.code == "91")
    assert [c.code for c in news.children] == ["9101"]
    assert supply.as_dict()["children"][0]["code"] == "0401"


async def test_a_child_code_is_its_parents_code_and_two_digits(
        tree_kept: asyncpg.Connection) -> None:
    conn = tree_kept
    lift = await categories.add(conn, "0408", " 电梯安全 ", parent="04", gbt_code="C04.08")
    assert (lift.code, lift.name, lift.parent, lift.gbt_code, lift.sort) == \
        ("0408", "电梯安全", "04", "C04.08", 8)
    deeper = await categories.add(conn, "040801", "电梯困人", parent="0408")
    assert deeper.parent == "0408"
    root = await categories.add(conn, "07", "其他")
    assert root.parent is None

    for args, message in [
        (("0409", "错位", "02"), "上级编码 02 再加两位数字"),
        (("04091", "三位", "04"), "上级编码 04 再加两位数字"),
        (("7", "一位", None), "类别编码只能是数字"),
        (("0a", "字母", None), "类别编码只能是数字"),
        (("0701", "没有上级", None), "一级类别的编码是两位数字"),
        (("0402", "重复", "04"), "编码 0402 已被使用"),
        (("8801", "上级不存在", "88"), "没有编码为 88 的上级类别"),
        (("0409", "供电", "04"), "同一级下已有名为“供电”的类别"),
        (("0409", " ", "04"), "类别名称不能为空"),
    ]:
        with pytest.raises(categories.CategoryError, match=message):
            await categories.add(conn, *args)
    with pytest.raises(categories.CategoryError, match="国标分类代码"):
        await categories.add(conn, "0409", "某类", "04", gbt_code="代码")
    assert await categories.get(conn, "0409") is None


async def test_deactivating_takes_the_branch_out_of_the_case_form(
        tree_kept: asyncpg.Connection) -> None:
    conn = tree_kept
    await categories.add(conn, "040201", "电压不稳", parent="0402")
    assert await categories.deactivate(conn, "0402") == 2
    form = await categories.tree(conn, active_only=True)
    supply = next(c for c in form if c.code == "04")
    assert "0402" not in [c.code for c in supply.children]
    # Kept for the cases filed under it, and shown to the admin.
    kept = await categories.get(conn, "040201")
    assert kept is not None and not kept.active
    admin = next(c for c in await categories.tree(conn) if c.code == "04")
    assert "0402" in [c.code for c in admin.children]
    with pytest.raises(categories.CategoryError, match="上级类别已停用，请先启用上级类别"):
        await categories.update(conn, "040201", {"active": True})
    with pytest.raises(categories.CategoryError, match="上级类别已停用"):
        await categories.add(conn, "040202", "新的", parent="0402")
    with pytest.raises(categories.CategoryError, match="编码 0402 已被使用"):
        await categories.add(conn, "0402", "供电", parent="04")
    again = await categories.update(conn, "0402", {"active": True})
    assert again.active


async def test_the_admin_renames_and_maps_a_category(tree_kept: asyncpg.Connection) -> None:
    conn = tree_kept
    renamed = await categories.update(conn, "0401", {"name": "供水与排水", "gbt_code": "A01",
                                                     "sort": 3})
    assert (renamed.name, renamed.gbt_code, renamed.sort, renamed.parent) == \
        ("供水与排水", "A01", 3, "04")
    for changes, message in [
        ({"code": "0499"}, "不能修改的字段：code"),
        ({"parent": "02"}, "不能修改的字段：parent"),
        ({"name": "供电"}, "同一级下已有名为“供电”的类别"),
        ({"sort": "first"}, "排序号必须是"),
    ]:
        with pytest.raises(categories.CategoryError, match=message):
            await categories.update(conn, "0401", changes)
    with pytest.raises(categories.CategoryError, match="没有编码为 0499 的类别"):
        await categories.update(conn, "0499", {"name": "x"})
    assert (await categories.update(conn, "0401", {"gbt_code": ""})).gbt_code is None
