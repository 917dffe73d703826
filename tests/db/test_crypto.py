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
    # Version 2: the key-encryption key and the index key; data keys live in the database.
    assert doc["version"] == 2 and doc["primary_index"] in doc["index_keys"]
    assert set(doc["kek"]) == {"id", "key"} and "keys" not in doc
    ring = load_keyring(path, env={})
    assert ring.is_envelope and ring.needs_data_keys and ring.kek_id == doc["kek"]["id"]
    assert len(ring.blind_index(PHONE)) == 16
    with pytest.raises(CryptoError, match="no data key"):
        ring.encrypt(PHONE, AAD)


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
    assert a["kek"]["key"] != b["kek"]["key"]
    assert list(a["index_keys"].values()) != list(b["index_keys"].values())
    assert a["kek"]["key"] not in a["index_keys"].values()


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


# --- cipher registry, SM4, sealed files, version-2 files -----------------------------------


def test_ciphers_are_chosen_by_name_and_sm4_round_trips() -> None:
    from db.crypto import cipher_names, get_cipher

    assert {"aes-256-gcm", "sm4-gcm"} <= set(cipher_names())
    sm4 = get_cipher("sm4-gcm")
    key = bytes(range(16))
    blob = sm4.encrypt(key, "张三".encode(), b"aad")
    assert sm4.decrypt(key, blob, b"aad").decode() == "张三"
    with pytest.raises(CryptoError):
        sm4.decrypt(key, blob, b"other")
    with pytest.raises(CryptoError, match="unknown cipher 'rot13'"):
        get_cipher("rot13")


def test_sealed_bytes_name_their_key_and_are_bound_to_their_file() -> None:
    ring = _ring()
    wav = b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(100)
    sealed = ring.seal(wav, b"recording:a.wav")
    assert not sealed.startswith(b"RIFF") and b"WAVE" not in sealed
    assert Keyring.sealed_key_id(sealed) == "k1" and Keyring.sealed_key_id(wav) is None
    assert ring.unseal(sealed, b"recording:a.wav") == wav
    with pytest.raises(CryptoError):
        ring.unseal(sealed, b"recording:b.wav")


def _v2(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"version": 2, "kek": {"id": "kek-1", "key": _b64(_key(5))},
                           "index_keys": {"i1": _b64(_key(9))}, "primary_index": "i1"}
    doc.update(overrides)
    return doc


@pytest.mark.parametrize("doc", [
    _v2(kek=None), _v2(kek={"id": "kek-1"}), _v2(kek={"id": "", "key": _b64(_key(5))}),
    _v2(index_keys={}), _v2(primary_index="i9"), _v2(kek={"id": "k", "key": _b64(_key(9))}),
])
def test_bad_version_2_key_file_names_the_file(tmp_path: Path, doc: dict[str, Any]) -> None:
    path = _write(tmp_path / "keys.json", json.dumps(doc))
    with pytest.raises(CryptoError) as info:
        load_keyring(path, env={})
    assert str(path) in str(info.value) and _b64(_key(5)) not in str(info.value)


def test_version_2_keyring_keeps_the_index_of_a_version_1_file(tmp_path: Path) -> None:
    v1 = load_keyring(_write(tmp_path / "a.json", json.dumps(_doc())), env={})
    v2 = load_keyring(_write(tmp_path / "b.json", json.dumps(_v2())), env={})
    assert v2.index_key_id == v1.index_key_id == "i1"
    assert v2.blind_index(PHONE) == v1.blind_index(PHONE)
    assert "kek-1" in repr(v2) and _b64(_key(5)) not in repr(v2)


def test_a_keyring_rereads_its_file_for_a_new_index_key(tmp_path: Path) -> None:
    from db.crypto import write_key_file

    path = _write(tmp_path / "keys.json", json.dumps(_v2()))
    ring = load_keyring(path, env={})
    old = ring.blind_index(PHONE)
    write_key_file(path, _v2(index_keys={"i1": _b64(_key(9)), "i2": _b64(_key(8))},
                             primary_index="i2"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ring.reload_source()
    assert ring.index_key_id == "i2" and ring.blind_index(PHONE) != old
    assert old in ring.blind_indexes(PHONE)  # lookups match both while rebuilding
