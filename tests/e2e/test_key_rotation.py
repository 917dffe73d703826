"""Key rotation on the running hotline (real stack): `hotline keys rotate` re-encrypts every
personal field while calls keep coming, and call control switches to the new data key and
the new index key without a restart (the `keys` notice)."""

from __future__ import annotations

import json

import asyncpg
import pytest

from db import cases as case_store
from tests.conftest import VAR, Stack, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean")]


async def _new_case(db: asyncpg.Connection, after: int) -> asyncpg.Record:
    case_id = await wait_until(
        db, "SELECT case_id FROM case_personal WHERE case_id > $1 AND field = 'caller_number'"
            " ORDER BY case_id DESC LIMIT 1", after, timeout=40)
    row: asyncpg.Record = await db.fetchrow(
        "SELECT case_id, key_id, bidx_key_id FROM case_personal WHERE case_id = $1 "
        "AND field = 'caller_number'", case_id)
    return row


async def test_rotating_keys_while_the_hotline_runs(stack: Stack, db: asyncpg.Connection) -> None:
    start = await db.fetchval("SELECT coalesce(max(id), 0) FROM cases")
    stack.call("12345", "13855550001")
    first = await _new_case(db, start)

    rotated = stack.cli("keys", "rotate", "--batch", "2")
    assert "re-encrypted" in rotated.stdout
    status = json.loads(stack.cli("keys", "status", "--json").stdout)
    (primary,) = [k for k in status["data_keys"] if k["primary"]]
    assert primary["id"] != first["key_id"]
    assert all(k["rows"] == 0 for k in status["data_keys"] if not k["primary"])
    key_file = (VAR / "keys.json").read_text()
    assert not any(part in rotated.stdout + json.dumps(status)
                   for part in json.loads(key_file)["index_keys"].values())

    # Call control heard of the new key: the next caller's case is under it.
    stack.call("12345", "13855550002")
    second = await _new_case(db, first["case_id"])
    assert second["key_id"] == primary["id"]

    old_index = status["primary_index"]
    assert "rebuilt" in stack.cli("keys", "rotate", "--index").stdout
    new_index = json.loads((VAR / "keys.json").read_text())["primary_index"]
    assert new_index != old_index
    # The first caller calls again: indexed under the new key, and found with the first case.
    stack.call("12345", "13855550001")
    third = await _new_case(db, second["case_id"])
    assert third["bidx_key_id"] == new_index
    found = {r["id"] for r in await case_store.find_by_phone(db, stack.keyring(), "13855550001")}
    assert {first["case_id"], third["case_id"]} <= found
