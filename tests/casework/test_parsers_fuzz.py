"""The parsers of files admins bring in from outside (the State Council's holiday notice,
the units directory as YAML or CSV with its handlers, the knowledge base) answer anything
with a result or their own error listing `file:line: sentence`, never another exception."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from casework import calendar, knowledge, units

ROOT = Path(__file__).resolve().parents[2]
NOTICE = (ROOT / "config" / "calendar" / "2027.example.yaml").read_text(encoding="utf-8")
UNITS_YAML = (ROOT / "config" / "units.yaml").read_text(encoding="utf-8")
UNITS_CSV = (ROOT / "config" / "units.example.csv").read_text(encoding="utf-8")
HANDLERS_CSV = (ROOT / "config" / "units.handlers.example.csv").read_text(encoding="utf-8")
KNOWLEDGE = (ROOT / "config" / "knowledge.yaml").read_text(encoding="utf-8")
FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAME = "in.txt"

YAML_TOKENS = ["a", "year", "holidays", "working_days", "name", "from", "to", "date", "units",
               "code", "level", "knowledge", "question", "answer", "keywords", ":", ": ", "- ",
               "\n", "  ", "{", "}", "[", "]", ",", "&x ", "*x", "!!int ", "!!binary ",
               "!!timestamp ", "!!float ", "2027-02-30", "2027-01-01", "2024-13-45", "1e400",
               "~", "'", '"', "? ", "|", "#", "---\n", "\t", "\x00", "\ufeff", "中文", "-1"]
CSV_TOKENS = ["code", "name", "level", "duty_phone", "parent_code", "unit_code", "login",
              "initial_password", ",", "\n", "\r\n", '"', '""', "1", "2", "0", "-1", "A01",
              "0377-5550101", "某局", " ", "\x00", "\ufeff", "\t", ";", "=cmd|' /C calc'!A0",
              "a" * 300]
yaml_soup = st.lists(st.sampled_from(YAML_TOKENS), max_size=40).map("".join)
csv_soup = st.lists(st.sampled_from(CSV_TOKENS), max_size=40).map("".join)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats()
    | st.text(max_size=20) | st.dates().map(str),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=8)


def _problems_ok(problems: list[tuple[str, int, str]], text: str) -> None:
    assert problems, "an error with no problem listed"
    for filename, line, message in problems:
        assert filename == NAME
        assert isinstance(line, int) and 0 <= line <= text.count("\n") + 2, (line, message)
        assert isinstance(message, str) and message.strip()


def notice(text: str) -> None:
    try:
        calendar.parse_notice(text, NAME)
    except calendar.NoticeError as e:
        _problems_ok(e.problems, text)
        assert re.match(rf"{NAME}:\d+: \S", str(e))


def units_yaml(text: str) -> None:
    try:
        units.parse_units_yaml(text, NAME)
    except units.FileProblems as e:
        _problems_ok(e.problems, text)


def units_csv(text: str) -> None:
    try:
        specs = units.parse_units_csv(text, NAME)
    except units.FileProblems as e:
        _problems_ok(e.problems, text)
        specs = units.parse_units_csv(UNITS_CSV)
    try:
        units.parse_handlers_csv(text, specs, NAME)
    except units.FileProblems as e:
        _problems_ok(e.problems, text)


def knowledge_yaml(text: str) -> None:
    try:
        knowledge.parse_yaml(text, NAME)
    except (units.FileProblems, knowledge.KnowledgeError) as e:
        _problems_ok(getattr(e, "problems", [(NAME, 1, str(e))]), text)


YAML_PARSERS: dict[str, tuple[Callable[[str], None], str]] = {
    "notice": (notice, NOTICE), "units": (units_yaml, UNITS_YAML),
    "knowledge": (knowledge_yaml, KNOWLEDGE)}


def test_the_shipped_files_parse() -> None:
    calendar.parse_notice(NOTICE, NAME)
    specs = units.parse_units_yaml(UNITS_YAML, NAME)
    assert specs
    units.parse_handlers_csv(HANDLERS_CSV, units.parse_units_csv(UNITS_CSV), NAME)
    assert knowledge.parse_yaml(KNOWLEDGE, NAME)


@pytest.mark.parametrize("kind", sorted(YAML_PARSERS))
@FUZZ
@given(text=st.text(max_size=200) | yaml_soup)
def test_yaml_parsers_with_arbitrary_text(kind: str, text: str) -> None:
    YAML_PARSERS[kind][0](text)


@pytest.mark.parametrize("kind", sorted(YAML_PARSERS))
@FUZZ
@given(at=st.floats(0, 1), text=yaml_soup)
def test_yaml_parsers_with_text_spliced_into_a_good_file(kind: str, at: float,
                                                         text: str) -> None:
    parse, good = YAML_PARSERS[kind]
    i = int(at * len(good))
    parse(good[:i] + text + good[i:])


def _mutate(data: Any, draw: st.DrawFn) -> Any:
    """Replace one value somewhere in the tree (or the whole tree) with a random value."""
    if isinstance(data, dict) and data and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(data, key=str)))
        return {**data, key: _mutate(data[key], draw)}
    if isinstance(data, list) and data and draw(st.booleans()):
        i = draw(st.integers(0, len(data) - 1))
        return [*data[:i], _mutate(data[i], draw), *data[i + 1:]]
    return draw(json_values)


@pytest.mark.parametrize("kind", sorted(YAML_PARSERS))
@FUZZ
@given(data=st.data())
def test_yaml_parsers_with_structured_mutations(kind: str, data: st.DataObject) -> None:
    parse, good = YAML_PARSERS[kind]
    tree = copy.deepcopy(yaml.safe_load(good))
    for _ in range(data.draw(st.integers(1, 3))):
        tree = _mutate(tree, data.draw)
    parse(yaml.safe_dump(tree, allow_unicode=True, sort_keys=False, default_flow_style=False))


@FUZZ
@given(text=st.text(max_size=200) | csv_soup)
def test_csv_parsers_with_arbitrary_text(text: str) -> None:
    units_csv(text)


@FUZZ
@given(row=st.lists(st.sampled_from(CSV_TOKENS[:-1]) | st.text(max_size=10), max_size=12))
def test_csv_parsers_with_a_bad_row_after_good_ones(row: list[str]) -> None:
    units_csv(UNITS_CSV + ",".join(row) + "\n")
    units_csv(HANDLERS_CSV + ",".join(row) + "\n")


@pytest.mark.parametrize("text", [
    "year: 2027\nholidays:\n  - {name: x, from: 2027-02-30}\n",
    "a: &a [*a]\n", "[" * 5000, "units:\n  - {code: !!int x}\n", "- 2024-02-30\n",
    "knowledge:\n  - {question: !!float '', answer: a}\n",
])
def test_inputs_that_used_to_crash(text: str) -> None:
    for parse, _ in YAML_PARSERS.values():
        parse(text)
