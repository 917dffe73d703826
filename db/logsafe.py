"""Logs that never carry a caller's phone number.

Every process of the hotline (call control, the desk, the case jobs, the `hotline` command)
sets up its logging with :func:`setup`, which puts a :class:`MaskingFilter` on the root
handlers: whatever a log call was given, the line written has every phone-number-looking
run of digits masked (``13912345601`` -> ``139******01``). The code should not log personal
data in the first place; this filter is the net under it (an exception's text, an ARI error
quoting a dial string, a value in a traceback).

What counts as a phone number: a run of 7 or more digits (any script, full-width too),
possibly in groups joined by one space or dash, possibly after ``+86``/``0086``/``+``.
What is left alone, so logs stay readable:

* UUIDs (call ids), ISO dates and times, decimals such as Asterisk channel ids
  (``1764431234.56``) and durations;
* **case numbers**: 14 or more ASCII digits starting with a valid date 20YYMMDD
  (``20261129000012``). No written form of a Chinese phone number has that shape (mobiles
  start with 1, landlines with 0, with a country code 86/0086/+), so they stay readable;
* the counters at the end of Asterisk channel names (``hotline-callee-00000049;2``);
* numbers under 7 digits (ports, pids, counts, the 5-digit 12345) and the hotline's own
  public numbers, registered with :func:`keep_numbers` (e.g. 63160000 is not personal).

Names and addresses cannot be recognised in free text: they must never be logged, and
tests/e2e/test_no_leaks.py checks that they are not.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from types import TracebackType

# Spans that look like numbers but are not phone numbers. ASCII digits only: a number in
# full-width digits is never one of these machine-made values, so it is always masked.
_PROTECTED = re.compile(
    r"""
      (?<![0-9A-Za-z])[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}
        (?![0-9A-Za-z])                                               # a UUID
    | (?<![0-9+＋])[0-9]{4}-[0-9]{2}-[0-9]{2}                          # an ISO date
        (?:[T\ ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?      # ... and time
           (?:Z|[+-][0-9]{2}:[0-9]{2})?)?(?![0-9])
    | (?<![0-9+＋])20[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{6,}
        (?![0-9])                                                     # a case number
    | (?<![0-9.])[1-9][0-9]{0,9}\.[0-9]{1,6}(?![0-9.])                # a decimal, channel id
    | (?<=[A-Za-z]-)[0-9a-f]{8}(?=;[0-9])                             # Asterisk channel counter
    """,
    re.VERBOSE,
)

# Digit groups joined by at most one separator; an optional international prefix.
_SEP = r"[ \-\u00a0\u3000－]"
_CANDIDATE = re.compile(
    rf"(?P<plus>[+＋])?(?<!\d)(?P<digits>\d(?:{_SEP}?\d)*)(?!\d)"
)
MIN_DIGITS = 7

_kept: set[str] = set()


def keep_numbers(numbers: Iterable[str]) -> None:
    """Leave these numbers (the hotline's own public numbers) readable in logs."""
    _kept.update(_only_digits(n) for n in numbers if _only_digits(n))


def _only_digits(text: str) -> str:
    return "".join(str(int(ch)) for ch in text if ch.isdecimal())


def _mask_run(match: re.Match[str]) -> str:
    digits = _only_digits(match.group("digits"))
    if len(digits) < MIN_DIGITS or (digits in _kept and not match.group("plus")):
        return match.group(0)
    prefix = ""
    if match.group("plus") and digits.startswith("86") and len(digits) > 2 + MIN_DIGITS:
        prefix, digits = "+86 ", digits[2:]
    elif digits.startswith("0086") and len(digits) > 4 + MIN_DIGITS:
        prefix, digits = "+86 ", digits[4:]
    elif match.group("plus"):
        prefix = "+"
    # Long numbers keep their operator prefix and last two digits; short ones (a local
    # landline) show less, so the few digits left cannot identify them.
    head, tail = (3, 2) if len(digits) >= 11 else (2, 1)
    return prefix + digits[:head] + "*" * (len(digits) - head - tail) + digits[-tail:]


def mask(text: str) -> str:
    """The text with every phone-number-looking run of digits masked.

    >>> mask("callback to +86 139-1234-5601 failed")
    'callback to +86 139******01 failed'
    >>> mask("case 20261129000012 of call 6f1c2d3e-0000-4000-8000-123456789012")
    'case 20261129000012 of call 6f1c2d3e-0000-4000-8000-123456789012'
    """
    if not any(ch.isdigit() for ch in text):
        return text
    out: list[str] = []
    start = 0
    for p in _PROTECTED.finditer(text):
        out.append(_CANDIDATE.sub(_mask_run, text[start:p.start()]))
        out.append(p.group(0))
        start = p.end()
    out.append(_CANDIDATE.sub(_mask_run, text[start:]))
    return "".join(out)


class MaskingFilter(logging.Filter):
    """Masks phone numbers in a record's final message, its exception and stack text.

    Put it on handlers (not loggers): a logger's filter does not see records that
    propagate from child loggers, a handler's sees them all.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string: keep what was given
            message = f"{record.msg} {record.args}"
        record.msg, record.args = mask(message), None
        if record.exc_info and not record.exc_text:
            # The formatter would render it after us: render it now, masked.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        return True


def install(logger: logging.Logger | None = None) -> None:
    """Put the masking filter on every handler of a logger (default: the root logger)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())


def _log_uncaught(kind: type[BaseException], value: BaseException,
                  tb: TracebackType | None) -> None:
    # An uncaught exception would be printed raw to stderr (= the service's log file).
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    logging.getLogger().critical("uncaught exception", exc_info=(kind, value, tb))


def setup(level: int = logging.INFO,
          fmt: str = "%(asctime)s %(levelname)s %(name)s: %(message)s") -> None:
    """Configure a process's logging to stderr with phone numbers masked."""
    logging.basicConfig(level=level, stream=sys.stderr, format=fmt)
    install()
    sys.excepthook = _log_uncaught
