"""`hotline units import` and `hotline units list`: a file with mistakes is refused before
the database is touched; a good one is imported into the workflow tests' PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from hotline import cli
from tests.conftest import closed_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql://hotline@127.0.0.1:{closed_port()}/x")


def test_a_file_with_mistakes_exits_2_with_each_line(
        tmp_path: Path, no_database: None, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "units.yaml"
    path.write_text("units:\n"
                    "  - {code: a, name: 某局, level: 1, duty_phone: 0377-5550101}\n"
                    "  - {code: b, name: 某街道, level: 2, parent: x, duty_phone: 0377-5550102}\n"
                    "  - {code: a, name: 某局, level: 1, duty_phone: office}\n",
                    encoding="utf-8")
    assert cli.main(["--var", str(tmp_path), "units", "import", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{path}:3: the parent 'x' of unit b is not in the file",
        f"{path}:4: the duty phone of unit a, 'office', does not look like a phone number "
        "(e.g. 0377-63160000)",
        f"{path}:4: the unit code 'a' is already used on line 2",
        "3 problem(s); nothing was imported",
    ]


def test_only_yaml_and_csv_are_read(tmp_path: Path, no_database: None,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "units.xlsx"
    path.write_bytes(b"PK")
    assert cli.main(["--var", str(tmp_path), "units", "import", str(path)]) == 2
    assert f"{path}:0: the file must end in .yaml, .yml or .csv" in capsys.readouterr().err
    assert cli.main(["--var", str(tmp_path), "units", "import",
                     str(ROOT / "config" / "units.yaml"), "--handlers",
                     str(ROOT / "config" / "units.handlers.example.csv")]) == 2
    assert "a handlers CSV goes with a units CSV" in capsys.readouterr().err


def test_a_good_file_with_no_database_says_so(tmp_path: Path, no_database: None,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["--var", str(tmp_path), "units", "import",
                     str(ROOT / "config" / "units.example.csv")])
    assert code == 1
    assert "the database is not reachable" in capsys.readouterr().err


def test_hotline_units_import_and_list(conn: asyncpg.Connection, pg_dsn: str, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    # conn: the workflow tables start empty.
    monkeypatch.setenv("DATABASE_URL", pg_dsn)
    base = ["--var", str(tmp_path), "units"]
    assert cli.main([*base, "import", str(ROOT / "config" / "units.yaml")]) == 0
    assert cli.main([*base, "import", str(ROOT / "config" / "units.yaml")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].endswith(": 0 units created, 0 updated, 23 unchanged, 0 deactivated; "
                            "handler accounts: 0 created, 0 updated, 0 deactivated")
    assert cli.main([*base, "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert len(listing) == 23
    assert listing[0].startswith("cgj ") and "handlers: 1" in listing[0]
    assert any(line.startswith("    wancheng-xinhua-jiefang") for line in listing)
