"""The optional second factor of supervisors and admins: TOTP (RFC 6238) codes.

The algorithm is RFC 6238 with its usual parameters (HMAC-SHA-1, 30-second steps, six
digits), which every authenticator app speaks; a code of the step before or after is
accepted too (clocks drift). The shared secret is stored encrypted with the keyring, bound
to its agent, and the last accepted step is kept so that a code is never accepted twice.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import struct
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlencode

import asyncpg

from db import keys
from db.crypto import Keyring

STEP_SECONDS = 30
DIGITS = 6
DRIFT_STEPS = 1  # a code of the previous or next step is accepted as well
SECRET_BYTES = 20  # 160 bits, the size RFC 4226 recommends for HMAC-SHA-1
ISSUER = "hotline"
# Roles that may switch on a second factor (the others' accounts do not manage anything).
ROLES = ("supervisor", "supervision", "admin", "auditor")


class TotpError(Exception):
    """A TOTP step that cannot be done in this state (the message says why, in Chinese)."""


@dataclass(frozen=True)
class Enrolment:
    """A new, unconfirmed secret: shown once to the user, to put in their app."""

    secret: str  # base32, as apps expect it typed in
    uri: str  # otpauth://totp/... for a QR code


def hotp(secret: bytes, counter: int, digits: int = DIGITS,
         digest: str = "sha1") -> str:
    """The HOTP value (RFC 4226) of a counter, zero-padded to ``digits``."""
    mac = hmac.new(secret, struct.pack(">Q", counter), digest).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10 ** digits).zfill(digits)


def step_of(when: datetime | float) -> int:
    """The 30-second time step a moment falls in (Unix time / 30, rounded down)."""
    seconds = when.timestamp() if isinstance(when, datetime) else when
    return int(seconds // STEP_SECONDS)


def code_at(secret: bytes, when: datetime | float, digits: int = DIGITS,
            digest: str = "sha1") -> str:
    """The TOTP code (RFC 6238) valid at a moment."""
    return hotp(secret, step_of(when), digits, digest)


def matching_step(secret: bytes, code: str, when: datetime, after_step: int) -> int | None:
    """The step within the allowed drift whose code is ``code`` and that is later than
    ``after_step`` (the last one used: a code is good once), or None."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    now = step_of(when)
    for step in range(now - DRIFT_STEPS, now + DRIFT_STEPS + 1):
        # compare_digest: how many leading digits matched must not show in the timing.
        if step > after_step and hmac.compare_digest(hotp(secret, step), code):
            return step
    return None


def new_secret() -> bytes:
    """A random secret for a new enrolment."""
    return secrets.token_bytes(SECRET_BYTES)


def b32(secret: bytes) -> str:
    """The secret as base32 without padding (what authenticator apps ask for)."""
    return base64.b32encode(secret).decode("ascii").rstrip("=")


def otpauth_uri(secret: bytes, account: str, issuer: str = ISSUER) -> str:
    """The otpauth:// URI (Key Uri Format) that authenticator apps read from a QR code."""
    label = quote(f"{issuer}:{account}", safe="")
    query = urlencode({"secret": b32(secret), "issuer": issuer, "algorithm": "SHA1",
                       "digits": DIGITS, "period": STEP_SECONDS})
    return f"otpauth://totp/{label}?{query}"


def _aad(agent_id: int) -> bytes:
    # Bound to the agent: a secret copied onto another agent's row does not decrypt.
    return f"agent_totp:{agent_id}".encode()


async def status(conn: asyncpg.Connection, agent_id: int) -> str:
    """'off', 'pending' (enrolled, not yet confirmed with a code) or 'on'."""
    confirmed = await conn.fetchval(
        "SELECT confirmed_at IS NOT NULL FROM agent_totp WHERE agent_id = $1", agent_id)
    return "off" if confirmed is None else ("on" if confirmed else "pending")


async def enrol(conn: asyncpg.Connection, keyring: Keyring, agent_id: int, account: str,
                now: datetime) -> Enrolment:
    """Make a new secret for an agent (replacing an unconfirmed one); it takes effect once
    confirmed with a code. Raises TotpError when a confirmed one is on already."""
    if await status(conn, agent_id) == "on":
        raise TotpError("动态验证码已启用；如需更换，请先停用")
    secret = new_secret()
    await keys.ensure_loaded(conn, keyring)
    key_id, blob = keyring.encrypt_bytes(secret, _aad(agent_id))
    await conn.execute(
        """INSERT INTO agent_totp (agent_id, key_id, secret, created_at)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (agent_id) DO UPDATE SET key_id = EXCLUDED.key_id,
             secret = EXCLUDED.secret, created_at = EXCLUDED.created_at,
             confirmed_at = NULL, last_step = 0""",
        agent_id, key_id, blob, now,
    )
    return Enrolment(b32(secret), otpauth_uri(secret, account))


async def _secret(conn: asyncpg.Connection, keyring: Keyring, row: asyncpg.Record) -> bytes:
    if row["key_id"] not in keyring.key_ids:
        await keys.refresh(conn, keyring)  # rotated by another process
    return keyring.decrypt_bytes(row["key_id"], row["secret"], _aad(row["agent_id"]))


async def use_code(conn: asyncpg.Connection, keyring: Keyring, agent_id: int, code: str,
                   now: datetime, *, confirmed: bool = True) -> bool:
    """Check a code against the agent's secret (confirmed, or pending when ``confirmed`` is
    False) and use it up: True only once per code, even across desk processes."""
    row = await conn.fetchrow(
        "SELECT * FROM agent_totp WHERE agent_id = $1 AND (confirmed_at IS NOT NULL) = $2",
        agent_id, confirmed)
    if row is None:
        return False
    step = matching_step(await _secret(conn, keyring, row), code, now, row["last_step"])
    if step is None:
        return False
    # Only one of two concurrent logins with the same code may move last_step forward.
    used = await conn.fetchval(
        "UPDATE agent_totp SET last_step = $2 WHERE agent_id = $1 AND last_step < $2"
        " RETURNING 1", agent_id, step)
    return used is not None


async def confirm(conn: asyncpg.Connection, keyring: Keyring, agent_id: int, code: str,
                  now: datetime) -> bool:
    """Switch the enrolled secret on, given a code from the user's app; False if wrong."""
    if not await use_code(conn, keyring, agent_id, code, now, confirmed=False):
        return False
    await conn.execute("UPDATE agent_totp SET confirmed_at = $2 WHERE agent_id = $1",
                       agent_id, now)
    return True


async def disable(conn: asyncpg.Connection, keyring: Keyring, agent_id: int, code: str,
                  now: datetime) -> bool:
    """Switch the second factor off, given a current code; False if the code is wrong."""
    if not await use_code(conn, keyring, agent_id, code, now):
        return False
    await conn.execute("DELETE FROM agent_totp WHERE agent_id = $1", agent_id)
    return True


async def reset(conn: asyncpg.Connection, agent_id: int) -> bool:
    """Remove an agent's second factor without a code (an admin, for a lost phone)."""
    return await conn.fetchval(
        "DELETE FROM agent_totp WHERE agent_id = $1 RETURNING 1", agent_id) is not None
