"""Opt-in prediction options: template sets, synonyms, background threshold, vocabulary expansion, TTA."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from infoclip.errors import InputError
from tests.segmentation.images_on_disk import gradient_rgb


@pytest.fixture(scope="module")
def segmenter_factory(tiny_weights):
    from infoclip import Segmenter

    def make(**kwargs):
        return Segmenter.from_pretrained(tiny_weights, device="cpu", protocol="whole", **kwargs)

    return make


# ----------------------------------------------------------------------------------------------- templates
def test_shipped_template_sets_are_the_published_lists():
    from infoclip.segmentation.templates import resolve_templates, shipped_template_sets

    assert shipped_template_sets() == ["trained", "imagenet7", "imagenet80", "vild14"]
    sets = {name: resolve_templates(name) for name in ("imagenet80", "imagenet7", "vild14")}
    assert [len(sets[n]) for n in ("imagenet80", "imagenet7", "vild14")] == [80, 7, 14]
    assert len(set(sets["imagenet80"])) == 80 and set(sets["imagenet7"]) <= set(sets["imagenet80"])
    assert sets["imagenet7"][0] == "itap of a {}." and "There is a large {} in the scene." in sets["vild14"]
    assert resolve_templates("trained") is None


def test_template_files_and_bad_names(tmp_path):
    from infoclip.segmentation.templates import resolve_templates

    path = tmp_path / "mine.txt"
    path.write_text("# my prompts\na photo of a {}.\n\na drawing of a {}.\n")
    assert resolve_templates(f"@{path}") == ["a photo of a {}.", "a drawing of a {}."]
    path.write_text("a photo of a {}.\nno placeholder\n")
    with pytest.raises(InputError, match="line 2"):
        resolve_templates(f"@{path}")
    with pytest.raises(InputError, match="unknown template set 'imagenet81'.*imagenet80"):
        resolve_templates("imagenet81")


def test_a_template_set_is_ensembled_into_the_one_trained_channel(segmenter_factory):
    trained = segmenter_factory()
    ensembled = segmenter_factory(options=_options(templates="imagenet7"))
    names = ["cat", "sofa"]
    one = trained.model.encode_classes(names)
    many = ensembled.model.encode_classes(names)
    assert one.shape == many.shape == (2, 1, one.shape[-1])
    # CLIP's ensembling: the re-normalised mean of the normalised prompt embeddings
    from infoclip.adapters.catseg.model import _TextEncoder
    from infoclip.segmentation.templates import resolve_templates

    templates = resolve_templates("imagenet7")
    each = _TextEncoder(trained.model.config["clip"]["name"], templates)(trained.model.clip_model, names, cached=True)
    expected = torch.nn.functional.normalize(each.mean(dim=1), dim=-1)
    torch.testing.assert_close(many[:, 0], expected)
    image = gradient_rgb(32, 40)
    result = ensembled.predict(image, names)
    assert result.options["templates"] == "imagenet7"
    assert not np.array_equal(result.probs, trained.predict(image, names).probs)


def _options(**kwargs):
    from infoclip.segmentation.options import SegmentOptions

    return SegmentOptions(**kwargs)


# ----------------------------------------------------------------------------------------------- synonyms
def test_synonyms_expand_and_reduce_by_max_or_mean():
    from infoclip.segmentation.synonyms import expand_synonyms

    groups = expand_synonyms(["sofa|couch", "cat", " dog | puppy | hound "])
    assert groups.names == ("sofa", "couch", "cat", "dog", "puppy", "hound")
    assert groups.owner == (0, 0, 1, 2, 2, 2)
    scores = torch.arange(6, dtype=torch.float32).view(6, 1, 1).expand(6, 2, 3)
    assert groups.reduce(scores, "max")[:, 0, 0].tolist() == [1.0, 2.0, 5.0]
    assert groups.reduce(scores, "mean")[:, 0, 0].tolist() == [0.5, 2.0, 4.0]
    # the benchmark vocabularies keep their comma names unless asked
    assert expand_synonyms(["building, edifice"]).names == ("building, edifice",)
    assert expand_synonyms(["building, edifice"], split_commas=True).names == ("building", "edifice")
    # a comma synonym two benchmark classes share stays a name of both (ADE-847's "screen")
    shared = expand_synonyms(["blind, screen", "screen door, screen"], split_commas=True)
    assert shared.names == ("blind", "screen", "screen door", "screen") and shared.owner == (0, 0, 1, 1)
    from infoclip.segmentation.classes import load_vocabulary

    assert len(expand_synonyms(load_vocabulary("ade847"), split_commas=True).classes) == 847


@pytest.mark.parametrize(
    ("classes", "message"),
    [(["sofa||couch"], "empty synonym"), (["sofa|"], "empty synonym"), (["sofa|couch", "couch"], "two classes")],
)
def test_bad_synonyms_are_one_line(classes, message):
    from infoclip.segmentation.synonyms import expand_synonyms

    with pytest.raises(InputError, match=message) as info:
        expand_synonyms(classes)
    assert "\n" not in str(info.value)


def test_a_synonym_class_scores_as_the_max_of_its_names(segmenter_factory):
    plain = segmenter_factory()
    with_synonyms = segmenter_factory(options=_options(synonym_rule="max"))
    image = gradient_rgb(32, 40)
    separate = plain.predict(image, ["sofa", "couch", "cat"]).probs
    grouped = with_synonyms.predict(image, ["sofa|couch", "cat"])
    np.testing.assert_allclose(grouped.probs[0], np.maximum(separate[0], separate[1]), rtol=0, atol=1e-6)
    np.testing.assert_allclose(grouped.probs[1], separate[2], rtol=0, atol=1e-6)
    assert grouped.classes == ["sofa|couch", "cat"]


def test_prompts_longer_than_clip_context_are_named_in_a_warning(segmenter_factory):
    from infoclip.segmentation.options import PromptTooLongWarning

    long_name = " ".join(["very"] * 90) + " long cat"
    segmenter = segmenter_factory(options=_options(synonym_rule="mean"))
    with pytest.warns(PromptTooLongWarning, match="exceed CLIP's 77-token context"):
        segmenter.predict(gradient_rgb(24, 24), [long_name, "dog"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        segmenter.predict(gradient_rgb(24, 24), ["cat", "dog"])  # short prompts: no warning


# ----------------------------------------------------------------------------------------------- background / other
@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan"), "0.5"])
def test_threshold_outside_unit_interval_is_refused(value):
    from infoclip.segmentation.background import check_threshold

    with pytest.raises(InputError, match=r"in \[0, 1\]"):
        check_threshold(value)


def test_threshold_marks_low_scores_background():
    from infoclip.segmentation.background import BACKGROUND, decide_labels

    scores = torch.tensor([[[0.9, 0.2]], [[0.1, 0.3]]])
    assert decide_labels(scores).tolist() == [[0, 1]]
    assert decide_labels(scores, 0.5).tolist() == [[0, BACKGROUND]]


def test_expansion_names_leave_out_the_users_classes_and_fold_into_other():
    from infoclip.segmentation.background import expansion_names, fold_expansion

    names = expansion_names("coco", ["person", "my robot"])
    assert len(names) == 132 and "person" not in names and "bicycle" in names
    assert len(expansion_names("coco-stuff", [])) == 171 and len(expansion_names("ade150", [])) == 150
    with pytest.raises(InputError, match="unknown vocabulary expansion 'lvis'"):
        expansion_names("lvis", [])
    scores = torch.tensor([0.2, 0.1, 0.6, 0.3]).view(4, 1, 1)
    folded = fold_expansion(scores, 2)
    assert folded[:, 0, 0].tolist() == pytest.approx([0.2, 0.1, 0.6])


def test_segmenter_background_and_other(segmenter_factory, tmp_path):
    from PIL import Image

    image = gradient_rgb(32, 40)
    all_background = segmenter_factory(options=_options(background_threshold=1.0)).predict(image, ["cat", "dog"])
    assert (all_background.labels == -1).all()
    assert all_background.shares["(background)"] == pytest.approx(1.0)
    files = all_background.save(tmp_path / "bg")
    assert (np.asarray(Image.open(files["labels"])) == 255).all()
    overlay = np.asarray(Image.open(files["overlay"]))[:32, :40].astype(int)
    grey = (0.5 * image + 0.5 * 128).astype(int)
    assert np.abs(overlay[5:-5, 5:-5] - grey[5:-5, 5:-5]).max() <= 1  # grey painted over the image
    expanded = segmenter_factory(options=_options(expand_vocab="ade150")).predict(image, ["cat", "dog"])
    assert expanded.classes == ["cat", "dog", "other"] and expanded.probs.shape == (3, 32, 40)
    assert set(np.unique(expanded.labels)) <= {0, 1, 2}
    assert expanded.summary()["options"]["expand_vocab"] == "ade150"


# ----------------------------------------------------------------------------------------------- TTA
def _position_model(image):
    """Scores that depend on the content: channel 0 = red, channel 1 = 255 - red (so flips must be undone)."""
    red = image[0]
    return torch.stack([red, 255.0 - red]) / 255.0


def test_flip_tta_undoes_the_flip_and_ms_resizes_back():
    from infoclip.segmentation.tta import predict_with_tta, views

    assert views("none") == [(1.0, False)] and len(views("flip")) == 2 and len(views("ms")) == 6
    image = torch.from_numpy(gradient_rgb(20, 30)).permute(2, 0, 1).float()
    plain = predict_with_tta(_position_model, image, "none")
    torch.testing.assert_close(predict_with_tta(_position_model, image, "flip"), plain)
    multi = predict_with_tta(_position_model, image, "ms")
    assert multi.shape == plain.shape
    assert (multi - plain).abs()[:, 3:-3, 3:-3].max() < 0.05  # a smooth image survives the rescaling
    calls = []
    predict_with_tta(lambda v: calls.append(tuple(v.shape)) or _position_model(v), image, "ms")
    assert sorted({c[1] for c in calls}) == [15, 20, 25]
    with pytest.raises(InputError, match="unknown test-time augmentation 'rotate'"):
        predict_with_tta(_position_model, image, "rotate")


def test_tta_on_the_model_is_recorded(segmenter_factory):
    result = segmenter_factory(options=_options(tta="flip")).predict(gradient_rgb(24, 32), ["cat", "dog"])
    assert result.summary()["options"]["tta"] == "flip"


def test_default_options_are_the_published_protocol(segmenter_factory):
    plain = segmenter_factory()
    assert plain.options.is_default
    image = gradient_rgb(32, 40)
    direct = plain.model.predict(torch.from_numpy(image).permute(2, 0, 1).float(), ["cat", "dog"], "whole")
    np.testing.assert_array_equal(plain.predict(image, ["cat", "dog"]).probs, direct.numpy())


# ----------------------------------------------------------------------------------------------- the segment CLI
def test_segment_cli_with_options_writes_everything(tiny_weights, photo, run_cli, tmp_path):
    import json

    from pycocotools import mask as mask_util

    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        "segment", photo, "--classes", "sofa|couch, cat", "-w", tiny_weights, "--protocol", "whole", "-o", out,
        "--background-threshold", "0.5", "--rle", "--indexed-png", "--save-probs", "--probs-dtype", "float16",
        "--tta", "flip", "--templates", "imagenet7", "--text-cache-dir", tmp_path / "cache",
    )
    assert code == 0, stderr
    summary = json.loads((out / "photo.json").read_text())
    assert summary["options"] == {
        "templates": "imagenet7", "synonym_rule": "max", "split_synonyms": False, "background_threshold": 0.5,
        "expand_vocab": None, "tta": "flip",
    }
    assert summary["classes"] == ["sofa|couch", "cat"] and summary["background_value"] == 255
    assert np.load(out / "photo_probs.npy").dtype == np.float16
    records = json.loads((out / "sem_seg_predictions.json").read_text())
    assert records == json.loads((out / "photo_rle.json").read_text())
    from PIL import Image

    labels = np.asarray(Image.open(out / "photo.png"))
    for record in records:
        np.testing.assert_array_equal(mask_util.decode(record["segmentation"]).astype(bool), labels == record["category_id"])
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 1


@pytest.mark.parametrize(
    ("flags", "start"),
    [
        (["--classes", "sofa||couch, cat"], "error: --classes: class 'sofa||couch' has an empty synonym"),
        (["--classes", "cat", "--background-threshold", "-0.2"], "error: --background-threshold: the background threshold must be a number in [0, 1]"),
        (["--classes", "cat", "--templates", "nope"], "error: --templates: unknown template set 'nope'"),
        (["--classes", "cat", "--expand-vocab", "lvis"], "error: --expand-vocab: unknown vocabulary expansion 'lvis'"),
    ],
)
def test_segment_bad_option_values_are_one_line(tiny_weights, photo, run_cli, tmp_path, flags, start):
    code, _, stderr = run_cli("segment", photo, "-w", tiny_weights, "-o", tmp_path / "o", *flags)
    lines = stderr.strip().splitlines()
    assert code == 1 and "Traceback" not in stderr
    assert lines[-2].startswith(start), stderr
    assert not (tmp_path / "o").exists()


def test_any_adapter_gets_the_options_through_the_contract():
    """A third-party model that only implements the contract's predict gets synonyms, expansion, background and
    TTA; a template set it cannot ensemble is one line."""
    from infoclip.segmentation.options import OptionedPredictor
    from infoclip.segmentation.segmenter import Segmenter
    from infoclip.adapters import OVSSModel
    from tests.plugins.toy_adapter import ToyModel

    torch.manual_seed(0)
    model = ToyModel({})
    options = _options(synonym_rule="mean", expand_vocab="coco", background_threshold=0.01, tta="flip")
    result = Segmenter(model, "toy", protocol="whole", options=options).predict(gradient_rgb(16, 16), ["a|b", "c"])
    assert result.classes == ["a|b", "c", "other"] and result.probs.shape == (3, 16, 16)
    OptionedPredictor(model, _options(templates="vild14"))  # the toy averages any number of templates itself
    assert len(model.prompt_templates) == 14

    class FixedPrompts(ToyModel):
        set_prompt_templates = OVSSModel.set_prompt_templates  # the contract's default: it cannot

    with pytest.raises(InputError, match="does not support changing its prompt templates"):
        OptionedPredictor(FixedPrompts({}), _options(templates="vild14"))


def test_class_files_carry_synonyms_one_class_per_line(tmp_path):
    from infoclip.segmentation.classes import parse_classes
    from infoclip.segmentation.synonyms import expand_synonyms

    path = tmp_path / "names.txt"
    path.write_text("sofa|couch|settee\ncat\n")
    classes = parse_classes(f"@{path}")
    assert classes == ["sofa|couch|settee", "cat"]
    assert expand_synonyms(classes).owner == (0, 0, 0, 1)
