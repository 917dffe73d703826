"""The log filter: no phone number survives it, ordinary log text does."""

from __future__ import annotations

import io
import logging
import re
import uuid
from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from db import logsafe

mobiles = st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True)
landlines = st.from_regex(r"0[1-9][0-9]{1,2}[2-8][0-9]{6,7}", fullmatch=True)
locals_ = st.from_regex(r"[2-8][0-9]{6,7}", fullmatch=True)
numbers = st.one_of(mobiles, landlines, locals_)


def written(number: str, form: int) -> str:
    """A number the way people and systems write it."""
    if form == 0:
        return number
    if form == 1:
        return "+86" + number.lstrip("0")
    if form == 2:
        return "+86 " + number.lstrip("0")
    if form == 3:
        return "0086" + number.lstrip("0")
    if form == 4:  # 139-1234-5601, 0377-6316-0000
        return f"{number[:3]}-{number[3:7]}-{number[7:]}".rstrip("-")
    if form == 5:
        return f"{number[:3]} {number[3:7]} {number[7:]}".rstrip()
    return number.translate(str.maketrans("0123456789", "０１２３４５６７８９"))  # full width


# Text around a number in a log line: anything, as long as it does not run into the number
# (a digit or a letter right beside it would make it another token).
surrounding = st.text(max_size=30)
edge = st.sampled_from([" ", ": ", "(", "/", "=", "，", "'", "\n", "号码"])


@given(surrounding, edge, numbers, st.integers(0, 6), edge, surrounding)
def test_no_phone_number_survives(before: str, left: str, number: str, form: int, right: str,
                                  after: str) -> None:
    text = before + left + written(number, form) + right + after
    out = logsafe.mask(text)
    national = number.lstrip("0")
    flat = re.sub(r"[\s+\-－]", "", out)
    assert national not in flat
    assert national not in logsafe.mask(out)  # masking twice changes nothing back


@given(st.lists(st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Nd",)), max_size=20),
    st.integers(0, 999_999).map(str),                 # counts, ports, pids, seconds
    st.uuids().map(str),                              # call ids
    st.datetimes().map(lambda d: d.isoformat(sep=" ", timespec="milliseconds")),
    st.floats(0, 9_999_999_999, allow_nan=False).map(lambda f: f"{f:.2f}"),  # channel ids
    st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)).flatmap(
        lambda d: st.integers(1, 99_999_999).map(
            lambda n: f"{d:%Y%m%d}{n:06d}")),          # case numbers
    st.integers(0, 0xFFFFFFFF).map(lambda n: f"Local/12345@hotline-inbound-{n:08x};2"),
), max_size=8))
def test_ordinary_log_text_is_kept(parts: list[str]) -> None:
    # (Two numbers with only a space or dash between them may read as one grouped phone
    # number, "136 1234 5678", and be masked: log lines put words or punctuation between.)
    text = ", ".join(parts)
    assert logsafe.mask(text) == text


def test_masked_number_keeps_its_prefix_and_last_digits() -> None:
    assert logsafe.mask("callback to +86 139-1234-5601 failed") \
        == "callback to +86 139******01 failed"
    assert logsafe.mask("13912345601") == "139******01"
    assert logsafe.mask("Local/13600000011@hotline-callee-00000049;2") \
        == "Local/136******11@hotline-callee-00000049;2"
    # A short local number shows less.
    assert logsafe.mask("from 63160001") == "from 63*****1"


def test_the_hotlines_own_numbers_stay_readable() -> None:
    logsafe.keep_numbers(["63160000", "12345"])
    assert logsafe.mask("call arrived on 63160000") == "call arrived on 63160000"
    assert logsafe.mask("from 63160001") != "from 63160001"


def test_filter_masks_message_args_and_traceback() -> None:
    stream = io.StringIO()
    logger = logging.getLogger(f"test-logsafe-{uuid.uuid4().hex}")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.propagate = False
    logsafe.install(logger)
    try:
        logger.warning("callback to %s failed", "13912345601")
        try:
            raise ValueError("endpoint Local/13800138000@hotline-callee refused")
        except ValueError:
            logger.exception("call %s failed", uuid.UUID(int=7))
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "callback to 139******01 failed" in text
    assert "ValueError: endpoint Local/138******00@hotline-callee refused" in text
    assert "13912345601" not in text and "13800138000" not in text
    assert str(uuid.UUID(int=7)) in text
