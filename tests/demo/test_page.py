"""The demo page's logic without gradio: classes, sizes, outputs, legend/table, highlight, text-embedding reuse."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from infoclip.demo import example_images
from infoclip.demo.page import (
    MAX_SEGMENT_PIXELS,
    PageOptions,
    fit_pixels,
    fit_side,
    page_classes,
    parse_class_box,
    vocabulary_choices,
)
from infoclip.errors import InputError
from infoclip.segmentation.classes import load_vocabulary
from infoclip.segmentation.overlay import palette
from infoclip.segmentation.segmenter import Segmenter
from tests.segmentation.images_on_disk import gradient_rgb, write_truncated_png


def read_png(path) -> np.ndarray:  # noqa: ANN001
    with Image.open(path) as image:
        return np.asarray(image)


def test_class_box_takes_commas_and_lines_and_refuses_empty_or_repeated_lists():
    assert parse_class_box("cat, sofa\nfloor,\n\n  wall  ") == ["cat", "sofa", "floor", "wall"]
    with pytest.raises(InputError, match="the classes box is empty"):
        parse_class_box(" ,\n ")
    with pytest.raises(InputError, match="repeats class names.*'cat' at #1, #3"):
        parse_class_box("cat, sofa\nCat")


def test_vocabulary_or_classes_never_both():
    assert vocabulary_choices()[0] == "none" and "ade150" in vocabulary_choices()
    assert page_classes("", "voc20") == load_vocabulary("voc20")  # entries with commas stay whole
    assert page_classes("cat,dog", "none") == ["cat", "dog"]
    with pytest.raises(InputError, match="use one of them"):
        page_classes("cat", "voc20")
    with pytest.raises(InputError, match="unknown vocabulary 'nope'"):
        page_classes("", "nope")
    with pytest.raises(InputError, match="the classes box is empty"):
        page_classes("", "none")


def test_answer_matches_segmenter_and_writes_what_segment_writes(page, tiny_weights, photo, tmp_path):
    answer = page.run(str(photo), "cat, sofa\nfloor", "none", PageOptions(protocol="whole"))
    reference = Segmenter.from_pretrained(tiny_weights, device="cpu").predict(photo, ["cat", "sofa", "floor"], protocol="whole")
    np.testing.assert_array_equal(answer.result.labels, reference.labels)
    np.testing.assert_array_equal(read_png(answer.files["labels"]), reference.labels.astype(np.uint8))
    # the JSON is segment's: the same keys and values, but the timing and the image named as uploaded
    written = reference.save(tmp_path / "segment", stem="photo")
    expected = json.loads(written["summary"].read_text())
    got = answer.summary
    assert got.keys() == expected.keys()
    for key in ("seconds", "image"):
        expected.pop(key), got.pop(key)
    assert got == expected and answer.summary["image"] == "photo.png"
    assert answer.files["overlay"].is_file() and "probs" not in answer.files
    # legend and table: the classes present, largest share first, with their palette colour and mean score
    shares = reference.shares
    present = [name for name in ("cat", "sofa", "floor") if shares[name] > 0]
    assert sorted(row.name for row in answer.legend) == sorted(present)
    assert [row.share for row in answer.legend] == sorted((row.share for row in answer.legend), reverse=True)
    assert sum(row.share for row in answer.table) == pytest.approx(1.0)
    colours = palette(3)
    for row in answer.table:
        region = reference.labels == row.index
        assert row.share == pytest.approx(region.mean())
        assert row.mean_score == pytest.approx(float(reference.probs[row.index][region].mean()), abs=1e-6)
        assert row.colour == "#{:02x}{:02x}{:02x}".format(*colours[row.index])
    assert all(label.startswith(row.name + " (") for label, row in zip((r.label for r in answer.legend), answer.legend))
    assert "photo.png: 64x48, 3 classes, whole protocol, fp32" in answer.message


def test_vocabulary_expansion_labels_the_added_classes_other(page, tiny_weights, photo):
    answer = page.run(str(photo), "cat, sofa", "none", PageOptions(protocol="whole", expand_vocabulary="voc20"))
    reference = Segmenter.from_pretrained(tiny_weights, device="cpu").predict(
        photo, ["cat", "sofa"], protocol="whole", expand_vocabulary="voc20"
    )
    np.testing.assert_array_equal(answer.result.labels, reference.labels)
    assert answer.result.classes == ["cat", "sofa", "other"] and answer.display.classes == answer.result.classes
    assert answer.summary["classes"] == ["cat", "sofa", "other"]
    assert answer.summary["vocabulary_expansion"]["vocabulary"] == "voc20"
    assert {row.name for row in answer.legend} <= {"cat", "sofa", "other"} and len(answer.display.colours) == 3
    with pytest.raises(InputError, match="unknown vocabulary"):
        page.run(str(photo), "cat", "none", PageOptions(protocol="whole", expand_vocabulary="nope"))


def test_background_threshold_tta_and_synonyms_are_segments_options(page, tiny_weights, photo):
    from infoclip.segmentation.options import SegmentOptions

    options = PageOptions(protocol="whole", background_threshold=0.9999, tta="flip", synonym_rule="mean")
    answer = page.run(str(photo), "cat|kitten, sofa", "none", options)
    reference = Segmenter.from_pretrained(tiny_weights, device="cpu").predict(
        photo, ["cat|kitten", "sofa"], protocol="whole",
        options=SegmentOptions(synonym_rule="mean", background_threshold=0.9999, tta="flip"),
    )
    np.testing.assert_array_equal(answer.result.labels, reference.labels)
    assert (answer.result.labels == -1).any()  # a threshold this high leaves background pixels
    assert answer.summary["options"]["tta"] == "flip" and answer.summary["options"]["background_threshold"] == 0.9999
    background_share = float((answer.result.labels == -1).mean())
    assert sum(row.share for row in answer.table) == pytest.approx(1.0 - background_share)
    with pytest.raises(InputError, match="background threshold"):
        page.run(str(photo), "cat", "none", PageOptions(protocol="whole", background_threshold=1.5))
    with pytest.raises(InputError, match="unknown test-time augmentation"):
        page.run(str(photo), "cat", "none", PageOptions(protocol="whole", tta="rotate"))


def test_progress_is_reported_in_order(page, photo):
    steps = []
    page.run(str(photo), "cat, sofa", "none", PageOptions(protocol="whole"), progress=lambda f, what: steps.append((f, what)))
    fractions = [f for f, _ in steps]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(steps) >= 3
    assert any("segmenting 2 classes" in what for _, what in steps)


def test_text_embeddings_are_reused_while_the_class_list_stays(page, photo, monkeypatch):
    import infoclip.adapters.catseg.model as catseg_model

    calls = []
    real = catseg_model.encode_text
    monkeypatch.setattr(catseg_model, "encode_text", lambda model, tokens: calls.append(len(tokens)) or real(model, tokens))
    whole = PageOptions(protocol="whole")
    page.run(str(photo), "cat, sofa", "none", whole)
    page.run(str(photo), "cat, sofa", "none", PageOptions(protocol="sliding"))  # another protocol, same list
    assert len(calls) == 1
    page.run(str(photo), "cat, sofa, floor", "none", whole)
    assert len(calls) == 2
    page.run(str(photo), "cat, sofa", "none", whole)  # an earlier list is still cached
    assert len(calls) == 2
    answer = page.run(str(photo), "cat, sofa", "none", PageOptions(protocol="whole", template="a photo of a {}."))
    assert len(calls) == 3 and answer.summary["template"] == "a photo of a {}."
    answer = page.run(str(photo), "cat, sofa", "none", whole)  # empty template: back to the model's own
    assert answer.summary["template"] == page.default_template == "A photo of a {} in the scene"


def test_bad_inputs_are_one_line_and_the_page_keeps_working(page, photo, tmp_path):
    with pytest.raises(InputError, match="no image: upload one"):
        page.run(None, "cat", "none")
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not an image")
    with pytest.raises(InputError, match=r"^notes\.txt: cannot read image"):
        page.run(str(text_file), "cat", "none")
    truncated = tmp_path / "upload" / "half.png"
    truncated.parent.mkdir()
    write_truncated_png(truncated, gradient_rgb(64, 64))
    with pytest.raises(InputError) as caught:
        page.run(str(truncated), "cat", "none")
    assert str(caught.value).startswith("half.png: cannot read image") and str(tmp_path) not in str(caught.value)
    for options, match in (
        (PageOptions(precision="fp16"), "fp16 precision needs a GPU"),
        (PageOptions(template="no placeholder"), "exactly once"),
        (PageOptions(protocol="tiles"), "unknown protocol"),
        (PageOptions(alpha=1.5), r"opacity must be in \[0, 1\]"),
    ):
        with pytest.raises(InputError, match=match):
            page.run(str(photo), "cat", "none", options)
    assert page.run(str(photo), "cat, sofa", "none", PageOptions(protocol="whole")).result.labels.shape == (48, 64)


def test_huge_image_is_segmented_at_the_documented_size_and_displayed_smaller(page, tmp_path):
    path = tmp_path / "huge.png"
    Image.fromarray(gradient_rgb(1800, 2400)).save(path)
    answer = page.run(str(path), "cat, sofa", "none", PageOptions(protocol="whole"))
    height, width = answer.result.labels.shape
    assert height * width <= MAX_SEGMENT_PIXELS and abs(width / height - 4 / 3) < 0.01 and width > 1000
    assert read_png(answer.files["labels"]).shape == (height, width)
    assert answer.summary["image_size"] == {"height": height, "width": width}
    assert answer.original_size == (1800, 2400)
    assert max(answer.display.image.shape[:2]) == 1024 and answer.display.labels.shape == answer.display.image.shape[:2]
    assert "scaled down from 2400x1800" in answer.message


def test_images_over_the_pixel_limit_are_refused_before_decoding(page, photo, monkeypatch):
    monkeypatch.setenv("INFOCLIP_MAX_PIXELS", "1000")  # the library's limit (default 64 megapixels)
    with pytest.raises(InputError, match=r"^photo\.png: .*INFOCLIP_MAX_PIXELS"):
        page.run(str(photo), "cat", "none")


def test_fit_helpers_keep_aspect_and_labels():
    image = gradient_rgb(30, 40)
    assert fit_pixels(image, 10_000) is image
    small = fit_pixels(image, 300)
    assert small.shape[0] * small.shape[1] <= 300 and small.dtype == np.uint8
    labels = np.zeros((30, 40), np.int64)
    labels[:, 20:] = 1
    shown, shown_labels = fit_side(image, labels, 20)
    assert shown.shape == (15, 20, 3) and shown_labels.shape == (15, 20)
    assert set(np.unique(shown_labels[:, :10])) == {0} and set(np.unique(shown_labels[:, 10:])) == {1}


def test_highlight_colours_one_class_and_dims_the_rest(page, photo):
    answer = page.run(str(photo), "cat, sofa, floor", "none", PageOptions(protocol="whole", alpha=1.0))
    display = answer.display
    row = display.legend[0]
    picture, line = display.highlight(row.label)
    inside = display.labels == row.index
    interior = np.zeros_like(inside)  # pixels whose four neighbours are inside too: never an outline
    interior[1:-1, 1:-1] = inside[1:-1, 1:-1] & inside[:-2, 1:-1] & inside[2:, 1:-1] & inside[1:-1, :-2] & inside[1:-1, 2:]
    assert interior.any()
    colour = np.array([int(row.colour[i : i + 2], 16) for i in (1, 3, 5)])
    assert (picture[interior] == colour).all()  # alpha 1: the class colour itself
    if (~inside).any():
        outside = picture[~inside].astype(int)
        assert (outside.max(axis=1) - outside.min(axis=1) <= 1).all()  # gray
    assert line.startswith(f"{row.name}: {100 * row.share:.1f}% of the image, mean score ")
    assert display.legend_row(0) == display.legend_row(row.name) == row
    with pytest.raises(InputError, match="not in this segmentation"):
        display.highlight("giraffe")
    annotations = display.annotations()
    assert [label for _, label in annotations] == [r.label for r in display.legend]
    assert all(mask.max() == 1.0 and mask.dtype == np.float32 for mask, _ in annotations)


def test_precision_switch_shares_the_model_and_probabilities_are_offered(page, photo):
    bf16 = page.run(str(photo), "cat, sofa", "none", PageOptions(protocol="whole", precision="bf16"))
    fp32 = page.run(str(photo), "cat, sofa", "none", PageOptions(protocol="whole", save_probs=True))
    assert bf16.summary["precision"] == "bf16" and fp32.summary["precision"] == "fp32"
    assert page._by_precision["bf16"].model is page.segmenter.model  # one copy of the weights
    probs = np.load(fp32.files["probs"])
    assert probs.shape == (2, 48, 64) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, fp32.result.probs)


def test_old_request_folders_are_removed_and_close_cleans_up(page, photo, monkeypatch):
    import infoclip.demo.page as page_module

    monkeypatch.setattr(page_module, "KEEP_REQUESTS", 2)
    answers = [page.run(str(photo), "cat, sofa", "none", PageOptions(protocol="whole")) for _ in range(3)]
    assert not answers[0].files["labels"].exists() and all(a.files["labels"].exists() for a in answers[1:])
    page.close()
    assert not any(a.files["labels"].exists() for a in answers)


def test_shipped_examples_are_small_readable_photos(page):
    examples = example_images()
    assert len(examples) == 3
    for path, classes in examples:
        assert path.stat().st_size < 80_000
        assert len(parse_class_box(classes)) >= 3
        with Image.open(path) as image:
            assert image.mode == "RGB" and max(image.size) <= 600
