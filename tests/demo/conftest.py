"""Fixtures of the demo tests: a tiny CAT-Seg page, and (when gradio is installed) its server on a free port."""

from __future__ import annotations

import importlib.util
import socket

import pytest

from tests.segmentation.conftest import photo, run_cli, tiny_weights  # noqa: F401 - fixtures reused here

HAVE_GRADIO = importlib.util.find_spec("gradio") is not None and importlib.util.find_spec("gradio_client") is not None
needs_gradio = pytest.mark.skipif(
    not HAVE_GRADIO, reason='gradio and gradio_client are not installed (pip install -e ".[dev,demo]")'
)


@pytest.fixture
def page(tiny_weights, tmp_path):
    from infoclip.demo.page import DemoPage
    from infoclip.segmentation.segmenter import Segmenter

    page = DemoPage(Segmenter.from_pretrained(tiny_weights, device="cpu"), workdir=tmp_path / "work")
    yield page
    page.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def server(tiny_weights):
    """The demo app of a tiny CAT-Seg served on a free loopback port: yields its URL."""
    if not HAVE_GRADIO:
        pytest.skip('gradio and gradio_client are not installed (pip install -e ".[dev,demo]")')
    from infoclip.demo.app import build_app, launch
    from infoclip.demo.page import DemoPage
    from infoclip.segmentation.segmenter import Segmenter

    page = DemoPage(Segmenter.from_pretrained(tiny_weights, device="cpu"))
    app = build_app(page)
    url = launch(app, host="127.0.0.1", port=free_port(), block=False, quiet=True)
    yield url
    app.close()
    page.close()
