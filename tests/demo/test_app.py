"""The demo served for real: gradio_client calls /segment and /highlight on a tiny CAT-Seg over loopback."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from infoclip.segmentation.segmenter import Segmenter
from tests.demo.conftest import needs_gradio
from tests.segmentation.images_on_disk import gradient_rgb, write_truncated_png

pytestmark = needs_gradio

# vocabulary, protocol, precision, template, opacity, probabilities, vocabulary expansion
DEFAULTS = ("none", "sliding", "fp32", "", 0.5, False, "none")


def segment(client, image, classes, *rest):  # noqa: ANN001, ANN201
    from gradio_client import handle_file

    return client.predict(handle_file(str(image)), classes, *(rest or DEFAULTS), api_name="/segment")


def read_png(path) -> np.ndarray:  # noqa: ANN001
    with Image.open(path) as image:
        return np.asarray(image)


def test_segment_endpoint_returns_what_segmenter_computes(server, tiny_weights, photo):
    from gradio_client import Client

    client = Client(server, verbose=False)
    status, segmentation, table, label_map, summary, overlay, probs, choice, highlight, line = segment(
        client, photo, "cat, sofa\nfloor"
    )
    reference = Segmenter.from_pretrained(tiny_weights, device="cpu").predict(photo, ["cat", "sofa", "floor"])
    np.testing.assert_array_equal(read_png(label_map), reference.labels.astype(np.uint8))
    written = json.loads(open(summary, encoding="utf-8").read())
    assert written["classes"] == ["cat", "sofa", "floor"] and written["protocol"] == "sliding"
    assert written["pixel_shares"] == pytest.approx(reference.shares)
    present = {name for name, share in reference.shares.items() if share > 0}
    assert {row[0] for row in table["data"]} == present
    labels = [a["label"] for a in segmentation["value"]["annotations"]]
    assert {label.split(" (")[0] for label in labels} == present
    assert set(segmentation["color_map"]) == set(labels)
    assert read_png(overlay).shape[0] >= 48 and probs["value"] is None
    assert status.startswith("photo.png: 64x48, 3 classes, sliding protocol, fp32")
    # /highlight, in the same session: one class coloured, its share and score described
    picture, text = client.predict(labels[0], api_name="/highlight")
    assert read_png(picture).shape == (48, 64, 3) and text.startswith(labels[0].split(" (")[0] + ": ")


def test_segment_endpoint_takes_segments_options_in_order(server, tiny_weights, photo):
    from gradio_client import Client

    from infoclip.segmentation.options import SegmentOptions

    client = Client(server, verbose=False)
    answer = segment(client, photo, "cat|kitten, sofa", *DEFAULTS[:-1], "none", "mean", 0.9999, "flip")
    reference = Segmenter.from_pretrained(tiny_weights, device="cpu").predict(
        photo, ["cat|kitten", "sofa"], options=SegmentOptions(synonym_rule="mean", background_threshold=0.9999, tta="flip")
    )
    expected = np.where(reference.labels < 0, 255, reference.labels).astype(np.uint8)  # background: 255 in uint8 maps
    np.testing.assert_array_equal(read_png(answer[3]), expected)
    written = json.loads(open(answer[4], encoding="utf-8").read())
    assert written["options"]["synonym_rule"] == "mean" and written["options"]["tta"] == "flip"


def test_bad_requests_get_one_line_and_the_server_keeps_serving(server, photo, tmp_path):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(server, verbose=False)
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    truncated = tmp_path / "half.png"
    write_truncated_png(truncated, np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    for image, classes, rest, message in (
        (notes, "cat", DEFAULTS, "notes.txt: cannot read image"),
        (truncated, "cat", DEFAULTS, "half.png: cannot read image"),
        (photo, " , ", DEFAULTS, "the classes box is empty"),
        (photo, "cat, Cat", DEFAULTS, "repeats class names"),
        (photo, "cat", ("voc20",) + DEFAULTS[1:], "use one of them"),
    ):
        with pytest.raises(AppError, match=message):
            segment(client, image, classes, *rest)
    assert segment(client, photo, "cat, sofa")[0].startswith("photo.png")


def test_two_clients_at_once_each_get_their_own_answer(server, tmp_path):
    from gradio_client import Client

    jobs = []
    for k, classes in enumerate(("cat, sofa", "sky, grass, road, tree")):
        path = tmp_path / f"image{k}.png"
        Image.fromarray(np.roll(gradient_rgb(40 + 8 * k, 56), 7 * k, axis=1)).save(path)
        jobs.append((Client(server, verbose=False), path, classes))
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda job: segment(*job), jobs))
    for (_, path, classes), answer in zip(jobs, answers):
        written = json.loads(open(answer[4], encoding="utf-8").read())
        assert written["classes"] == [c.strip() for c in classes.split(",")]
        assert written["image"] == path.name
        assert read_png(answer[3]).shape == Image.open(path).size[::-1]


def test_the_page_serves_no_telemetry_and_documents_its_endpoints(server):
    from gradio_client import Client

    import infoclip.demo.app  # noqa: F401 - sets the variable gradio reads

    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    info = Client(server, verbose=False).view_api(print_info=False, return_format="dict")
    assert set(info["named_endpoints"]) == {"/segment", "/highlight"}
    names = [p["parameter_name"] for p in info["named_endpoints"]["/segment"]["parameters"]]
    assert names == [
        "image", "classes", "vocabulary", "protocol", "precision", "template", "opacity", "save_probs", "expand_vocabulary",
        "synonym_rule", "background_threshold", "tta",
    ]


def test_a_busy_port_is_one_line(page):
    import socket

    from infoclip.demo.app import build_app, launch
    from infoclip.errors import InputError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(InputError, match=f"cannot serve the demo on 127.0.0.1:{port}"):
            launch(build_app(page), host="127.0.0.1", port=port, block=False, quiet=True)
