"""Outside text into db/crypto: any phone number as typed (caller ID, a callback number
keyed or spoken, an import) normalises to digits without an exception; any key document
(the key file, HOTLINE_KEYS) gives a keyring or a CryptoError naming its source, never
another exception and never the keys' content."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from db import crypto

FUZZ = settings(max_examples=150, deadline=None)
FULL_WIDTH = str.maketrans("0123456789+", "０１２３４５６７８９＋")
phones = st.text(alphabet=st.sampled_from("0123456789+-() ＋０１２８６\u3000x#*٣²"), max_size=25)


@FUZZ
@given(st.text(max_size=40) | phones)
def test_normalise_phone_gives_ascii_digits(value: str) -> None:
    out = crypto.normalise_phone(value)
    assert out == "" or (out.isascii() and out.isdigit())


@FUZZ
@given(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True))
def test_a_mobile_number_in_any_usual_form_is_the_same(mobile: str) -> None:
    forms = [mobile, f"+86 {mobile}", f"0086{mobile}", f"+86-{mobile[:3]}-{mobile[3:7]}-"
             f"{mobile[7:]}", mobile.translate(FULL_WIDTH), f"＋86 {mobile}"]
    assert {crypto.normalise_phone(f) for f in forms} == {mobile}


def _b64(n: int) -> str:
    return base64.b64encode(os.urandom(n)).decode()


GOOD_V2 = {"version": 2, "kek": {"id": "kek1", "key": _b64(32)},
           "index_keys": {"i1": _b64(32)}, "primary_index": "i1"}
GOOD_V1 = {"version": 1, "keys": {"k1": _b64(32)}, "primary": "k1", "index_key": _b64(32)}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=12) | st.sampled_from([_b64(32), _b64(16), "k1", "i1", 1, 2]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["version", "kek", "id", "key", "keys", "index_keys", "primary",
                         "primary_index", "index_key", "k1", "i1", ""]) | st.text(max_size=4),
        inner, max_size=4),
    max_leaves=12)


def _mutate(doc: Any, draw: st.DrawFn) -> Any:
    if isinstance(doc, dict) and doc and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(doc)))
        if draw(st.booleans()):
            return {k: v for k, v in doc.items() if k != key}
        return {**doc, key: _mutate(doc[key], draw)}
    return draw(json_values)


def check(text: str) -> None:
    secrets_in = [v for v in (GOOD_V2["kek"]["key"], GOOD_V1["index_key"]) if v in text]
    try:
        ring = crypto.load_keyring(env={crypto.ENV_VAR: text})
    except crypto.CryptoError as e:
        assert str(e).startswith(f"environment variable {crypto.ENV_VAR}"), str(e)
        for secret in secrets_in:
            assert secret not in str(e)
    else:
        assert isinstance(ring, crypto.Keyring)


def test_the_good_documents_load() -> None:
    check(json.dumps(GOOD_V1))
    check(json.dumps(GOOD_V2))


@FUZZ
@given(st.text(max_size=80) | json_values.map(json.dumps)
       | st.integers(1, 20000).map(lambda n: "[" * n + "]" * n))
def test_any_key_document_is_a_keyring_or_a_plain_error(text: str) -> None:
    if text.strip():
        check(text)


@FUZZ
@given(st.data())
def test_mutated_key_documents(data: st.DataObject) -> None:
    doc = data.draw(st.sampled_from([GOOD_V1, GOOD_V2]))
    for _ in range(data.draw(st.integers(1, 3))):
        doc = _mutate(doc, data.draw)
    check(json.dumps(doc))
