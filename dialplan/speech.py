"""Numbers and durations spoken in Mandarin, as sequences of prompt ids.

Announcements are made of short prompts generated at build time (one per digit and unit
word), so a position such as 23 is played as 二 十 三 and 2 as 两 before a measure word
(两位, 两分钟), the way a Mandarin speaker says them.
"""

from __future__ import annotations

DIGITS = "零一二三四五六七八九"
# Prompt id -> the text espeak-ng speaks for it.
WORDS: dict[str, str] = {
    **{f"num_{d}": DIGITS[d] for d in range(10)},
    "num_liang": "两",
    "num_10": "十",
    "num_100": "百",
    "num_1000": "千",
    "num_10000": "万",
}


def number_words(n: int, counting: bool = False) -> list[str]:
    """The prompt ids that speak n (0 <= n < 100000000) in Mandarin.

    counting: n is followed by a measure word, so a leading 2 is read 两 (两位), as is
    the 2 of 200/2000/20000 (两百 is also common, 两千 and 两万 are the norm).
    """
    if n < 0 or n >= 100_000_000:
        raise ValueError(f"cannot speak {n}")
    if n == 0:
        return ["num_0"]
    if n >= 10000:
        high, low = divmod(n, 10000)
        out = _below_10000(high, counting=True, top=True) + ["num_10000"]
        if low:
            if low < 1000:
                out.append("num_0")
            out += _below_10000(low, counting=False, top=False)
        return out
    return _below_10000(n, counting=counting, top=True)


def _below_10000(n: int, counting: bool, top: bool) -> list[str]:
    out: list[str] = []
    units = [(1000, "num_1000"), (100, "num_100"), (10, "num_10")]
    zero_pending = False
    started = False
    for value, word in units:
        d, n = divmod(n, value)
        if d:
            if zero_pending:
                out.append("num_0")
                zero_pending = False
            if value == 10 and d == 1 and not started and top:
                out.append(word)  # 十二, not 一十二, at the start of a number
            else:
                two = d == 2 and value >= 1000 and counting
                out += ["num_liang" if two else f"num_{d}", word]
            started = True
        elif started:
            zero_pending = True
    if n:
        if zero_pending:
            out.append("num_0")
        if n == 2 and counting and not started:
            out.append("num_liang")
        else:
            out.append(f"num_{n}")
    return out


def digits_words(number: str) -> list[str]:
    """A phone number read digit by digit (1 is read 幺 by some; 一 is clearer here)."""
    return [f"num_{c}" for c in number if c.isdigit()]


def speak(n: int, counting: bool = False) -> str:
    """The text for n, for logs and tests (e.g. 两千零二十三)."""
    return "".join(WORDS[w] for w in number_words(n, counting))
