"""The gradio layer of ``infoclip demo``: layout and events over ``DemoPage``, which holds all the logic.

Importing this module needs the ``demo`` extra (``pip install "infoclip[demo]"``); it switches gradio's telemetry
off before gradio is imported. The server binds where ``launch`` is told (the command line: 127.0.0.1), never opens
a share tunnel, keeps no run history, and the page loads nothing from other hosts (system fonts).

API. Every action is an endpoint that ``gradio_client`` can call (the page's "Use via API" link lists them):

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860/")
    (status, segmentation, table, label_map, summary, overlay, probs,
     choice, highlight, line) = client.predict(
        handle_file("photo.jpg"),      # image
        "cat, sofa, floor",            # classes: commas and/or new lines ("" when a vocabulary is chosen)
        "none",                        # vocabulary: "none" or ade150, ade847, coco, pc59, pc459, voc20, voc20b
        "sliding",                     # protocol: one of the model's (CAT-Seg: sliding | whole)
        "fp32",                        # precision: fp32 | bf16 | fp16 (GPU)
        "",                            # prompt template with {} ("" = the model's own)
        0.5,                           # overlay opacity
        False,                         # also return the probabilities (.npy)
        "none",                        # vocabulary expansion: "none" or a vocabulary; its other classes -> "other"
        "max",                         # synonym rule for "sofa|couch": max | mean
        0.0,                           # background threshold in [0, 1] (0: off)
        "none",                        # test-time augmentation: none | flip | ms
        api_name="/segment")
    # label_map: path of the label-map PNG (pixel = class index); summary: the JSON `infoclip segment` writes;
    # segmentation: {"image": ..., "annotations": [{"image": mask PNG, "label": "cat (42.0%)"}, ...]};
    # table: {"headers": [...], "data": [[class, colour, share %, mean score], ...]}
    image, line = client.predict("cat (42.0%)", api_name="/highlight")   # one class highlighted (same session)

A bad request (no image, a non-image or truncated file, an empty or repeated class list, both classes and a
vocabulary) raises ``gr.Error`` with one line: the page shows it, ``gradio_client`` raises it, and the server
goes on serving. Requests queue and run one at a time (the model is shared); each browser tab gets its own answer.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read by gradio at import time: no telemetry, no version check

try:
    import gradio as gr
except ImportError as exc:  # the extra is not installed
    from infoclip.errors import MissingDependencyError

    raise MissingDependencyError('the demo page needs gradio, an optional extra: pip install "infoclip[demo]"') from exc

from infoclip.demo import example_images
from infoclip.demo.page import DemoPage, PageAnswer, PageOptions, vocabulary_choices
from infoclip.errors import InfoclipError, InputError

log = logging.getLogger(__name__)

#: requests waiting beyond this are refused with gradio's "queue is full" message
MAX_QUEUE = 32
#: uploads above this are refused by gradio before they reach the page
MAX_UPLOAD = "64mb"
#: system fonts only: the default theme would fetch Google Fonts, which this page must not
THEME_FONTS = dict(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
TABLE_HEADERS = ["class", "colour", "share (%)", "mean score"]


def uploaded_path(payload: Any) -> str | None:
    """The server-side path of an image input received unprocessed (``preprocess=False``).

    ``gr.Image`` would open the upload with PIL before the event function runs, so a non-image would fail inside
    gradio with a generic error; the segment event skips that step (gradio still checks that the file is an
    upload of this server) and the page's own reader names the problem in one line.
    """
    if payload is None or isinstance(payload, str):
        return payload
    path = payload.get("path") if isinstance(payload, dict) else None
    if not path:
        raise gr.Error("the image arrived without a file: upload it as a file")
    return str(path)


def _page_error(exc: BaseException) -> gr.Error:
    text = str(exc).strip()
    return gr.Error(text.splitlines()[0] if text else type(exc).__name__, print_exception=False)


def _answer_or_error(run: Any) -> PageAnswer:
    """Run a page request; every failure becomes one ``gr.Error`` line and the server keeps serving."""
    try:
        return run()
    except InfoclipError as exc:
        raise _page_error(exc) from exc
    except MemoryError as exc:
        raise gr.Error("out of memory: try a smaller image, fewer classes or the whole protocol") from exc
    except Exception as exc:
        if "out of memory" in str(exc):  # torch.OutOfMemoryError and allocator RuntimeErrors
            raise gr.Error("out of memory: try a smaller image, fewer classes or the whole protocol") from exc
        log.exception("demo request failed")
        raise gr.Error(f"internal error ({type(exc).__name__}: {exc}); the server's log has the traceback") from exc


def build_app(page: DemoPage, title: str = "infoclip demo") -> gr.Blocks:
    """The page's gradio Blocks over ``page`` (not launched; see ``launch``)."""
    defaults = page.default_options
    examples = example_images()

    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(
            f"## {title}\n"
            f"Model: {page.describe()}. Upload an image, type the classes (commas or one per line) or choose a "
            f"vocabulary, and press **Segment**. Images above {page.max_pixels:,} pixels are scaled down before "
            "segmentation; downloads are at the segmented size. Click a class in the legend to highlight it."
        )
        answer_state = gr.State(None, time_to_live=3600)
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(label="Image", type="filepath", sources=["upload", "clipboard"], height=360)
                classes = gr.Textbox(label="Classes", lines=3, placeholder="cat, sofa, floor")
                vocabulary = gr.Dropdown(
                    vocabulary_choices(), value="none", label="Vocabulary (instead of the classes box)"
                )
                with gr.Accordion("Advanced", open=False):
                    protocols = page.protocols()
                    protocol = gr.Radio(
                        [name for name, _ in protocols], value=defaults.protocol, label="Protocol",
                        info="; ".join(f"{name}: {what}" for name, what in protocols),
                    )
                    precision = gr.Radio(page.precisions(), value=defaults.precision, label="Precision")
                    template = gr.Textbox(
                        label="Prompt template", placeholder=page.default_template or "a photo of a {}.",
                        info="{} is replaced by the class name; empty: the model's own",
                    )
                    opacity = gr.Slider(0.0, 1.0, value=defaults.alpha, step=0.05, label="Overlay opacity")
                    save_probs = gr.Checkbox(value=False, label="Also offer the per-class probabilities (.npy)")
                    expand = gr.Dropdown(
                        vocabulary_choices(), value="none", label="Vocabulary expansion",
                        info="also score this vocabulary's other classes; pixels they win are labelled 'other'",
                    )
                    synonym_rule = gr.Radio(
                        ["max", "mean"], value=defaults.synonym_rule, label="Synonym rule",
                        info="how a class written 'sofa|couch' is scored from its synonyms",
                    )
                    background = gr.Slider(
                        0.0, 1.0, value=0.0, step=0.05, label="Background threshold",
                        info="pixels whose best score is below it are background (grey); 0: off",
                    )
                    tta = gr.Radio(
                        ["none", "flip", "ms"], value=defaults.tta, label="Test-time augmentation",
                        info="flip: + mirrored image; ms: scales 0.75/1/1.25, each flipped (6x the time)",
                    )
                button = gr.Button("Segment", variant="primary")
                gr.Examples(
                    [[str(path), names] for path, names in examples], inputs=[image, classes], label="Examples"
                )
            with gr.Column(scale=2):
                status = gr.Markdown("", label="status")
                segmentation = gr.AnnotatedImage(label="Segmentation", format="png", height=480)
                with gr.Row():
                    choice = gr.Dropdown([], value=None, label="Highlighted class", interactive=True, scale=1)
                    line = gr.Markdown("", label="highlight_line")
                highlight = gr.Image(label="Highlight", interactive=False, format="png", height=360)
                table = gr.Dataframe(headers=TABLE_HEADERS, label="Classes present", interactive=False)
                with gr.Row():
                    label_map = gr.File(label="Label map (PNG, pixel = class index)", interactive=False)
                    summary = gr.File(label="Summary (JSON, as infoclip segment writes it)", interactive=False)
                    overlay = gr.File(label="Overlay with legend (PNG)", interactive=False)
                    probs = gr.File(label="Probabilities (.npy)", interactive=False, visible=False)

        def segment(image, classes, vocabulary, protocol, precision, template, opacity, save_probs, expand_vocabulary="none",  # noqa: ANN001, ANN202, E501
                    synonym_rule="max", background_threshold=0.0, tta="none", progress=gr.Progress()):  # noqa: ANN001
            threshold = float(background_threshold) if background_threshold else None  # 0 (the slider's default): off
            options = PageOptions(protocol, precision, template or "", float(opacity), bool(save_probs), expand_vocabulary or "",
                                  synonym_rule or "max", threshold, tta or "none")  # fmt: skip
            path = uploaded_path(image)
            answer = _answer_or_error(
                lambda: page.run(path, classes, vocabulary, options, lambda f, what: progress(f, desc=what))
            )
            display = answer.display
            labels = [row.label for row in display.legend]
            return (
                answer.message,
                gr.AnnotatedImage(
                    (display.image, display.annotations()), color_map={row.label: row.colour for row in display.legend}
                ),
                [[row.name, row.colour, round(100 * row.share, 2), round(row.mean_score, 4)] for row in answer.table],
                str(answer.files["labels"]),
                str(answer.files["summary"]),
                str(answer.files["overlay"]),
                gr.File(str(answer.files["probs"]) if "probs" in answer.files else None, visible="probs" in answer.files),
                gr.Dropdown(labels, value=None),
                None,
                "",
                display,
            )

        def show(highlighted_class, display):  # noqa: ANN001, ANN202
            if display is None:
                raise gr.Error("nothing to highlight yet: segment an image first")
            try:
                picture, text = display.highlight(highlighted_class)
            except InputError as exc:
                raise _page_error(exc) from exc
            return picture, text

        def on_select(display, evt: gr.SelectData):  # noqa: ANN001, ANN202
            if display is None:
                raise gr.Error("nothing to highlight yet: segment an image first")
            row = display.legend_row(int(evt.index))  # the legend lists the annotations in legend order
            picture, text = display.highlight(row.label)
            return gr.Dropdown(value=row.label), picture, text

        button.click(
            segment,
            inputs=[image, classes, vocabulary, protocol, precision, template, opacity, save_probs, expand, synonym_rule, background, tta],
            outputs=[status, segmentation, table, label_map, summary, overlay, probs, choice, highlight, line, answer_state],
            api_name="segment",
            preprocess=False,  # the image reaches the page unopened: see uploaded_path
            concurrency_limit=1,
            concurrency_id="model",
        )
        choice.input(show, inputs=[choice, answer_state], outputs=[highlight, line], api_name="highlight")
        segmentation.select(
            on_select, inputs=[answer_state], outputs=[choice, highlight, line], api_visibility="private"
        )
    app.queue(default_concurrency_limit=1, max_size=MAX_QUEUE)
    return app


def launch(app: gr.Blocks, host: str = "127.0.0.1", port: int | None = None, block: bool = True, quiet: bool = False) -> str:
    """Serve ``app`` on ``host:port`` (``port=None``: the first free one from 7860); returns the local URL.

    No share tunnel, no telemetry, no run history, no MCP server. With ``block=False`` it returns once the server
    runs (stop it with ``app.close()``).

    Raises:
        InputError: the address cannot be served (port in use, unknown host).
    """
    folders = sorted({str(Path(path).parent) for path, _ in example_images()})
    try:
        app.launch(
            server_name=host,
            server_port=port,
            share=False,
            prevent_thread_lock=not block,
            inbrowser=False,
            quiet=quiet,
            show_error=False,
            ssr_mode=False,
            pwa=False,
            mcp_server=False,
            run_history=False,
            enable_monitoring=False,
            footer_links=["api", "settings"],
            allowed_paths=folders,
            max_file_size=MAX_UPLOAD,
            theme=gr.themes.Default(**THEME_FONTS),
        )
    except OSError as exc:
        where = f"{host}:{port}" if port else f"{host} (ports 7860-7959)"
        raise InputError(f"cannot serve the demo on {where}: {exc}; choose another port or host") from exc
    return str(app.local_url or f"http://{host}:{port}/")


__all__ = ["MAX_QUEUE", "build_app", "launch", "uploaded_path"]
