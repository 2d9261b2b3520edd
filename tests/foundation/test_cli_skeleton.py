from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from infoclip import __version__
from infoclip_cli.main import app, main

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"infoclip {__version__}"


def test_adapters_list_json(installed_toy):
    import json

    result = runner.invoke(app, ["adapters", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["plugin"]: row for row in json.loads(result.output)}
    assert rows["toy"]["source"] == "infoclip-toy (entry point)"
    assert rows["toy"]["adapters"][0]["name"] == "toy"


def test_adapters_list_table(installed_toy):
    result = runner.invoke(app, ["adapters", "list"])
    assert result.exit_code == 0
    assert "toy" in result.output and "entry point" in result.output


def test_library_errors_become_one_line(broken_plugin, monkeypatch, capsys):
    broken_plugin("raises")
    monkeypatch.setattr(sys, "argv", ["infoclip", "adapters", "list"])
    monkeypatch.delenv("INFOCLIP_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error: plugin 'raises' raised in infoclip_register_adapters")
    assert "Traceback" not in "\n".join(err) and "INFOCLIP_DEBUG=1" in err[1]


def test_debug_shows_the_traceback(broken_plugin, monkeypatch):
    from infoclip.errors import AdapterError

    broken_plugin("raises")
    monkeypatch.setattr(sys, "argv", ["infoclip", "adapters", "list"])
    monkeypatch.setenv("INFOCLIP_DEBUG", "1")
    with pytest.raises(AdapterError):
        main()
