"""Application-level encryption of citizens' personal fields.

Phone numbers, names and addresses are encrypted before they reach PostgreSQL, so a database
dump or a read-only SQL account does not expose them. Each encrypted value is stored as
``(key_id, blob)``; the key id lets us rotate the primary key while old rows stay readable.
Exact-match lookups on phone numbers use a keyed blind index (HMAC) instead of the plaintext.

The keys live outside the database: in a JSON key file (mode 0600) or, for containers, in the
``HOTLINE_KEYS`` environment variable holding the same JSON document.
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
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "DEFAULT_KEY_FILE",
    "ENV_VAR",
    "AesGcmCipher",
    "Cipher",
    "CryptoError",
    "Keyring",
    "create_key_file",
    "load_keyring",
    "normalise_phone",
]

log = logging.getLogger(__name__)

KEY_BYTES = 32
BLIND_INDEX_BYTES = 16
KEY_FILE_VERSION = 1
ENV_VAR = "HOTLINE_KEYS"
DEFAULT_KEY_FILE = Path("/etc/hotline/keys.json")

_NONCE_BYTES = 12
_TAG_BYTES = 16


class CryptoError(Exception):
    """Encryption, decryption or key loading failed.

    Messages are plain sentences and never contain plaintext or key material, so they are safe
    to log.
    """


class Cipher(Protocol):
    """An authenticated cipher; callers only see opaque blobs, so SM4 etc. can be added later."""

    name: str

    def encrypt(self, key: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt and authenticate ``plaintext``, binding it to ``aad``; return one blob."""
        ...

    def decrypt(self, key: bytes, blob: bytes, aad: bytes) -> bytes:
        """Reverse :meth:`encrypt`; raise :class:`CryptoError` if the blob or aad do not match."""
        ...


class AesGcmCipher:
    """AES-256-GCM. Blob layout: 12-byte random nonce || ciphertext || 16-byte tag."""

    name: str = "aes-256-gcm"

    def encrypt(self, key: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt with a fresh random nonce (never reuse a nonce under one GCM key)."""
        _check_key(key)
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)

    def decrypt(self, key: bytes, blob: bytes, aad: bytes) -> bytes:
        """Decrypt a blob from :meth:`encrypt`; a wrong key, aad or any tampering fails."""
        _check_key(key)
        if len(blob) < _NONCE_BYTES + _TAG_BYTES:
            raise CryptoError("encrypted value is too short to be valid")
        nonce, body = blob[:_NONCE_BYTES], blob[_NONCE_BYTES:]
        try:
            return AESGCM(key).decrypt(nonce, body, aad)
        except InvalidTag:
            # Same message for wrong key, wrong aad and tampering: GCM cannot tell them apart.
            raise CryptoError(
                "encrypted value failed its integrity check "
                "(wrong key, wrong row/column binding, or tampered data)"
            ) from None


def _check_key(key: bytes) -> None:
    if len(key) != KEY_BYTES:
        raise CryptoError(f"encryption key must be {KEY_BYTES} bytes, got {len(key)}")


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


class Keyring:
    """Data keys by key id, the primary key id used for new data, and the blind-index key.

    Immutable; a repr never shows key material.
    """

    __slots__ = ("_keys", "_primary", "_index_key", "_cipher")

    def __init__(
        self,
        keys: Mapping[str, bytes],
        primary: str,
        index_key: bytes,
        cipher: Cipher | None = None,
    ) -> None:
        """Build a keyring; raise :class:`CryptoError` if any key is malformed."""
        if not keys:
            raise CryptoError("keyring has no data keys")
        for key_id, key in keys.items():
            if not key_id:
                raise CryptoError("keyring has a data key with an empty key id")
            if len(key) != KEY_BYTES:
                raise CryptoError(f"data key {key_id!r} must be {KEY_BYTES} bytes")
        if primary not in keys:
            raise CryptoError(f"primary key {primary!r} is not among the keyring's keys")
        if len(index_key) != KEY_BYTES:
            raise CryptoError(f"blind-index key must be {KEY_BYTES} bytes")
        if any(hmac.compare_digest(index_key, key) for key in keys.values()):
            # Reusing a data key for the index would tie two independent secrets together.
            raise CryptoError("blind-index key must differ from every data key")
        self._keys: Mapping[str, bytes] = MappingProxyType(dict(keys))
        self._primary = primary
        self._index_key = bytes(index_key)
        self._cipher: Cipher = cipher if cipher is not None else AesGcmCipher()

    def __repr__(self) -> str:
        return (
            f"Keyring(key_ids={sorted(self._keys)!r}, primary={self._primary!r}, "
            f"cipher={self._cipher.name!r})"
        )

    @property
    def primary_key_id(self) -> str:
        """Key id that :meth:`encrypt` uses for new data."""
        return self._primary

    @property
    def key_ids(self) -> frozenset[str]:
        """All key ids this keyring can decrypt with."""
        return frozenset(self._keys)

    @property
    def cipher_name(self) -> str:
        """Name of the cipher in use, e.g. "aes-256-gcm"."""
        return self._cipher.name

    def encrypt(self, plaintext: str, aad: bytes) -> tuple[str, bytes]:
        """Encrypt under the primary key; return ``(key_id, blob)`` to store side by side.

        ``aad`` should bind the value to its place (e.g. b"citizen:42:phone") so a blob copied
        into another row or column fails to decrypt.
        """
        blob = self._cipher.encrypt(self._keys[self._primary], plaintext.encode("utf-8"), aad)
        return self._primary, blob

    def decrypt(self, key_id: str, blob: bytes, aad: bytes) -> str:
        """Decrypt a value stored with ``key_id``; raise :class:`CryptoError` on any failure."""
        key = self._keys.get(key_id)
        if key is None:
            raise CryptoError(f"unknown key id {key_id!r}; the keyring does not hold that key")
        data = self._cipher.decrypt(key, bytes(blob), aad)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise CryptoError("decrypted value is not valid UTF-8 text") from None

    def blind_index(self, value: str) -> bytes:
        """Keyed, truncated HMAC-SHA256 of the normalised phone number, for exact-match lookup.

        Raises ``ValueError`` if the value has no digits: indexing "" would make every
        anonymous/withheld caller match every other one.
        """
        phone = normalise_phone(value)
        if not phone:
            raise ValueError("phone number has no digits to index")
        digest = hmac.new(self._index_key, phone.encode("ascii"), hashlib.sha256).digest()
        return digest[:BLIND_INDEX_BYTES]


def _b64key(value: object, what: str) -> bytes:
    """Decode one base64 key; the error text names the key but never its content."""
    if not isinstance(value, str):
        raise CryptoError(f"{what} is not a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise CryptoError(f"{what} is not valid base64") from None
    if len(raw) != KEY_BYTES:
        raise CryptoError(f"{what} is {len(raw)} bytes, expected {KEY_BYTES}")
    return raw


def _parse_key_document(text: str, source: str) -> Keyring:
    """Parse the key-file JSON; every error message starts with ``source``."""
    try:
        doc: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        # Only the position, not exc.doc: the document holds the keys.
        raise CryptoError(
            f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(doc, dict):
        raise CryptoError(f"{source}: expected a JSON object")
    if doc.get("version") != KEY_FILE_VERSION:
        raise CryptoError(
            f"{source}: unsupported version {doc.get('version')!r}, expected {KEY_FILE_VERSION}"
        )
    raw_keys = doc.get("keys")
    if not isinstance(raw_keys, dict) or not raw_keys:
        raise CryptoError(f"{source}: 'keys' must be a non-empty object of key id to key")
    try:
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
    except CryptoError as exc:
        raise CryptoError(f"{source}: {exc}") from None


def _fresh_key() -> str:
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def create_key_file(path: Path) -> bool:
    """Create a new random key file (mode 0600) unless one exists; True if it was created.

    Never overwrites: losing the old keys would make every encrypted row unreadable.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "version": KEY_FILE_VERSION,
        "primary": "k1",
        "keys": {"k1": _fresh_key()},
        "index_key": _fresh_key(),
    }
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


def load_keyring(path: Path | None = None, env: Mapping[str, str] | None = None) -> Keyring:
    """Load the keyring from ``$HOTLINE_KEYS`` (JSON) if set and non-empty, else from ``path``.

    ``path`` defaults to :data:`DEFAULT_KEY_FILE`. Raises :class:`CryptoError` naming the
    source for a missing/unreadable file or a malformed document.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    from_env = environ.get(ENV_VAR, "")
    if from_env.strip():
        return _parse_key_document(from_env, f"environment variable {ENV_VAR}")

    key_path = DEFAULT_KEY_FILE if path is None else Path(path)
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
