"""Tests for db.crypto: field encryption, blind index and key loading."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from db.crypto import (
    AesGcmCipher,
    Cipher,
    CryptoError,
    Keyring,
    create_key_file,
    load_keyring,
    normalise_phone,
)

AAD = b"citizen:42:phone"
PHONE = "13800138000"


def _key(byte: int) -> bytes:
    return bytes([byte]) * 32


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _ring(primary: str = "k1", index_byte: int = 0xEE) -> Keyring:
    return Keyring({"k1": _key(1), "k2": _key(2)}, primary, _key(index_byte))


def _doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": 1,
        "primary": "k1",
        "keys": {"k1": _b64(_key(1))},
        "index_key": _b64(_key(9)),
    }
    doc.update(overrides)
    return doc


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


# --- cipher and keyring ---------------------------------------------------------------------


def test_aes_gcm_cipher_satisfies_protocol() -> None:
    cipher: Cipher = AesGcmCipher()
    assert cipher.name == "aes-256-gcm"
    blob = cipher.encrypt(_key(1), b"hello", b"aad")
    assert len(blob) == 12 + len(b"hello") + 16
    assert cipher.decrypt(_key(1), blob, b"aad") == b"hello"


def test_round_trip() -> None:
    ring = _ring()
    for text in [PHONE, "张三", "北京市朝阳区某街道 1 号", ""]:
        key_id, blob = ring.encrypt(text, AAD)
        assert key_id == "k1" == ring.primary_key_id
        assert ring.decrypt(key_id, blob, AAD) == text


def test_same_plaintext_gives_different_ciphertext() -> None:
    ring = _ring()
    _, first = ring.encrypt(PHONE, AAD)
    _, second = ring.encrypt(PHONE, AAD)
    assert first != second
    assert first[:12] != second[:12]  # distinct nonces


def test_wrong_aad_fails() -> None:
    ring = _ring()
    key_id, blob = ring.encrypt(PHONE, b"citizen:42:phone")
    # Copying the blob to another row or another column must not decrypt.
    for other in (b"citizen:43:phone", b"citizen:42:name", b""):
        with pytest.raises(CryptoError):
            ring.decrypt(key_id, blob, other)


def test_tampered_blob_fails() -> None:
    ring = _ring()
    key_id, blob = ring.encrypt(PHONE, AAD)
    for pos in (0, 12, len(blob) - 1):  # nonce, ciphertext, tag
        tampered = bytearray(blob)
        tampered[pos] ^= 0x01
        with pytest.raises(CryptoError):
            ring.decrypt(key_id, bytes(tampered), AAD)
    with pytest.raises(CryptoError):
        ring.decrypt(key_id, blob[:-1], AAD)
    with pytest.raises(CryptoError):
        ring.decrypt(key_id, blob[:10], AAD)


def test_unknown_key_id_fails() -> None:
    ring = _ring()
    _, blob = ring.encrypt(PHONE, AAD)
    with pytest.raises(CryptoError, match="k9"):
        ring.decrypt("k9", blob, AAD)


def test_wrong_key_under_right_id_fails() -> None:
    key_id, blob = _ring().encrypt(PHONE, AAD)
    other = Keyring({"k1": _key(7)}, "k1", _key(0xEE))
    with pytest.raises(CryptoError):
        other.decrypt(key_id, blob, AAD)


def test_error_message_never_contains_plaintext() -> None:
    ring = _ring()
    key_id, blob = ring.encrypt(PHONE, AAD)
    with pytest.raises(CryptoError) as info:
        ring.decrypt(key_id, blob, b"other")
    assert PHONE not in str(info.value)


def test_old_primary_still_decrypts_after_rotation() -> None:
    old = _ring(primary="k1")
    key_id, blob = old.encrypt(PHONE, AAD)
    new = _ring(primary="k2")
    assert new.primary_key_id == "k2"
    assert new.decrypt(key_id, blob, AAD) == PHONE
    new_id, new_blob = new.encrypt(PHONE, AAD)
    assert new_id == "k2"
    assert new.decrypt(new_id, new_blob, AAD) == PHONE


def test_plaintext_digits_not_in_blob() -> None:
    ring = _ring()
    for _ in range(20):
        _, blob = ring.encrypt(PHONE, AAD)
        assert PHONE.encode("ascii") not in blob
        assert PHONE.encode("utf-16-le") not in blob


def test_repr_hides_key_material() -> None:
    ring = _ring()
    text = repr(ring)
    assert "k1" in text and "k2" in text
    assert "\\x01" not in text and _b64(_key(1)) not in text


@pytest.mark.parametrize(
    ("keys", "primary", "index_key"),
    [
        ({}, "k1", _key(9)),
        ({"k1": b"short"}, "k1", _key(9)),
        ({"k1": _key(1)}, "k2", _key(9)),
        ({"k1": _key(1)}, "k1", b"short"),
        ({"k1": _key(1)}, "k1", _key(1)),  # index key reused as data key
    ],
)
def test_keyring_rejects_bad_keys(keys: dict[str, bytes], primary: str, index_key: bytes) -> None:
    with pytest.raises(CryptoError):
        Keyring(keys, primary, index_key)


# --- phone normalisation and blind index ----------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "13800138000",
        "+86 138-0013-8000",
        "008613800138000",
        "+8613800138000",
        "0086 138 0013 8000",
        "(138) 0013 8000",
        "＋８６ １３８００１３８０００",  # full-width input
    ],
)
def test_normalise_phone_same_number(raw: str) -> None:
    assert normalise_phone(raw) == PHONE


def test_normalise_phone_edge_cases() -> None:
    assert normalise_phone("") == ""
    assert normalise_phone("anonymous") == ""
    assert normalise_phone("+86") == ""
    # A bare leading 86 is part of a local number, not a country code.
    assert normalise_phone("86123456") == "86123456"
    # Landline in international form regains its domestic trunk 0.
    assert normalise_phone("+86 10 6512 3456") == normalise_phone("010-6512-3456") == "01065123456"
    assert normalise_phone("12345") == "12345"


def test_blind_index_same_for_formats_of_same_number() -> None:
    ring = _ring()
    idx = ring.blind_index(PHONE)
    assert len(idx) == 16
    assert ring.blind_index("+86 138-0013-8000") == idx
    assert ring.blind_index("008613800138000") == idx


def test_blind_index_differs_for_different_numbers() -> None:
    ring = _ring()
    assert ring.blind_index("13800138000") != ring.blind_index("13800138001")


def test_blind_index_differs_with_other_index_key() -> None:
    assert _ring(index_byte=0xEE).blind_index(PHONE) != _ring(index_byte=0xEF).blind_index(PHONE)


def test_blind_index_independent_of_data_keys_and_primary() -> None:
    # Rotating the data key must not change indexes already stored.
    assert _ring(primary="k1").blind_index(PHONE) == _ring(primary="k2").blind_index(PHONE)


def test_blind_index_refuses_empty_number() -> None:
    with pytest.raises(ValueError):
        _ring().blind_index("anonymous")


# --- key files ------------------------------------------------------------------------------


def test_create_key_file_creates_0600_and_loads(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "nested" / "keys.json"
    assert create_key_file(path) is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["version"] == 1 and doc["primary"] in doc["keys"]
    ring = load_keyring(path, env={})
    key_id, blob = ring.encrypt(PHONE, AAD)
    assert ring.decrypt(key_id, blob, AAD) == PHONE


def test_create_key_file_does_not_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    assert create_key_file(path) is True
    before = path.read_bytes()
    assert create_key_file(path) is False
    assert path.read_bytes() == before


def test_create_key_file_makes_fresh_keys(tmp_path: Path) -> None:
    create_key_file(tmp_path / "a.json")
    create_key_file(tmp_path / "b.json")
    a = json.loads((tmp_path / "a.json").read_text())
    b = json.loads((tmp_path / "b.json").read_text())
    assert a["keys"]["k1"] != b["keys"]["k1"]
    assert a["index_key"] != b["index_key"] != a["keys"]["k1"]


def test_load_from_env_takes_precedence(tmp_path: Path) -> None:
    doc = _doc(keys={"k1": _b64(_key(1)), "k7": _b64(_key(7))}, primary="k7")
    missing = tmp_path / "no-such-file.json"
    ring = load_keyring(missing, env={"HOTLINE_KEYS": json.dumps(doc)})
    assert ring.primary_key_id == "k7"
    key_id, blob = ring.encrypt(PHONE, AAD)
    assert key_id == "k7"
    assert ring.decrypt(key_id, blob, AAD) == PHONE


def test_load_from_env_bad_json_names_env(tmp_path: Path) -> None:
    with pytest.raises(CryptoError, match="HOTLINE_KEYS"):
        load_keyring(tmp_path / "x.json", env={"HOTLINE_KEYS": "{not json"})


def test_load_from_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "keys.json", json.dumps(_doc()))
    ring = load_keyring(path, env={})
    assert ring.primary_key_id == "k1"
    assert ring.blind_index(PHONE) == Keyring({"k1": _key(1)}, "k1", _key(9)).blind_index(PHONE)


def test_load_warns_on_loose_mode(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _write(tmp_path / "keys.json", json.dumps(_doc()))
    with caplog.at_level(logging.WARNING, logger="db.crypto"):
        load_keyring(path, env={})
    assert not caplog.records
    os.chmod(path, 0o644)
    with caplog.at_level(logging.WARNING, logger="db.crypto"):
        load_keyring(path, env={})
    assert any(str(path) in r.getMessage() for r in caplog.records)


_BAD_DOCS: dict[str, str] = {
    "bad json": "{not json",
    "not an object": "[1, 2]",
    "wrong version": json.dumps(_doc(version=2)),
    "no keys": json.dumps(_doc(keys={})),
    "key not base64": json.dumps(_doc(keys={"k1": "!!!not base64!!!"})),
    "key too short": json.dumps(_doc(keys={"k1": _b64(b"x" * 16)})),
    "key not string": json.dumps(_doc(keys={"k1": 12345})),
    "primary not among keys": json.dumps(_doc(primary="k2")),
    "missing primary": json.dumps({k: v for k, v in _doc().items() if k != "primary"}),
    "missing index_key": json.dumps({k: v for k, v in _doc().items() if k != "index_key"}),
    "index_key too short": json.dumps(_doc(index_key=_b64(b"x" * 31))),
}


@pytest.mark.parametrize("case", sorted(_BAD_DOCS))
def test_bad_key_file_names_the_file(tmp_path: Path, case: str) -> None:
    path = _write(tmp_path / "keys.json", _BAD_DOCS[case])
    with pytest.raises(CryptoError) as info:
        load_keyring(path, env={})
    message = str(info.value)
    assert str(path) in message
    assert _b64(_key(1)) not in message  # never echo key material


def test_primary_not_among_keys_message(tmp_path: Path) -> None:
    path = _write(tmp_path / "keys.json", json.dumps(_doc(primary="k2")))
    with pytest.raises(CryptoError) as info:
        load_keyring(path, env={})
    assert str(info.value) == f"key file {path}: primary key 'k2' is not among its keys"


def test_missing_key_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "keys.json"
    with pytest.raises(CryptoError) as info:
        load_keyring(path, env={})
    assert str(path) in str(info.value)


def test_empty_env_var_falls_back_to_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "keys.json", json.dumps(_doc()))
    assert load_keyring(path, env={"HOTLINE_KEYS": ""}).primary_key_id == "k1"
