"""China's telephone numbering plan, as far as the hotline's outgoing calls need it, and the
dial guard's decision on one number. Pure: no I/O, no clock (db/dialguard.py adds the caps).

Every number the hotline dials (queue callbacks, the worklist, revisits) comes from a person
or from a caller ID, and goes to a carrier's SIP trunk that bills us. So the text is taken as
hostile: only ASCII digits, spaces, dashes and one leading ``+`` (as ``+86``) are accepted;
anything else (letters and the DTMF keys A-D, ``*``, ``#``, ``&``, ``/``, ``@``, ``,``,
``;``, quotes, full-width or Arabic-Indic digits, NUL, control characters) refuses the number
instead of being dropped, because a channel string is built from what is left.

What is recognised (national forms; ``+86``, ``0086`` and, before a mobile, a bare ``86``
are stripped; after ``+86``/``0086`` a landline's trunk ``0`` is put back):

=============  ====================================================  ===================
kind           shape                                                 dialled?
=============  ====================================================  ===================
mobile         ``1[3-9]`` + 9 digits (also ``0`` + mobile, the way   yes
               fixed networks present out-of-area mobiles)
landline       ``0`` + the local area code + subscriber, or the      yes
               subscriber alone (7-8 digits, first digit 2-9)
long_distance  ``0`` + another area code (``010``, ``02X``, else      yes
               ``0`` + 3 digits) + subscriber of 7-8 digits from 2-9
short_code     3-5 digits (110, 119, 120, 122, 12345, 10086), and    only if listed in
               ``95``/``96`` service numbers of 5-8 digits           ``allowed_short_codes``
premium        see the table below                                   never
international  ``00`` or ``+`` followed by another country code      never
invalid        everything else, with the reason                      never
=============  ====================================================  ===================

``95``/``96`` are reserved nationwide for service numbers (95xxx national, 96xxx local), so
no subscriber number starts with them: ``95105105`` is a service number, not a local
landline, and ``0377`` + ``96xxx`` is refused rather than guessed at.

Premium and value-added prefixes (any length), refused even when an admin lists them as
short codes, because a call to them costs the hotline per minute or subscribes the line:

======  ===========================================================================
prefix  why
======  ===========================================================================
160     声讯台 information lines of the old China Telecom 160 service (charged by minute)
168     168 声讯 information/entertainment lines (16800168 etc., charged by minute)
1255x   national mobile value-added service codes (SP services billed to the caller)
1259x   value-added voice services (12590 information lines, 12593 IP long distance)
======  ===========================================================================

160 and 168 come before the mobile rule on purpose: no mobile operator holds those blocks,
so an 11-digit ``168...`` is an information line, not a phone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "LOCAL_FORMATS",
    "MAX_INPUT",
    "PREMIUM_PREFIXES",
    "GuardRules",
    "NumberKind",
    "ParsedNumber",
    "dial_digits",
    "parse",
]

LOCAL_FORMATS = ("without_area_code", "with_area_code")
# The longest text looked at: "+86 0377-6316-0000" with generous spacing fits many times.
# Longer input is refused before any work, so a pasted page costs nothing.
MAX_INPUT = 40
MAX_DIGITS = 15  # E.164: no telephone number anywhere is longer
PREMIUM_PREFIXES = ("160", "168", "1255", "1259")
SERVICE_PREFIXES = ("95", "96")

_DIGITS = frozenset("0123456789")
# str.isdigit() would also pass '１' and '٣': these are the only characters accepted.
_ACCEPTED = frozenset("0123456789 -")
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_AREA_CODE = re.compile(r"0(?:10|2[0-9]|[3-9][0-9]{2})")
_SUBSCRIBER_FIRST = "23456789"

_REASONS = {
    "ok": "",
    "empty": "号码为空",
    "bad_characters": "号码只能包含数字（可带空格、短横线，国家码只能是开头的+86）",
    "international": "国际号码不允许外呼",
    "too_short": "号码位数不足",
    "too_long": "号码位数过多",
    "bad_area_code": "长途区号无效",
    "bad_number": "不是有效的电话号码",
    "premium": "声讯台及增值业务号码不允许外呼",
    "short_code_not_allowed": "该特服号码未获准外呼",
}


class NumberKind(StrEnum):
    """What a number is, by the numbering plan."""

    MOBILE = "mobile"
    LANDLINE = "landline"  # in the hotline's own area
    LONG_DISTANCE = "long_distance"  # a landline in another area
    SHORT_CODE = "short_code"
    INTERNATIONAL = "international"
    PREMIUM = "premium"
    INVALID = "invalid"


@dataclass(frozen=True)
class GuardRules:
    """How the hotline dials out: its own area, the short codes an admin allows, how the
    carrier wants local landlines written, and the caps (db/dialguard.py)."""

    area_code: str = "0377"  # Nanyang, with the trunk 0
    allowed_short_codes: tuple[str, ...] = ()
    local_format: str = "without_area_code"
    max_per_number_per_hour: int = 3
    max_per_hour: int = 300

    def __post_init__(self) -> None:
        # Rules come from the YAML: a wrong value must stop the load, not dial strangely.
        if not isinstance(self.area_code, str) or not _AREA_CODE.fullmatch(self.area_code):
            raise ValueError(f"area_code {self.area_code!r} is not a Chinese area code with "
                             "its leading 0 (e.g. '0377')")
        if not isinstance(self.allowed_short_codes, tuple):
            raise ValueError("allowed_short_codes must be a tuple of digit strings")
        for code in self.allowed_short_codes:
            if not (isinstance(code, str) and 3 <= len(code) <= 8 and set(code) <= _DIGITS
                    and code[0] != "0"):
                raise ValueError(f"allowed short code {code!r} is not 3-8 digits")
        if self.local_format not in LOCAL_FORMATS:
            raise ValueError(f"local_format {self.local_format!r} is not one of "
                             f"{', '.join(LOCAL_FORMATS)}")
        for name in ("max_per_number_per_hour", "max_per_hour"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1")


@dataclass(frozen=True)
class ParsedNumber:
    """One number as the plan sees it.

    ``national`` is the canonical national form (mobile: 11 digits; landline: ``0`` + area +
    subscriber; short code and premium: as keyed), "" for international and invalid input.
    ``code`` is for programs and logs, ``reason`` (Chinese) for the agent; "ok" and "" when
    ``allowed``.
    """

    kind: NumberKind
    national: str
    allowed: bool
    code: str
    reason: str


def _result(kind: NumberKind, national: str, code: str) -> ParsedNumber:
    return ParsedNumber(kind, national, code == "ok", code, _REASONS[code])


def _invalid(code: str) -> ParsedNumber:
    return _result(NumberKind.INVALID, "", code)


def parse(text: str, rules: GuardRules) -> ParsedNumber:
    """Classify what a person keyed or a caller ID carried; never raises.

    >>> parse("+86 138-0013-8000", GuardRules()).national
    '13800138000'
    >>> parse("63160000", GuardRules()).national
    '037763160000'
    >>> parse("0044207946000", GuardRules()).reason
    '国际号码不允许外呼'
    """
    if not isinstance(text, str) or len(text) > MAX_INPUT:
        return _invalid("too_long" if isinstance(text, str) else "bad_characters")
    body = text.strip(" ")
    plus = body.startswith("+")
    if plus:
        body = body[1:]
    if not set(body) <= _ACCEPTED:
        return _invalid("bad_characters")
    digits = body.replace(" ", "").replace("-", "")
    if not digits:
        return _invalid("empty")
    # E.164's 15 digits do not count the international access prefix 00.
    if len(digits) > MAX_DIGITS + (2 if digits.startswith("00") else 0):
        return _invalid("too_long")
    if plus:
        if not digits.startswith("86"):
            return _result(NumberKind.INTERNATIONAL, "", "international")
        return _national(digits[2:], rules, country_code=True)
    if digits.startswith("00"):
        if not digits.startswith("0086"):
            return _result(NumberKind.INTERNATIONAL, "", "international")
        return _national(digits[4:], rules, country_code=True)
    if len(digits) == 13 and digits.startswith("86") and _MOBILE.fullmatch(digits[2:]):
        # Some carriers present mobiles as 86 + number; a bare 86 before anything else is
        # left alone, since local landlines can start with 86.
        return _national(digits[2:], rules, country_code=True)
    return _national(digits, rules, country_code=False)


def _national(n: str, rules: GuardRules, country_code: bool) -> ParsedNumber:
    if not n:
        return _invalid("too_short")
    if country_code and not n.startswith("0") and not _MOBILE.fullmatch(n):
        # The international form drops the landline's trunk 0 ("+86 377 6316 0000").
        n = "0" + n
    if n.startswith(PREMIUM_PREFIXES):
        return _result(NumberKind.PREMIUM, n, "premium")
    if n.startswith("0"):
        return _with_area_code(n, rules)
    if _MOBILE.fullmatch(n):
        return _result(NumberKind.MOBILE, n, "ok")
    if (n.startswith(SERVICE_PREFIXES) and 5 <= len(n) <= 8) or 3 <= len(n) <= 5:
        allowed = n in rules.allowed_short_codes
        return _result(NumberKind.SHORT_CODE, n, "ok" if allowed else "short_code_not_allowed")
    if n.startswith("1"):
        # A mobile with a digit missing or one too many (or a 10x/11x/12x code that is not
        # a short code): tell the agent which.
        return _invalid("too_short" if len(n) < 11 else
                        "too_long" if len(n) > 11 else "bad_number")
    if len(n) < 7:
        return _invalid("too_short")
    if len(n) > 8:
        # Probably another area's number keyed without its 0: do not guess the area.
        return _invalid("too_long")
    return _result(NumberKind.LANDLINE, rules.area_code + n, "ok")


def _with_area_code(n: str, rules: GuardRules) -> ParsedNumber:
    """A number with the trunk 0: a landline with its area code, or 0 + a mobile."""
    if len(n) == 12 and _MOBILE.fullmatch(n[1:]):
        if n[1:].startswith(PREMIUM_PREFIXES):  # 0 + 160/168…: still a premium line
            return _result(NumberKind.PREMIUM, n[1:], "premium")
        return _result(NumberKind.MOBILE, n[1:], "ok")
    area_len = 3 if n[1:2] in ("1", "2") else 4
    area, subscriber = n[:area_len], n[area_len:]
    if len(n) < area_len or not _AREA_CODE.fullmatch(area):
        return _invalid("bad_area_code" if len(n) >= area_len else "too_short")
    if len(subscriber) < 7:
        return _invalid("too_short")
    if len(subscriber) > 8:
        return _invalid("too_long")
    if subscriber[0] not in _SUBSCRIBER_FIRST or subscriber.startswith(SERVICE_PREFIXES):
        return _invalid("bad_number")
    kind = NumberKind.LANDLINE if area == rules.area_code else NumberKind.LONG_DISTANCE
    return _result(kind, n, "ok")


def dial_digits(parsed: ParsedNumber, rules: GuardRules) -> str:
    """The digits to send to the carrier; ``ValueError`` for a refused number, so a dial
    string is never built from one."""
    if not parsed.allowed:
        raise ValueError(f"number refused ({parsed.code}): it must not be dialled")
    if parsed.kind is NumberKind.LANDLINE and rules.local_format == "without_area_code":
        if not parsed.national.startswith(rules.area_code):
            # Parsed under other rules: the area code to drop is not there.
            raise ValueError("local landline does not carry the rules' area code")
        digits = parsed.national[len(rules.area_code):]
    elif parsed.kind in (NumberKind.MOBILE, NumberKind.LANDLINE, NumberKind.LONG_DISTANCE,
                         NumberKind.SHORT_CODE):
        digits = parsed.national
    else:
        raise ValueError(f"a {parsed.kind} number is never dialled")
    # The last line of defence before a channel string: ParsedNumber is a plain dataclass
    # and could have been built by hand.
    if not (3 <= len(digits) <= MAX_DIGITS and set(digits) <= _DIGITS):
        raise ValueError("dial digits must be 3-15 ASCII digits")
    return digits
