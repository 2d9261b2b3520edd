"""``infoclip demo``: a local web page to segment your own images with your own words (gradio, extra ``demo``)."""

from __future__ import annotations

import importlib.util
from typing import Annotated

import typer

from infoclip_cli.app import err_console
from infoclip_cli.segment_cmd import ClipOption, WeightsOption

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def demo(
    weights: WeightsOption = None,
    clip: ClipOption = None,
    host: Annotated[
        str, typer.Option(help="Address to serve on. The default serves this machine only; another address prints a warning.")
    ] = "127.0.0.1",
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port (default: the first free one from 7860).")
    ] = None,
    device: Annotated[str, typer.Option(help="auto (CUDA when available), cpu, cuda, cuda:N or mps.")] = "auto",
) -> None:
    """Serve a local web page for interactive segmentation (needs: pip install "infoclip[demo]").

    The model is loaded once. The page takes an image (upload, paste or one of the examples), class names
    (commas or one per line) or a shipped vocabulary, and, under "Advanced", the protocol, precision, prompt
    template and overlay opacity. It shows the overlay with a clickable legend, a table of the classes present
    (share, mean score) and offers the label map PNG and the JSON that `infoclip segment` writes. Images above
    1,048,576 pixels are scaled down before segmentation. Every action is also an API endpoint for gradio_client
    (`/segment`, `/highlight`; see "Use via API" at the bottom of the page). No share link, no telemetry.

    Examples:

      infoclip demo                       (the default model, catseg-b16)

      infoclip demo --weights catseg-l14 --device cuda

      infoclip demo --clip ViT-B-16:openai --port 8080
    """
    from infoclip.errors import MissingDependencyError

    from infoclip_cli.segment_cmd import check_device_name, check_model_choice, load_segmenter

    check_model_choice(weights, clip)
    check_device_name(device)
    if importlib.util.find_spec("gradio") is None:  # before the (slow) model load
        raise MissingDependencyError('infoclip demo needs gradio, an optional extra: pip install "infoclip[demo]"')
    if host not in LOOPBACK_HOSTS:
        err_console.print(
            f"warning: serving on {host}: anyone who can reach this machine on that address can use the page and "
            "the model (there is no login); use --host 127.0.0.1 to serve this machine only",
            markup=False, highlight=False, soft_wrap=True,
        )
    from infoclip.demo.app import build_app, launch
    from infoclip.demo.page import DemoPage

    page = DemoPage(load_segmenter(weights, clip, device))
    try:
        launch(build_app(page), host=host, port=port)
    finally:
        page.close()


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
