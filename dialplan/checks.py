"""Helpers that check one value of the hotline YAML and report a mistake in plain words."""

from __future__ import annotations

from dialplan import yamlsrc
from dialplan.yamlsrc import Node


class ConfigChecker(yamlsrc.Checker):
    """The hotline YAML's checker: plain-words mistakes with file and line."""

    def text(self, node: Node | None, where: str, default: str | None = None) -> str:
        if node is None:
            return default or ""
        if not isinstance(node.value, str | int) or isinstance(node.value, bool):
            self.err(node.line, f"{where} must be text")
            return default or ""
        return str(node.value)

    def number(
        self, node: Node | None, where: str, default: float, lo: float, hi: float
    ) -> float:
        if node is None:
            return default
        v = node.value
        if isinstance(v, bool) or not isinstance(v, int | float):
            self.err(node.line, f"{where} must be a number of seconds")
            return default
        if not lo <= v <= hi:
            self.err(node.line, f"{where} must be between {lo:g} and {hi:g}, not {v}")
            return default
        return float(v)
