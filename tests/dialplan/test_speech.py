"""Positions and waits are spoken as a Mandarin speaker says them."""

from __future__ import annotations

import pytest

from dialplan.speech import digits_words, number_words, speak


@pytest.mark.parametrize("n, text", [
    (0, "零"), (1, "一"), (7, "七"), (10, "十"), (12, "十二"), (20, "二十"), (23, "二十三"),
    (100, "一百"), (101, "一百零一"), (110, "一百一十"), (1000, "一千"), (1001, "一千零一"),
    (1010, "一千零一十"), (2023, "二千零二十三"), (10000, "一万"), (10001, "一万零一"),
    (12345, "一万二千三百四十五"), (63160000, "六千三百一十六万"),
])
def test_plain_numbers(n: int, text: str) -> None:
    assert speak(n) == text


@pytest.mark.parametrize("n, text", [
    (2, "两"), (12, "十二"), (22, "二十二"), (2000, "两千"), (20000, "两万"), (3, "三"),
])
def test_counting_uses_liang_where_mandarin_does(n: int, text: str) -> None:
    assert speak(n, counting=True) == text


def test_phone_numbers_are_read_digit_by_digit() -> None:
    assert digits_words("138-0013") == ["num_1", "num_3", "num_8", "num_0", "num_0", "num_1",
                                        "num_3"]


def test_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError):
        number_words(-1)
    assert number_words(5) == ["num_5"]
