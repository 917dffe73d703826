"""China's numbering plan as the dial guard reads it: what may be dialled, in which form,
and that no text whatever reaches a dial string unless it is plain digits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialplan.numbering import GuardRules, NumberKind, dial_digits, parse

K = NumberKind
RULES = GuardRules()
ALLOWING = GuardRules(allowed_short_codes=("12345", "110"))

# text, kind, national form, code ("ok" = may be dialled)
CASES = [
    # mobiles, however they are written
    ("13800138000", K.MOBILE, "13800138000", "ok"),
    ("+8613800138000", K.MOBILE, "13800138000", "ok"),
    ("008613800138000", K.MOBILE, "13800138000", "ok"),
    ("8613800138000", K.MOBILE, "13800138000", "ok"),
    ("+86 138-0013-8000", K.MOBILE, "13800138000", "ok"),
    ("  138 0013 8000 ", K.MOBILE, "13800138000", "ok"),
    ("013800138000", K.MOBILE, "13800138000", "ok"),  # out-of-area mobile on a landline
    ("19912345678", K.MOBILE, "19912345678", "ok"),
    ("14712345678", K.MOBILE, "14712345678", "ok"),
    # landlines in Nanyang (0377)
    ("037763160000", K.LANDLINE, "037763160000", "ok"),
    ("0377-6316-0000", K.LANDLINE, "037763160000", "ok"),
    ("63160000", K.LANDLINE, "037763160000", "ok"),
    ("6316000", K.LANDLINE, "03776316000", "ok"),
    ("+86 377 6316 0000", K.LANDLINE, "037763160000", "ok"),
    ("0086037763160000", K.LANDLINE, "037763160000", "ok"),
    # other areas
    ("01065123456", K.LONG_DISTANCE, "01065123456", "ok"),
    ("+86 10 6512 3456", K.LONG_DISTANCE, "01065123456", "ok"),
    ("02087654321", K.LONG_DISTANCE, "02087654321", "ok"),
    ("037165123456", K.LONG_DISTANCE, "037165123456", "ok"),
    ("07552345678", K.LONG_DISTANCE, "07552345678", "ok"),
    # abroad
    ("0044207946000", K.INTERNATIONAL, "", "international"),
    ("+44 20 7946 0000", K.INTERNATIONAL, "", "international"),
    ("+12125550100", K.INTERNATIONAL, "", "international"),
    ("00852 2345 6789", K.INTERNATIONAL, "", "international"),
    # short and service codes
    ("12345", K.SHORT_CODE, "12345", "short_code_not_allowed"),
    ("110", K.SHORT_CODE, "110", "short_code_not_allowed"),
    ("119", K.SHORT_CODE, "119", "short_code_not_allowed"),
    ("10086", K.SHORT_CODE, "10086", "short_code_not_allowed"),
    ("95588", K.SHORT_CODE, "95588", "short_code_not_allowed"),
    ("95105105", K.SHORT_CODE, "95105105", "short_code_not_allowed"),
    ("96196", K.SHORT_CODE, "96196", "short_code_not_allowed"),
    # premium and value-added
    ("16800168", K.PREMIUM, "16800168", "premium"),
    ("16812345678", K.PREMIUM, "16812345678", "premium"),
    ("016812345678", K.PREMIUM, "16812345678", "premium"),  # 0 + a premium line (fuzzing)
    ("1600123", K.PREMIUM, "1600123", "premium"),
    ("12590", K.PREMIUM, "12590", "premium"),
    ("125901234567", K.PREMIUM, "125901234567", "premium"),
    ("12550123", K.PREMIUM, "12550123", "premium"),
    # characters that are not a number
    ("13800138000&x", K.INVALID, "", "bad_characters"),
    ("1380013800A", K.INVALID, "", "bad_characters"),
    ("*#", K.INVALID, "", "bad_characters"),
    ("13800138000#", K.INVALID, "", "bad_characters"),
    ("138ABCD", K.INVALID, "", "bad_characters"),
    ("PJSIP/13800138000@trunk", K.INVALID, "", "bad_characters"),
    ("13800138000,w123", K.INVALID, "", "bad_characters"),
    ("13800138000;x=1", K.INVALID, "", "bad_characters"),
    ("'13800138000'", K.INVALID, "", "bad_characters"),
    ('"13800138000"', K.INVALID, "", "bad_characters"),
    ("１３８００１３８０００", K.INVALID, "", "bad_characters"),  # full-width digits
    ("١٣٨٠٠١٣٨٠٠٠", K.INVALID, "", "bad_characters"),  # Arabic-Indic digits
    ("13800138000\x00", K.INVALID, "", "bad_characters"),
    ("13800138000\n", K.INVALID, "", "bad_characters"),
    ("138\t0013\t8000", K.INVALID, "", "bad_characters"),
    ("＋8613800138000", K.INVALID, "", "bad_characters"),
    ("++8613800138000", K.INVALID, "", "bad_characters"),
    ("86+13800138000", K.INVALID, "", "bad_characters"),
    ("138.0013.8000", K.INVALID, "", "bad_characters"),
    # digits in the wrong shape
    ("", K.INVALID, "", "empty"),
    ("+", K.INVALID, "", "empty"),
    (" - ", K.INVALID, "", "empty"),
    ("0086", K.INVALID, "", "too_short"),
    ("12", K.INVALID, "", "too_short"),
    ("1380013800", K.INVALID, "", "too_short"),
    ("138001380001", K.INVALID, "", "too_long"),
    ("12012345678", K.INVALID, "", "bad_number"),
    ("631600", K.INVALID, "", "too_short"),
    ("377631600001", K.INVALID, "", "too_long"),
    ("0377631600", K.INVALID, "", "too_short"),
    ("0377631600001", K.INVALID, "", "too_long"),
    ("03771234567", K.INVALID, "", "bad_number"),  # subscribers never start with 1
    ("037796196", K.INVALID, "", "too_short"),
    ("037796196000", K.INVALID, "", "bad_number"),  # 96 is a service prefix
    ("01165123456", K.INVALID, "", "bad_area_code"),
    ("+86 110", K.INVALID, "", "bad_area_code"),
    ("1" * 16, K.INVALID, "", "too_long"),
    ("1" * 41, K.INVALID, "", "too_long"),
]


@pytest.mark.parametrize(("text", "kind", "national", "code"), CASES)
def test_parse(text: str, kind: NumberKind, national: str, code: str) -> None:
    parsed = parse(text, RULES)
    assert (parsed.kind, parsed.national, parsed.code) == (kind, national, code)
    assert parsed.allowed is (code == "ok")
    if parsed.allowed:
        assert parsed.reason == ""
    else:
        assert parsed.reason and not parsed.reason.isascii()  # Chinese, for the agent
        with pytest.raises(ValueError):
            dial_digits(parsed, RULES)


def test_reasons_the_agent_reads() -> None:
    assert parse("0044207946000", RULES).reason == "国际号码不允许外呼"
    assert parse("1380013800A", RULES).reason.startswith("号码只能包含数字")
    assert parse("12345", RULES).reason == "该特服号码未获准外呼"


def test_allowed_short_codes() -> None:
    for code in ("12345", "110"):
        parsed = parse(code, ALLOWING)
        assert (parsed.kind, parsed.allowed) == (K.SHORT_CODE, True)
        assert dial_digits(parsed, ALLOWING) == code
    assert parse("119", ALLOWING).code == "short_code_not_allowed"


def test_premium_is_never_allowed() -> None:
    rules = GuardRules(allowed_short_codes=("12590",))
    assert parse("12590", rules).code == "premium"


def test_dial_digits() -> None:
    with_area = GuardRules(local_format="with_area_code")
    local = parse("63160000", RULES)
    assert dial_digits(local, RULES) == "63160000"
    assert dial_digits(parse("0377 6316 0000", RULES), RULES) == "63160000"
    assert dial_digits(parse("63160000", with_area), with_area) == "037763160000"
    assert dial_digits(parse("+86 10 6512 3456", RULES), RULES) == "01065123456"
    assert dial_digits(parse("01065123456", with_area), with_area) == "01065123456"
    assert dial_digits(parse("+8613800138000", RULES), RULES) == "13800138000"
    assert dial_digits(parse("013800138000", with_area), with_area) == "13800138000"


def test_another_home_area() -> None:
    zhengzhou = GuardRules(area_code="0371")
    assert parse("037165123456", zhengzhou).kind is K.LANDLINE
    assert parse("037763160000", zhengzhou).kind is K.LONG_DISTANCE
    assert parse("65123456", zhengzhou).national == "037165123456"
    beijing = GuardRules(area_code="010")
    assert parse("65123456", beijing).national == "01065123456"
    assert dial_digits(parse("01065123456", beijing), beijing) == "65123456"


@pytest.mark.parametrize("bad", [
    {"area_code": "377"}, {"area_code": "0111"}, {"area_code": "03770"}, {"area_code": ""},
    {"local_format": "national"}, {"allowed_short_codes": ("12a45",)},
    {"allowed_short_codes": ("12",)}, {"allowed_short_codes": ["110"]},
    {"max_per_number_per_hour": 0}, {"max_per_hour": -1}, {"max_per_hour": True},
])
def test_rules_are_checked(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        GuardRules(**bad)  # type: ignore[arg-type]


# -- properties ----------------------------------------------------------------------------

phoneish = st.text(alphabet="0123456789+- ", max_size=20)
written = st.one_of(
    st.text(), phoneish,
    st.builds(lambda p, n: p + n, st.sampled_from(["", "+86", "0086", "86", "0", "00"]),
              st.from_regex(r"[0-9]{3,12}", fullmatch=True)),
)
all_rules = st.sampled_from([
    RULES, ALLOWING, GuardRules(local_format="with_area_code"),
    GuardRules(area_code="010", allowed_short_codes=("95588",)),
])


@given(written, all_rules)
def test_parse_never_raises_and_dials_only_digits(text: str, rules: GuardRules) -> None:
    parsed = parse(text, rules)
    assert parsed.kind in NumberKind
    if parsed.allowed:
        digits = dial_digits(parsed, rules)
        assert digits.isascii() and digits.isdigit() and 3 <= len(digits) <= 15
        assert parsed.kind in (K.MOBILE, K.LANDLINE, K.LONG_DISTANCE, K.SHORT_CODE)
        # Nothing the text held besides digits and separators can be in the digits.
        assert set(text) <= set("0123456789+- ")
    else:
        with pytest.raises(ValueError):
            dial_digits(parsed, rules)


@given(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True),
       st.sampled_from(["{}", "+86{}", "+86 {}", "0086{}", "86{}", "0{}"]))
def test_every_way_of_writing_a_mobile_gives_one_number(number: str, form: str) -> None:
    parsed = parse(form.format(number), RULES)
    if number.startswith(("160", "168")):
        assert parsed.kind is K.PREMIUM
    else:
        assert (parsed.kind, parsed.national) == (K.MOBILE, number)
        assert dial_digits(parsed, RULES) == number
