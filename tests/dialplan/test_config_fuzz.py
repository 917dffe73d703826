"""Whatever an admin types into the YAML, the loader answers with a HotlineConfig or a
ConfigError whose every problem is `file:line: sentence`; never another exception.

Hypothesis drives it with arbitrary text, YAML-looking token soup (tags, anchors, dates
that do not exist) and structured mutations of the shipped config/hotline.yaml."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialplan import config

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = (ROOT / "config" / "hotline.yaml").read_text(encoding="utf-8")
SHIPPED_DATA = yaml.safe_load(SHIPPED)
NAME = "hotline.yaml"
FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Pieces YAML gives meaning to, and values that once made loaders crash.
TOKENS = ["a", "numbers", "queues", "agents", ":", ": ", "- ", "\n", "  ", "{", "}", "[", "]",
          ",", "&x ", "*x", "!!int ", "!!str ", "!!binary ", "!!python/object:os.system ",
          "!!timestamp ", "!!float ", "2027-02-30", "2024-13-45", "0x", "1e400", ".inf",
          "~", "null", "yes", "'", '"', "? ", "|", ">", "#", "%YAML 1.1\n", "---\n",
          "...\n", "\t", "\x00", "\ufeff", "12345", "中文", "\\u", "@", "`"]
yaml_soup = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70)
    | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12)


def check(text: str) -> config.HotlineConfig | None:
    """Load the text; a ConfigError must be problems of (this file, a line in it, words)."""
    lines = text.count("\n") + 2
    try:
        return config.loads(text, NAME)
    except config.ConfigError as e:
        assert e.problems, "a ConfigError with no problem listed"
        for filename, line, message in e.problems:
            assert filename == NAME
            assert isinstance(line, int) and 0 <= line <= lines, (line, message)
            assert isinstance(message, str) and message.strip()
        assert re.match(rf"{re.escape(NAME)}:\d+: \S", str(e)), str(e)
        return None


def test_the_shipped_file_loads() -> None:
    assert check(SHIPPED) is not None


@FUZZ
@given(st.text(max_size=300))
def test_arbitrary_text(text: str) -> None:
    check(text)


@FUZZ
@given(yaml_soup)
def test_yaml_looking_text(text: str) -> None:
    check(text)


@FUZZ
@given(st.integers(0, len(SHIPPED)), yaml_soup)
def test_the_shipped_file_with_text_spliced_in(at: int, text: str) -> None:
    check(SHIPPED[:at] + text + SHIPPED[at:])


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, (*prefix, i))
    return out


PATHS = _paths(SHIPPED_DATA)[1:]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """The shipped data with a few values replaced, removed or added, dumped as YAML."""
    data = copy.deepcopy(SHIPPED_DATA)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        parent = data
        try:
            for key in path[:-1]:
                parent = parent[key]
            last = path[-1]
            action = draw(st.sampled_from(["replace", "delete", "add"]))
            if action == "replace":
                parent[last] = draw(json_values)
            elif action == "delete":
                del parent[last]
            elif isinstance(parent[last], dict):
                parent[last][draw(st.text(min_size=1, max_size=8))] = draw(json_values)
            elif isinstance(parent[last], list):
                parent[last].append(draw(json_values))
        except (KeyError, IndexError, TypeError):
            pass  # an earlier mutation removed or replaced this path
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_structured_mutations_of_the_shipped_file(text: str) -> None:
    check(text)


@pytest.mark.parametrize("text", [
    "system: 2027-02-30\n",              # a date that does not exist
    "system: !!int abc\n",               # a tag that does not fit its value
    "a: !!python/object:os.system x\n",  # a tag safe loading refuses
    "a: &a [*a]\n",                      # an alias inside itself
    "[" * 5000,                          # nesting deeper than Python's stack
    "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n",  # 10^6 nodes
])
def test_inputs_that_used_to_crash(text: str) -> None:
    assert check(text) is None
