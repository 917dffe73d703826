"""Asterisk starts with none of the hotline's secrets in its environment (its dialplan's
ENV() and every module could read them)."""

from __future__ import annotations

import pytest

from hotline.asterisk import AsteriskInstance, asterisk_env, locate
from tests.conftest import VAR, Stack


def test_only_path_and_locale_are_passed_on() -> None:
    env = asterisk_env({"PATH": "/usr/bin", "LANG": "C.UTF-8", "DATABASE_URL": "postgres://x",
                        "HOTLINE_KEYS": "k", "HOTLINE_ARI_PASSWORD": "p", "HOME": "/root"})
    assert env == {"PATH": "/usr/bin", "LANG": "C.UTF-8"}
    assert asterisk_env({})["PATH"]


@pytest.mark.e2e
def test_the_running_asterisk_has_no_secret_in_its_environment(stack: Stack) -> None:
    pid = int((AsteriskInstance(locate(), VAR).host_base / "run" / "asterisk.pid").read_text())
    names = {item.split(b"=", 1)[0].decode()
             for item in open(f"/proc/{pid}/environ", "rb").read().split(b"\0") if item}
    assert not {n for n in names if n.startswith("HOTLINE_") or n == "DATABASE_URL"}, names
