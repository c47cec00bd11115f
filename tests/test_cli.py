"""The command line: the checked-in SDL matches `sessiongraph schema`; bad flags fail cleanly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sessiongraph.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_checked_in_schema_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    main(["schema"])
    printed = capsys.readouterr().out
    assert printed == (ROOT / "schema.graphql").read_text(), (
        "schema.graphql is stale: run `sessiongraph schema > schema.graphql`"
    )


def test_console_script_prints_the_schema() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sessiongraph", "schema"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "type Query" in result.stdout
    assert "interface Session" in result.stdout


def test_unknown_command_exits_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fly"])
    assert exit_info.value.code == 2
    assert "usage" in capsys.readouterr().err
