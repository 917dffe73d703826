"""Application-level encryption of citizens' personal fields, with envelope keys.

Phone numbers, names and addresses are encrypted before they reach PostgreSQL, so a database
dump or a read-only SQL account does not expose them. Each encrypted value is stored as
``(key_id, blob)``; the key id lets the primary key change while old rows stay readable.
Exact-match lookups on phone numbers use a keyed blind index (HMAC) instead of the plaintext.

Key hierarchy (docs/privacy.md):

* the **key-encryption key** (KEK) and the **blind-index keys** live only outside the
  database: in a JSON key file (mode 0600) or, for containers, in ``HOTLINE_KEYS``;
* the **data keys** that encrypt the fields live in PostgreSQL (table ``data_keys``) only
  wrapped by the KEK, so a dump holds ciphertext and wrapped keys but nothing to open them.

Key file, version 2::

    {"version": 2, "kek": {"id": "kek-…", "key": "<b64>"},
     "index_keys": {"i1": "<b64>"}, "primary_index": "i1"}

Version 1 files (``{"version": 1, "primary", "keys", "index_key"}``) still load: their keys
are *legacy* data keys used directly; ``hotline keys migrate`` moves them into the database.

The cipher sits behind :class:`Cipher`, chosen by name from a registry, so another one
(SM4 for GB/T 39786) is a registration, not a change to callers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import secrets
import stat
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher as _OsslCipher
from cryptography.hazmat.primitives.ciphers import algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "DEFAULT_KEY_FILE",
    "ENV_VAR",
    "AesGcmCipher",
    "Cipher",
    "CryptoError",
    "DataKey",
    "Kek",
    "Keyring",
    "Sm4GcmCipher",
    "cipher_names",
    "create_key_file",
    "get_cipher",
    "key_document",
    "load_keyring",
    "new_key_id",
    "normalise_phone",
    "register_cipher",
    "write_key_file",
]

log = logging.getLogger(__name__)

KEY_BYTES = 32
BLIND_INDEX_BYTES = 16
KEY_FILE_VERSION = 2
LEGACY_KEY_FILE_VERSION = 1
LEGACY_INDEX_KEY_ID = "i1"  # the id a version-1 file's single index key goes by
ENV_VAR = "HOTLINE_KEYS"
DEFAULT_KEY_FILE = Path("/etc/hotline/keys.json")
DEFAULT_CIPHER = "aes-256-gcm"
KEK_CIPHER = "aes-256-gcm"  # wraps data keys; the KEK is always 256 bits

_NONCE_BYTES = 12
_TAG_BYTES = 16
# Sealed byte strings (voice-message files): magic, key-id length, key id, cipher blob.
_SEAL_MAGIC = b"HLE1"


class CryptoError(Exception):
    """Encryption, decryption or key loading failed.

    Messages are plain sentences and never contain plaintext or key material, so they are safe
    to log.
    """


class Cipher(Protocol):
    """An authenticated cipher; callers only see opaque blobs, so SM4 etc. can be added later."""

    name: str
    key_bytes: int

    def encrypt(self, key: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt and authenticate ``plaintext``, binding it to ``aad``; return one blob."""
        ...

    def decrypt(self, key: bytes, blob: bytes, aad: bytes) -> bytes:
        """Reverse :meth:`encrypt`; raise :class:`CryptoError` if the blob or aad do not match."""
        ...


_INTEGRITY = ("encrypted value failed its integrity check "
              "(wrong key, wrong row/column binding, or tampered data)")


class AesGcmCipher:
    """AES-256-GCM. Blob layout: 12-byte random nonce || ciphertext || 16-byte tag."""

    name: str = "aes-256-gcm"
    key_bytes: int = KEY_BYTES

    def encrypt(self, key: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt with a fresh random nonce (never reuse a nonce under one GCM key)."""
        _check_key(key, self.key_bytes)
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)

    def decrypt(self, key: bytes, blob: bytes, aad: bytes) -> bytes:
        """Decrypt a blob from :meth:`encrypt`; a wrong key, aad or any tampering fails."""
        _check_key(key, self.key_bytes)
        if len(blob) < _NONCE_BYTES + _TAG_BYTES:
            raise CryptoError("encrypted value is too short to be valid")
        nonce, body = blob[:_NONCE_BYTES], blob[_NONCE_BYTES:]
        try:
            return AESGCM(key).decrypt(nonce, body, aad)
        except InvalidTag:
            # Same message for wrong key, wrong aad and tampering: GCM cannot tell them apart.
            raise CryptoError(_INTEGRITY) from None


class Sm4GcmCipher:
    """SM4-GCM (GB/T 32907 block cipher in GCM mode, as GB/T 39786 allows), through the
    ``cryptography`` package's OpenSSL. 128-bit keys; same blob layout as AES-GCM."""

    name: str = "sm4-gcm"
    key_bytes: int = 16

    def encrypt(self, key: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt with a fresh random nonce."""
        _check_key(key, self.key_bytes)
        nonce = os.urandom(_NONCE_BYTES)
        enc = _OsslCipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
        enc.authenticate_additional_data(aad)
        body = enc.update(plaintext) + enc.finalize()
        return nonce + body + enc.tag

    def decrypt(self, key: bytes, blob: bytes, aad: bytes) -> bytes:
        """Decrypt a blob from :meth:`encrypt`; a wrong key, aad or any tampering fails."""
        _check_key(key, self.key_bytes)
        if len(blob) < _NONCE_BYTES + _TAG_BYTES:
            raise CryptoError("encrypted value is too short to be valid")
        nonce, body, tag = blob[:_NONCE_BYTES], blob[_NONCE_BYTES:-_TAG_BYTES], blob[-_TAG_BYTES:]
        dec = _OsslCipher(algorithms.SM4(key), modes.GCM(nonce, tag)).decryptor()
        dec.authenticate_additional_data(aad)
        try:
            return dec.update(body) + dec.finalize()
        except InvalidTag:
            raise CryptoError(_INTEGRITY) from None


_CIPHERS: dict[str, Callable[[], Cipher]] = {}


def register_cipher(name: str, factory: Callable[[], Cipher]) -> None:
    """Make a cipher available by name (for new data keys: ``hotline keys rotate --cipher``)."""
    _CIPHERS[name] = factory


def get_cipher(name: str) -> Cipher:
    """The registered cipher called ``name``; :class:`CryptoError` if there is none."""
    factory = _CIPHERS.get(name)
    if factory is None:
        raise CryptoError(f"unknown cipher {name!r}; known ciphers: {', '.join(cipher_names())}")
    return factory()


def cipher_names() -> list[str]:
    """Names of the registered ciphers."""
    return sorted(_CIPHERS)


register_cipher(AesGcmCipher.name, AesGcmCipher)
register_cipher(Sm4GcmCipher.name, Sm4GcmCipher)


def _check_key(key: bytes, size: int = KEY_BYTES) -> None:
    if len(key) != size:
        raise CryptoError(f"encryption key must be {size} bytes, got {len(key)}")


def normalise_phone(value: str) -> str:
    """Reduce a phone number to its national digits so differently written forms compare equal.

    "+86 138-0013-8000", "008613800138000" and "13800138000" all give "13800138000".
    Returns "" when the value holds no digits.
    """
    # NFKC turns full-width digits and "＋" (common in Chinese input methods) into ASCII.
    text = unicodedata.normalize("NFKC", value).strip()
    digits = "".join(ch for ch in text if "0" <= ch <= "9")
    if text.startswith("+86"):
        national = digits[2:]
    elif digits.startswith("0086"):
        national = digits[4:]
    else:
        # A bare leading "86" is NOT stripped: local landline numbers can start with 8.
        return digits
    # International form drops the domestic trunk "0" of landlines ("+86 10 6512 3456" is
    # dialled "010 6512 3456" at home); put it back so both forms share one blind index.
    # 11-digit numbers starting with 1 are mobiles, which have no trunk prefix.
    is_mobile = len(national) == 11 and national.startswith("1")
    if national and not is_mobile and not national.startswith("0"):
        national = "0" + national
    return national


@dataclass(frozen=True)
class DataKey:
    """One data key: its id, raw key and the cipher it is used with (repr hides the key)."""

    id: str
    key: bytes = field(repr=False)
    cipher: Cipher = field(repr=False)


@dataclass(frozen=True)
class Kek:
    """The key-encryption key that wraps data keys (repr hides the key)."""

    id: str
    key: bytes = field(repr=False)


@dataclass(frozen=True)
class _State:
    keys: Mapping[str, DataKey]
    primary: str | None
    index_keys: Mapping[str, bytes]
    primary_index: str
    kek: Kek | None


@dataclass(frozen=True)
class _Source:
    """Where a keyring was loaded from, to re-read it when the keys change."""

    path: Path | None
    env_text: str | None


class Keyring:
    """Data keys by key id, the primary key id used for new data, and the blind-index keys.

    Built directly (``Keyring(keys, primary, index_key)``) it holds *legacy* data keys used
    as they are. Loaded from a version-2 key file it holds the KEK and index keys; its data
    keys come from the database (db/keys.py unwraps and installs them). The key set is one
    immutable snapshot swapped as a whole, so a reload never shows a half-updated keyring.
    A repr never shows key material.
    """

    __slots__ = ("_state", "_source", "_default_cipher")

    def __init__(
        self,
        keys: Mapping[str, bytes],
        primary: str,
        index_key: bytes,
        cipher: Cipher | None = None,
    ) -> None:
        """Build a keyring of legacy data keys; raise :class:`CryptoError` if any is malformed."""
        self._default_cipher: Cipher = cipher if cipher is not None else AesGcmCipher()
        self._source: _Source | None = None
        if not keys:
            raise CryptoError("keyring has no data keys")
        data = _legacy_keys(keys, self._default_cipher)
        if primary not in data:
            raise CryptoError(f"primary key {primary!r} is not among the keyring's keys")
        index = {LEGACY_INDEX_KEY_ID: bytes(index_key)}
        _check_index_keys(index, data)
        self._state = _State(MappingProxyType(data), primary, MappingProxyType(index),
                             LEGACY_INDEX_KEY_ID, None)

    @classmethod
    def envelope(cls, kek: Kek, index_keys: Mapping[str, bytes], primary_index: str) -> Keyring:
        """A keyring holding a KEK and index keys; data keys are installed from the database."""
        ring = cls.__new__(cls)
        ring._default_cipher = get_cipher(DEFAULT_CIPHER)
        ring._source = None
        _check_key(kek.key)
        if primary_index not in index_keys:
            raise CryptoError(f"primary index key {primary_index!r} is not among the index keys")
        _check_index_keys(dict(index_keys), {})
        if any(hmac.compare_digest(kek.key, k) for k in index_keys.values()):
            raise CryptoError("the key-encryption key must differ from every index key")
        ring._state = _State(MappingProxyType({}), None, MappingProxyType(dict(index_keys)),
                             primary_index, kek)
        return ring

    def __repr__(self) -> str:
        s = self._state
        return (
            f"Keyring(key_ids={sorted(s.keys)!r}, primary={s.primary!r}, "
            f"index_keys={sorted(s.index_keys)!r}, kek={s.kek.id if s.kek else None!r}, "
            f"cipher={self.cipher_name!r})"
        )

    # -- what it holds ---------------------------------------------------------------------

    @property
    def primary_key_id(self) -> str:
        """Key id that :meth:`encrypt` uses for new data."""
        primary = self._state.primary
        if primary is None:
            raise CryptoError("no data key is loaded yet (the keyring has not read the "
                              "database's data keys)")
        return primary

    @property
    def key_ids(self) -> frozenset[str]:
        """All key ids this keyring can decrypt with."""
        return frozenset(self._state.keys)

    @property
    def cipher_name(self) -> str:
        """Name of the cipher new data is encrypted with, e.g. "aes-256-gcm"."""
        s = self._state
        if s.primary is not None:
            return s.keys[s.primary].cipher.name
        return self._default_cipher.name

    @property
    def kek_id(self) -> str | None:
        """Id of the key-encryption key, or None for a keyring of legacy (file) data keys."""
        kek = self._state.kek
        return kek.id if kek else None

    @property
    def is_envelope(self) -> bool:
        """Whether data keys come wrapped from the database (key file version 2)."""
        return self._state.kek is not None

    @property
    def needs_data_keys(self) -> bool:
        """True for an envelope keyring that has not installed its data keys yet."""
        return self._state.kek is not None and self._state.primary is None

    @property
    def index_key_id(self) -> str:
        """Id of the index key new blind indexes are made with."""
        return self._state.primary_index

    @property
    def index_key_ids(self) -> frozenset[str]:
        """Ids of every index key held (more than one while the index is being rebuilt)."""
        return frozenset(self._state.index_keys)

    @property
    def source_path(self) -> Path | None:
        """The key file this keyring was loaded from (None: built in code, or from the env)."""
        return self._source.path if self._source else None

    @property
    def from_env(self) -> bool:
        """Whether this keyring was loaded from ``HOTLINE_KEYS``."""
        return bool(self._source and self._source.env_text is not None)

    def legacy_keys(self) -> dict[str, DataKey]:
        """The data keys of a legacy (version 1) keyring, to move them into the database."""
        if self._state.kek is not None:
            return {}
        return dict(self._state.keys)

    # -- fields ----------------------------------------------------------------------------

    def encrypt(self, plaintext: str, aad: bytes) -> tuple[str, bytes]:
        """Encrypt under the primary key; return ``(key_id, blob)`` to store side by side.

        ``aad`` should bind the value to its place (e.g. b"citizen:42:phone") so a blob copied
        into another row or column fails to decrypt.
        """
        key_id, blob = self.encrypt_bytes(plaintext.encode("utf-8"), aad)
        return key_id, blob

    def decrypt(self, key_id: str, blob: bytes, aad: bytes) -> str:
        """Decrypt a value stored with ``key_id``; raise :class:`CryptoError` on any failure."""
        data = self.decrypt_bytes(key_id, blob, aad)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise CryptoError("decrypted value is not valid UTF-8 text") from None

    def encrypt_bytes(self, data: bytes, aad: bytes) -> tuple[str, bytes]:
        """Like :meth:`encrypt`, for bytes."""
        s = self._state
        key_id = self.primary_key_id
        dk = s.keys[key_id]
        return key_id, dk.cipher.encrypt(dk.key, data, aad)

    def decrypt_bytes(self, key_id: str, blob: bytes, aad: bytes) -> bytes:
        """Like :meth:`decrypt`, returning bytes."""
        dk = self._state.keys.get(key_id)
        if dk is None:
            raise CryptoError(f"unknown key id {key_id!r}; the keyring does not hold that key")
        return dk.cipher.decrypt(dk.key, bytes(blob), aad)

    # -- sealed byte strings (files) -------------------------------------------------------

    def seal(self, data: bytes, aad: bytes) -> bytes:
        """Encrypt bytes (a voice message) into a self-describing blob that names its key."""
        key_id, blob = self.encrypt_bytes(data, aad)
        kid = key_id.encode("utf-8")
        return _SEAL_MAGIC + bytes([len(kid)]) + kid + blob

    def unseal(self, sealed: bytes, aad: bytes) -> bytes:
        """Reverse :meth:`seal`; :class:`CryptoError` for a wrong key, aad or damage."""
        key_id, blob = _split_sealed(sealed)
        return self.decrypt_bytes(key_id, blob, aad)

    @staticmethod
    def sealed_key_id(data: bytes) -> str | None:
        """The key id a sealed blob names, or None when ``data`` is not sealed (plaintext)."""
        if not data.startswith(_SEAL_MAGIC):
            return None
        return _split_sealed(data)[0]

    # -- blind index -----------------------------------------------------------------------

    def blind_index(self, value: str) -> bytes:
        """Keyed, truncated HMAC-SHA256 of the normalised phone number, for exact-match lookup.

        Made with the primary index key. Raises ``ValueError`` if the value has no digits:
        indexing "" would make every anonymous/withheld caller match every other one.
        """
        s = self._state
        return _bidx(s.index_keys[s.primary_index], value)

    def blind_indexes(self, value: str) -> list[bytes]:
        """The value's blind index under every index key held: what a lookup must match
        while the index is being rebuilt under a new key."""
        s = self._state
        ordered = [s.primary_index, *sorted(set(s.index_keys) - {s.primary_index})]
        return [_bidx(s.index_keys[i], value) for i in ordered]

    # -- envelope --------------------------------------------------------------------------

    def wrap_data_key(self, key_id: str, key: bytes, cipher_name: str) -> bytes:
        """Encrypt a data key under the KEK, bound to its id and cipher."""
        kek = self._require_kek()
        return get_cipher(KEK_CIPHER).encrypt(kek.key, key, _wrap_aad(key_id, cipher_name))

    def unwrap_data_key(self, key_id: str, cipher_name: str, kek_id: str,
                        wrapped: bytes) -> DataKey:
        """Open a data key stored wrapped in the database."""
        kek = self._require_kek()
        if kek_id != kek.id:
            raise CryptoError(
                f"data key {key_id!r} is wrapped by key-encryption key {kek_id!r}, but the key "
                f"file holds {kek.id!r}: this is not the key file of this database")
        cipher = get_cipher(cipher_name)
        try:
            raw = get_cipher(KEK_CIPHER).decrypt(kek.key, bytes(wrapped),
                                                 _wrap_aad(key_id, cipher_name))
        except CryptoError:
            raise CryptoError(
                f"data key {key_id!r} cannot be unwrapped with key-encryption key "
                f"{kek.id!r}: the key file holds a different key under that id "
                "(wrong or damaged key file)") from None
        if len(raw) != cipher.key_bytes:
            raise CryptoError(f"data key {key_id!r} has the wrong length for {cipher_name}")
        return DataKey(key_id, raw, cipher)

    def install_data_keys(self, keys: Mapping[str, DataKey], primary: str | None) -> None:
        """Replace the data keys (unwrapped from the database) in one step."""
        s = self._state
        if primary is not None and primary not in keys:
            raise CryptoError(f"primary data key {primary!r} is not among the loaded keys")
        merged = dict(keys)
        _check_index_keys(dict(s.index_keys), merged)
        self._state = _State(MappingProxyType(merged), primary, s.index_keys, s.primary_index,
                             s.kek)

    def reload_source(self) -> bool:
        """Re-read the key file (or env) this keyring came from: a new index key, or a move
        from version 1 to 2. Data keys already installed are kept. True if it was re-read."""
        src = self._source
        if src is None:
            return False
        fresh = (_parse_key_document(src.env_text, f"environment variable {ENV_VAR}")
                 if src.env_text is not None else _read_key_file(src.path or DEFAULT_KEY_FILE))
        new = fresh._state
        old = self._state
        if new.kek is None:
            self._state = new  # still version 1: its keys are the data keys
        else:
            keys = old.keys if old.kek is not None and old.kek.id == new.kek.id else {}
            primary = old.primary if keys else None
            _check_index_keys(dict(new.index_keys), dict(keys))
            self._state = _State(MappingProxyType(dict(keys)), primary, new.index_keys,
                                 new.primary_index, new.kek)
        return True

    def document(self, index_keys: Mapping[str, bytes] | None = None,
                 primary_index: str | None = None) -> dict[str, Any]:
        """This keyring's version-2 key-file document (optionally with other index keys)."""
        s = self._state
        kek = self._require_kek()
        return key_document(kek, index_keys if index_keys is not None else s.index_keys,
                            primary_index or s.primary_index)

    def index_keys(self) -> dict[str, bytes]:
        """The index keys (for writing a key file during index rotation)."""
        return dict(self._state.index_keys)

    def _require_kek(self) -> Kek:
        kek = self._state.kek
        if kek is None:
            raise CryptoError("this keyring has no key-encryption key (a version 1 key file): "
                              "run `hotline keys migrate` first")
        return kek


def _legacy_keys(keys: Mapping[str, bytes], cipher: Cipher) -> dict[str, DataKey]:
    out: dict[str, DataKey] = {}
    for key_id, key in keys.items():
        if not key_id:
            raise CryptoError("keyring has a data key with an empty key id")
        if len(key) != cipher.key_bytes:
            raise CryptoError(f"data key {key_id!r} must be {cipher.key_bytes} bytes")
        out[key_id] = DataKey(key_id, bytes(key), cipher)
    return out


def _check_index_keys(index: dict[str, bytes], data: Mapping[str, DataKey]) -> None:
    for index_id, key in index.items():
        if len(key) != KEY_BYTES:
            raise CryptoError(f"blind-index key {index_id!r} must be {KEY_BYTES} bytes")
        if any(hmac.compare_digest(key, dk.key) for dk in data.values()):
            # Reusing a data key for the index would tie two independent secrets together.
            raise CryptoError("blind-index key must differ from every data key")


def _bidx(index_key: bytes, value: str) -> bytes:
    phone = normalise_phone(value)
    if not phone:
        raise ValueError("phone number has no digits to index")
    return hmac.new(index_key, phone.encode("ascii"), hashlib.sha256).digest()[:BLIND_INDEX_BYTES]


def _wrap_aad(key_id: str, cipher_name: str) -> bytes:
    return f"data_key:{key_id}:{cipher_name}".encode()


def _split_sealed(data: bytes) -> tuple[str, bytes]:
    if not data.startswith(_SEAL_MAGIC) or len(data) < len(_SEAL_MAGIC) + 2:
        raise CryptoError("the file is not an encrypted hotline file")
    n = data[len(_SEAL_MAGIC)]
    start = len(_SEAL_MAGIC) + 1
    try:
        key_id = data[start:start + n].decode("utf-8")
    except UnicodeDecodeError:
        raise CryptoError("the encrypted file's header is damaged") from None
    return key_id, data[start + n:]


def new_key_id(prefix: str) -> str:
    """A fresh, random key id such as ``k3f9a01c2`` (ids are never reused)."""
    return f"{prefix}{secrets.token_hex(4)}"


def _b64key(value: object, what: str, size: int = KEY_BYTES) -> bytes:
    """Decode one base64 key; the error text names the key but never its content."""
    if not isinstance(value, str):
        raise CryptoError(f"{what} is not a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise CryptoError(f"{what} is not valid base64") from None
    if len(raw) != size:
        raise CryptoError(f"{what} is {len(raw)} bytes, expected {size}")
    return raw


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _parse_key_document(text: str, source: str) -> Keyring:
    """Parse the key-file JSON; every error message starts with ``source``."""
    try:
        doc: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        # Only the position, not exc.doc: the document holds the keys.
        raise CryptoError(
            f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:  # [[[[... thousands deep
        raise CryptoError(f"{source}: not valid JSON (nested too deeply)") from None
    if not isinstance(doc, dict):
        raise CryptoError(f"{source}: expected a JSON object")
    version = doc.get("version")
    try:
        if version == LEGACY_KEY_FILE_VERSION:
            ring = _parse_v1(doc)
        elif version == KEY_FILE_VERSION:
            ring = _parse_v2(doc)
        else:
            raise CryptoError(f"unsupported version {version!r}, expected "
                              f"{KEY_FILE_VERSION} (or {LEGACY_KEY_FILE_VERSION})")
    except CryptoError as exc:
        raise CryptoError(f"{source}: {exc}") from None
    return ring


def _parse_v1(doc: dict[str, Any]) -> Keyring:
    raw_keys = doc.get("keys")
    if not isinstance(raw_keys, dict) or not raw_keys:
        raise CryptoError("'keys' must be a non-empty object of key id to key")
    keys: dict[str, bytes] = {}
    for key_id, encoded in raw_keys.items():
        if not key_id:
            raise CryptoError("a key has an empty key id")
        keys[key_id] = _b64key(encoded, f"key {key_id!r}")
    primary = doc.get("primary")
    if not isinstance(primary, str):
        raise CryptoError("'primary' key id is missing or not a string")
    if primary not in keys:
        raise CryptoError(f"primary key {primary!r} is not among its keys")
    if "index_key" not in doc:
        raise CryptoError("'index_key' is missing")
    index_key = _b64key(doc["index_key"], "'index_key'")
    return Keyring(keys, primary, index_key)


def _parse_v2(doc: dict[str, Any]) -> Keyring:
    raw_kek = doc.get("kek")
    if not isinstance(raw_kek, dict) or not isinstance(raw_kek.get("id"), str) \
            or not raw_kek["id"]:
        raise CryptoError("'kek' must be an object with an 'id' and a 'key'")
    kek = Kek(raw_kek["id"], _b64key(raw_kek.get("key"), "the key-encryption key"))
    raw_index = doc.get("index_keys")
    if not isinstance(raw_index, dict) or not raw_index:
        raise CryptoError("'index_keys' must be a non-empty object of key id to key")
    index: dict[str, bytes] = {}
    for key_id, encoded in raw_index.items():
        if not key_id:
            raise CryptoError("an index key has an empty key id")
        index[key_id] = _b64key(encoded, f"index key {key_id!r}")
    primary_index = doc.get("primary_index")
    if not isinstance(primary_index, str) or primary_index not in index:
        raise CryptoError(f"'primary_index' {primary_index!r} is not among its index keys")
    return Keyring.envelope(kek, index, primary_index)


def key_document(kek: Kek, index_keys: Mapping[str, bytes], primary_index: str) -> dict[str, Any]:
    """A version-2 key-file document."""
    return {
        "version": KEY_FILE_VERSION,
        "kek": {"id": kek.id, "key": _b64(kek.key)},
        "index_keys": {k: _b64(v) for k, v in index_keys.items()},
        "primary_index": primary_index,
    }


def _fresh_key() -> str:
    return _b64(secrets.token_bytes(KEY_BYTES))


def create_key_file(path: Path) -> bool:
    """Create a new random version-2 key file (mode 0600) unless one exists; True if created.

    Never overwrites: losing the old keys would make every encrypted row unreadable.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = key_document(Kek(new_key_id("kek-"), secrets.token_bytes(KEY_BYTES)),
                       {new_key_id("i"): secrets.token_bytes(KEY_BYTES)}, "")
    doc["primary_index"] = next(iter(doc["index_keys"]))
    data = (json.dumps(doc, indent=2) + "\n").encode("ascii")
    try:
        # O_EXCL makes "does it exist?" and "create it" one atomic step; mode 0600 at creation
        # means the keys are never readable by others, not even for an instant.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        # A half-written key file would block the next attempt and fail to load; remove it.
        path.unlink(missing_ok=True)
        raise
    return True


def write_private_file(path: Path, data: bytes) -> None:
    """Write bytes to ``path`` atomically with mode 0600 (temporary file, fsync, rename):
    readers see the old content or the new, never half of it, nor anyone else's eyes."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_key_file(path: Path, doc: Mapping[str, Any]) -> None:
    """Replace a key file atomically (new file 0600, fsync, rename, fsync the folder), so a
    crash leaves either the old or the new file, never a half-written one."""
    path = Path(path)
    write_private_file(path, (json.dumps(dict(doc), indent=2) + "\n").encode("ascii"))
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _read_key_file(key_path: Path) -> Keyring:
    source = f"key file {key_path}"
    try:
        st = key_path.stat()
        text = key_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CryptoError(f"{source}: does not exist") from None
    except UnicodeDecodeError:
        raise CryptoError(f"{source}: is not UTF-8 text") from None
    except OSError as exc:
        raise CryptoError(f"{source}: cannot be read ({exc.strerror or exc})") from None
    if stat.S_IMODE(st.st_mode) & 0o077:
        log.warning(
            "key file %s has mode %o, which lets group/other users read it; use chmod 600",
            key_path,
            stat.S_IMODE(st.st_mode),
        )
    return _parse_key_document(text, source)


def load_keyring(path: Path | None = None, env: Mapping[str, str] | None = None) -> Keyring:
    """Load the keyring from ``$HOTLINE_KEYS`` (JSON) if set and non-empty, else from ``path``.

    ``path`` defaults to :data:`DEFAULT_KEY_FILE`. Raises :class:`CryptoError` naming the
    source for a missing/unreadable file or a malformed document. A version-2 keyring still
    needs its data keys from the database (db/keys.py ``ensure_loaded``).
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    from_env = environ.get(ENV_VAR, "")
    if from_env.strip():
        ring = _parse_key_document(from_env, f"environment variable {ENV_VAR}")
        ring._source = _Source(None, from_env)
        return ring
    key_path = DEFAULT_KEY_FILE if path is None else Path(path)
    ring = _read_key_file(key_path)
    ring._source = _Source(key_path, None)
    return ring
