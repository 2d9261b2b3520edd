"""``infoclip demo`` on the command line: the extra's message, the model rule, the host warning, what is launched."""

from __future__ import annotations

import importlib.util

import pytest

from tests.demo.conftest import needs_gradio


def test_without_gradio_one_line_says_how_to_install_the_extra(run_cli, tiny_weights, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    code, out, err = run_cli("demo", "--weights", tiny_weights)
    assert code == 1 and err.splitlines()[0] == 'error: infoclip demo needs gradio, an optional extra: pip install "infoclip[demo]"'


def test_model_options_are_checked_before_anything_loads(run_cli, tiny_weights):
    for args, message in (
        (("--weights", tiny_weights, "--clip", "ViT-B-16:none"), "give either --weights"),
        (("--clip", "ViT-B-16"), "--clip expects MODEL:TAG"),
        (("--clip", "ViT-B-16:none", "--device", "gpu0"), "unknown device 'gpu0'"),
    ):
        code, _, err = run_cli("demo", *args)
        assert code == 1 and message in err.splitlines()[0]


@needs_gradio
@pytest.mark.parametrize("host, warned", [("127.0.0.1", False), ("0.0.0.0", True)])
def test_loads_the_model_once_and_launches_on_the_host(run_cli, tiny_weights, monkeypatch, host, warned):
    import infoclip.demo.app as app_module

    launched = []

    def fake_launch(app, host, port):  # noqa: ANN001, ANN202
        launched.append((app, host, port))

    monkeypatch.setattr(app_module, "launch", fake_launch)
    code, _, err = run_cli("demo", "--weights", tiny_weights, "--host", host, "--port", "8123", "--device", "cpu")
    assert code == 0 and len(launched) == 1
    app, got_host, port = launched[0]
    assert (got_host, port) == (host, 8123)
    assert {"/segment", "/highlight"} <= {f"/{d.api_name}" for d in app.fns.values() if d.api_name}
    assert ("warning: serving on 0.0.0.0" in err) == warned
