"""The model contract is the one door: callers use only ``OVSSModel``'s declared methods.

A source scan keeps adapter internals out of the callers; the CAT-Seg model's contract methods and the
defaults of the base class are exercised on real (tiny) models.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from infoclip.adapters.contract import CLIP_PART, EvalProtocol, OVSSModel, check_prediction_inputs
from infoclip.errors import AdapterError, InputError

SRC = Path(__file__).resolve().parents[2] / "src"


@functools.lru_cache(maxsize=1)
def _catseg_only_keys() -> frozenset[str]:
    """Top-level keys of the CAT-Seg ``model:`` schema that no other config section uses."""
    from infoclip.adapters.catseg import default_model_config
    from infoclip.training.run_config import training_defaults

    shared = {key for section in training_defaults().values() if isinstance(section, dict) for key in section}
    return frozenset(set(default_model_config()) - shared)


def _caller_files() -> list[Path]:
    """Every library / CLI module that is not inside an adapter's own package (each adapter owns its package)."""
    adapters = SRC / "infoclip" / "adapters"
    own = [p for p in adapters.iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    return [p for p in SRC.rglob("*.py") if not any(p.is_relative_to(pkg) for pkg in own)]


#: open_clip helpers for adapters: their ``model`` is an open_clip CLIP, whose layout they check on purpose
OPEN_CLIP_HELPERS = SRC / "infoclip" / "clip"


@functools.lru_cache(maxsize=1)
def _patterns() -> dict[str, re.Pattern[str]]:
    alternatives = "|".join(map(re.escape, sorted(_catseg_only_keys())))
    return {
        "CAT-Seg config key": re.compile(
            rf"""\[\s*["'](?:{alternatives})["']\s*\]|\.get\(\s*["'](?:{alternatives})["']|["'](?:{alternatives})["']\s+in\s"""
        ),
        "dotted CAT-Seg key": re.compile(r"""["'](?:model\.)?(?:clip|aggregator|inference)\.[a-z_]+"""),
        "private model attribute": re.compile(r"\bmodel\._[a-z]\w*|\._text\b|\bmodel\.clip_model\b|\bmodel\.config\["),
        "probing the model": re.compile(r"(?:getattr|hasattr)\(\s*(?:self\.)?(?:model|student)\b"),
    }


def _violations(line: str) -> list[str]:
    return [what for what, pattern in _patterns().items() if pattern.search(line)]


def test_no_caller_names_catseg_config_keys_or_private_attributes():
    assert {"clip", "aggregator", "prompt_templates", "inference"} <= _catseg_only_keys()
    found = []
    for path in _caller_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for what in _violations(line):
                if what == "probing the model" and path.is_relative_to(OPEN_CLIP_HELPERS):
                    continue
                found.append(f"{path.relative_to(SRC)}:{number}: {what}: {line.strip()}")
    assert not found, "callers reach past the model contract:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "line",
    [
        'model.config["prompt_templates"] = [template]',
        'name = cfg["clip"]["name"]',
        'if "inference" in model_cfg:',
        'model._text = type(encoder)(name, [template])',
        'fn = getattr(model, "load_pretrained_clip", None)',
        'run("--set", "model.clip.pretrained=x")',
    ],
)
def test_the_scan_catches_what_it_forbids(line):
    assert _violations(line)


def test_the_scan_lets_contract_calls_pass():
    for line in ("model.set_prompt_templates([template])", "groups = model.param_groups(lr, policy)", 'info["lpam_feeds_decoder"]'):
        assert not _violations(line)


# ---------------------------------------------------------------- CAT-Seg through the contract


def test_catseg_contract_methods(tiny_catseg):
    model = tiny_catseg
    assert model.embed_dim == 32 and model.clip_tag == "infoclip-tiny-clip:random"
    assert [p.name for p in model.protocols] == ["sliding", "whole"] and model.default_protocol == "sliding"
    assert "sigmoid" in model.score_description
    assert model.check_protocol(None) == "sliding"
    with pytest.raises(InputError, match="choose one of sliding, whole"):
        model.check_protocol("tiles")
    groups = {g["name"]: g for g in model.param_groups(1e-3, 0.05, {"clip": 0.01})}
    assert groups["clip"]["lr"] == pytest.approx(1e-5) and groups["decoder"]["lr"] == 1e-3
    assert groups["decoder_no_decay"]["weight_decay"] == 0.0
    clip_params = {id(p) for p in model.clip_model.parameters() if p.requires_grad}
    assert {id(p) for p in groups["clip"]["params"]} == clip_params
    listed = [id(p) for g in groups.values() for p in g["params"]]
    assert sorted(listed) == sorted(id(p) for p in model.parameters() if p.requires_grad)
    counts = model.parameter_counts()
    assert counts["clip"]["trainable"] == sum(p.numel() for p in model.clip_model.parameters() if p.requires_grad)
    assert "CLIP fine-tuning: attention" in model.parameter_table()


def test_catseg_prompt_templates_change_the_text_embeddings(tiny_catseg):
    model = tiny_catseg.eval()
    before = model.encode_classes(["cat", "sky"]).clone()
    assert model.prompt_templates == ["A photo of a {} in the scene"]
    model.set_prompt_templates(["a drawing of a {}."])
    assert model.prompt_templates == ["a drawing of a {}."]
    assert model.model_config()["prompt_templates"] == ["a drawing of a {}."]  # weights keep what it uses
    after = model.encode_classes(["cat", "sky"])
    assert not torch.allclose(before, after)  # the cached embeddings of the old template are gone
    with pytest.raises(InputError, match="1 prompt template"):
        model.set_prompt_templates(["a {}", "the {}"])
    with pytest.raises(InputError, match="exactly once"):
        model.set_prompt_templates(["no placeholder"])


# ---------------------------------------------------------------- the base class's defaults


class _Minimal(OVSSModel):
    """A model implementing only the abstract methods: everything else is the contract's default."""

    adapter_name = "minimal"

    def __init__(self):
        super().__init__()
        self.config = {"width": 2}
        self.head = nn.Conv2d(3, 2, 1)
        self.norm = nn.GroupNorm(1, 2)

    def forward_train(self, images, class_names, lpam=None):  # noqa: ANN001
        raise AssertionError("not called")

    def task_loss(self, logits, labels):  # noqa: ANN001
        raise AssertionError("not called")

    def predict(self, image, class_names, protocol="whole"):  # noqa: ANN001
        return self.norm(self.head(image[None]))[0, : len(class_names)].softmax(0)


def test_base_class_defaults_and_typed_errors():
    model = _Minimal()
    assert model.clip_tag == "" and model.prompt_templates == [] and model.decoder_lpam is None
    assert model.load_pretrained() is None and model.default_protocol == "whole"
    assert model.protocols == (EvalProtocol("whole", "the whole image in one forward pass"),)
    with pytest.raises(AdapterError, match="embed_dim"):
        model.embed_dim  # noqa: B018
    with pytest.raises(AdapterError, match="gradient checkpointing"):
        model.set_grad_checkpointing(True)
    with pytest.raises(AdapterError, match="prompt templates"):
        model.set_prompt_templates(["a {}"])
    groups = {g["name"]: g for g in model.param_groups(0.1, 0.5, {"clip": 0.01})}
    assert set(groups) == {"decoder", "decoder_no_decay"}  # no clip part here: its multiplier is ignored
    assert groups["decoder"]["weight_decay"] == 0.5 and groups["decoder_no_decay"]["params"] == list(model.norm.parameters())
    assert model.parameter_counts() == {"decoder": {"trainable": 3 * 2 + 2 + 2 + 2, "frozen": 0}}
    assert model.model_config() == {"width": 2}
    assert "decoder" in model.parameter_table()


def test_prediction_inputs_are_checked_once_at_the_boundary():
    assert check_prediction_inputs(torch.zeros(3, 4, 4), ("cat", "sky")) == ["cat", "sky"]
    for image in (torch.zeros(4, 4), torch.zeros(1, 3, 4, 4), "img.png", torch.zeros(3, 2, 2, dtype=torch.int32)):
        with pytest.raises(InputError, match="image must be"):
            check_prediction_inputs(image, ["cat"])
    for names in ("cat,sky", [], ["cat", ""], [3]):
        with pytest.raises(InputError, match="class names"):
            check_prediction_inputs(torch.zeros(3, 4, 4), names)


class _Trusting(_Minimal):
    """Records what ``predict`` received: the entry points must never hand it unchecked input."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def predict(self, image, class_names, protocol="whole"):  # noqa: ANN001
        check_prediction_inputs(image, class_names)  # the boundary's own check: passes on what it let through
        self.calls += 1
        return super().predict(image, class_names, protocol)


@pytest.mark.parametrize(
    ("image", "classes", "message"),
    [
        (np.zeros((4, 4, 3), np.uint8), [], "class list is empty"),
        (np.zeros((4, 4, 3), np.uint8), "", "class list is empty"),
        (np.zeros((4, 4, 3), np.uint8), ["cat", " "], "empty or blank class name"),
        (np.zeros((2, 4, 4, 3), np.uint8), ["cat"], r"image array has shape \(2, 4, 4, 3\)"),
        (torch.zeros(2, 4, 4), ["cat"], "an image must be a path, a PIL image or an H x W x 3 uint8 array"),
        ("no-such-image.png", ["cat"], "no-such-image.png"),
    ],
)
def test_segmenter_checks_inputs_before_predict(image, classes, message):
    from infoclip import Segmenter

    model = _Trusting()
    segmenter = Segmenter(model, "minimal")
    with pytest.raises(InputError, match=message):
        segmenter.predict(image, classes)
    assert model.calls == 0, "a refused input never reaches OVSSModel.predict"
    assert segmenter.predict(np.zeros((4, 4, 3), np.uint8), ["cat", "sky"]).probs.shape == (2, 4, 4)
    with pytest.raises(InputError, match="unknown protocol 'tiles' for minimal"):
        segmenter.predict(np.zeros((4, 4, 3), np.uint8), ["cat"], protocol="tiles")
    assert model.calls == 1


@pytest.fixture
def tiny_catseg():
    from infoclip.adapters.catseg import build_model, preset_model_config

    torch.manual_seed(0)
    return build_model(preset_model_config("catseg-tiny"))


@pytest.mark.parametrize(("preset", "published"), [("catseg-tiny", "sliding"), ("fcclip-tiny", "whole"), ("san-tiny", "whole")])
def test_builtin_adapters_answer_the_contract(preset, published):
    """A model that names a CLIP must load it, say its width, and let its prompts be replaced: a renamed
    method (``load_pretrained_clip``) would otherwise fall back to the contract's silent default."""
    from infoclip.models import create_model

    model = create_model(preset)
    assert model.clip_tag and type(model).load_pretrained is not OVSSModel.load_pretrained
    assert model.embed_dim > 0 and CLIP_PART in model.lr_parts()
    assert model.default_protocol == published and model.score_description != OVSSModel.score_description
    templates = model.prompt_templates
    model.set_prompt_templates(["a drawing of a {}."] * len(templates))
    assert model.prompt_templates == ["a drawing of a {}."] * len(templates)
    assert model.parameter_table().splitlines()[0].split()[:2] == ["part", "trainable"]
