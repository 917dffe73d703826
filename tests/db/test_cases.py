"""The case store on the real PostgreSQL: personal fields only as bound ciphertext."""

from __future__ import annotations

import asyncpg
import pytest

from db import cases as case_store
from db.crypto import CryptoError
from tests.conftest import Stack

pytestmark = pytest.mark.e2e


async def _case(db: asyncpg.Connection, stack: Stack, number: str) -> int:
    row = await case_store.create(db, stack.keyring(), call_id=None, dialled_number="12345",
                                  service="hotline", caller_number=number)
    return int(row["id"])


async def test_personal_fields_round_trip_and_are_bound_to_their_row(
    stack: Stack, db: asyncpg.Connection
) -> None:
    keyring = stack.keyring()
    a = await _case(db, stack, "13811110001")
    b = await _case(db, stack, "13811110002")
    await case_store.update(db, keyring, a, {"name": "钱女士", "address": "宛城区"})
    got = await case_store.get(db, keyring, a)
    assert got is not None
    assert got["caller_number"] == "13811110001"
    assert (got["name"], got["address"]) == ("钱女士", "宛城区")

    # A ciphertext copied into another case's row does not decrypt there.
    await db.execute(
        """UPDATE case_personal SET ciphertext = (SELECT ciphertext FROM case_personal
             WHERE case_id = $1 AND field = 'caller_number')
           WHERE case_id = $2 AND field = 'caller_number'""", a, b)
    with pytest.raises(CryptoError):
        await case_store.get(db, keyring, b)
    await db.execute("DELETE FROM case_personal WHERE case_id = $1", b)


async def test_bad_case_input_is_refused_in_plain_words(
    stack: Stack, db: asyncpg.Connection
) -> None:
    keyring = stack.keyring()
    case_id = await _case(db, stack, "13811110003")
    bad = [
        ({"caller_number": "1"}, "cannot be changed"),
        ({"status": "closed"}, "cannot be changed"),
        ({"name": 12}, "must be text"),
        ({"content": "x" * 10001}, "longer than"),
        ({"category": "99"}, "not a known category"),
        ({"callback_number": "abc"}, "no digits"),
    ]
    for changes, words in bad:
        with pytest.raises(case_store.CaseInputError, match=words):
            await case_store.update(db, keyring, case_id, changes)
    unchanged = await case_store.get(db, keyring, case_id)
    assert unchanged is not None and unchanged["caller_number"] == "13811110003"


def test_masking() -> None:
    assert case_store.mask_phone("13800138000") == "138****8000"
    assert case_store.mask_phone("+86 138 0013 8000") == "138****8000"
    assert case_store.mask_phone("63160000") == "631*0000"
    assert case_store.mask_phone(None) is None
