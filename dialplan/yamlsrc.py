"""Reading an admin's YAML while keeping line numbers: the one reader behind the hotline
YAML, the units directory, the knowledge base and State Council holiday notices.

Every value comes back as a Node that knows the line it was written on (and, for a
mapping, the line of each key), so checks can say ``file:line: plain sentence``. Files
that would hang or blow up a plain YAML load (an alias inside itself, a "billion laughs"
of nested aliases, brackets thousands deep, values of a type that cannot be built) are
refused with such a sentence too.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import yaml

# An alias that refers to itself (&a [*a]) or a 'billion laughs' of nested aliases
# would recurse without end or expand to millions of nodes: refuse such a file.
MAX_DEPTH = 64
MAX_NODES = 100_000


class YamlProblems(ValueError):
    """One or more mistakes, each as (file, line, sentence)."""

    def __init__(self, problems: list[tuple[str, int, str]]):
        self.problems = problems
        super().__init__("\n".join(f"{f}:{line}: {msg}" for f, line, msg in problems))


@dataclass
class Node:
    """A YAML value with the line it came from. ``value`` is a scalar's YAML type (int,
    bool, str...) or, read with ``typed=False``, its text (None when empty); ``raw`` is a
    scalar's text as written (so 0377123 or a code like 03 can stay text)."""

    value: Any
    line: int
    keys: dict[str, int] = field(default_factory=dict)  # mapping key -> line of the key
    raw: str | None = None


def compose(text: str, filename: str, *, typed: bool = True) -> Node:
    """Parse YAML text into Nodes; YamlProblems if it is not YAML one can read safely."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else 0
        raise YamlProblems([(filename, line, f"this is not valid YAML: {e.problem}")]) from None
    except yaml.YAMLError as e:
        raise YamlProblems([(filename, 0, f"this is not valid YAML: {e}")]) from None
    except RecursionError:  # [[[[... thousands deep
        raise YamlProblems([(filename, 1, "the file nests too deeply")]) from None
    if root is None:
        raise YamlProblems([(filename, 1, "the file is empty")])
    return _convert(root, filename, typed, 0, [0])


def _convert(node: yaml.Node, filename: str, typed: bool, depth: int,
             count: list[int]) -> Node:
    line = node.start_mark.line + 1
    count[0] += 1
    if depth > MAX_DEPTH or count[0] > MAX_NODES:
        raise YamlProblems([(filename, line, "the file nests too deeply or repeats an alias "
                                             "too often (does an alias refer to itself?)")])
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Node] = {}
        keys: dict[str, int] = {}
        for k, v in node.value:
            key = str(k.value)
            if key in out:
                raise YamlProblems([(filename, k.start_mark.line + 1,
                                     f"the key '{key}' appears twice")])
            out[key] = _convert(v, filename, typed, depth + 1, count)
            keys[key] = k.start_mark.line + 1
        return Node(out, line, keys)
    if isinstance(node, yaml.SequenceNode):
        return Node([_convert(v, filename, typed, depth + 1, count) for v in node.value], line)
    assert isinstance(node, yaml.ScalarNode)
    raw = str(node.value)
    if not typed:
        # Kept as text: YAML would turn 2027-02-30 into an exception rather than a mistake.
        empty = node.style is None and raw in ("", "~", "null", "Null", "NULL")
        return Node(None if empty else raw, line, raw=raw)
    # Resolve the scalar's type (int, bool, str...) exactly as a safe load would.
    try:
        return Node(yaml.safe_load(yaml.serialize(node)), line, raw=raw)
    except Exception:  # PyYAML's constructors raise whatever their parsing meets
        # 2027-02-30 (a date that does not exist), !!int x, !!float '', !!python/... tags
        raise YamlProblems([(filename, line, f"the value '{raw[:40]}' cannot be read as "
                                             f"{node.tag.rsplit(':', 1)[-1]}")]) from None


class Checker:
    """Collects every mistake of a file, so the admin sees them all at once."""

    def __init__(self, filename: str):
        self.file = filename
        self.problems: list[tuple[str, int, str]] = []

    def err(self, line: int, msg: str) -> None:
        self.problems.append((self.file, line, msg))

    def mapping(self, node: Node, where: str, allowed: set[str], required: set[str]) -> bool:
        """Whether node is a mapping; unknown keys (with a "did you mean") and missing
        required keys are reported."""
        if not isinstance(node.value, dict):
            self.err(node.line, f"{where} must be a mapping of keys to values")
            return False
        for key, line in node.keys.items():
            if key not in allowed:
                hint = difflib.get_close_matches(key, sorted(allowed), n=1)
                tip = f" (did you mean '{hint[0]}'?)" if hint else ""
                self.err(line, f"unknown key '{key}' in {where}{tip}")
        for key in sorted(required - node.value.keys()):
            self.err(node.line, f"{where} is missing '{key}'")
        return True
