"""``infoclip eval --weights W --dense-clip``: the weights' own CLIP scored exactly as the training-free baseline."""

from __future__ import annotations

import json

import pytest
import torch

from infoclip.data.synthetic import write_custom_dataset


def _metrics(run_cli, tmp_path, name, *args):
    folder = tmp_path / "mine"
    if not folder.exists():
        write_custom_dataset(folder, ["cat", "sofa", "sky"], num_images=2, seen_classes=["cat"])
    code, _, stderr = run_cli("eval", *args, "-d", folder, "--protocol", "whole", "-o", tmp_path / name)
    assert code == 0, stderr
    return json.loads((tmp_path / name / "mine" / "metrics.json").read_text())


def test_untrained_weights_score_like_the_baseline_of_their_clip(tiny_weights, run_cli, tmp_path):
    # catseg-tiny's CLIP is the seeded random init that `--clip infoclip-tiny-clip:none` builds
    from infoclip.models import load_model

    model, _ = load_model(tiny_weights)
    clip_model, name = model.dense_clip()
    from infoclip.segmentation.baseline import DenseCLIPBaseline

    reference = DenseCLIPBaseline.from_spec(f"{name}:none")
    assert all(torch.equal(a, b) for a, b in zip(clip_model.state_dict().values(), reference.clip.state_dict().values()))
    own = _metrics(run_cli, tmp_path, "own", "--weights", tiny_weights, "--dense-clip")
    base = _metrics(run_cli, tmp_path, "base", "--clip", f"{name}:none")
    assert own["extra"]["adapter"].startswith("dense-clip-baseline of the catseg weights")
    assert own["per_class"] == base["per_class"], "same CLIP, same training-free scoring"


def test_the_fine_tuned_clip_is_the_one_scored(tiny_weights, tmp_path):
    from infoclip.segmentation.baseline import DenseCLIPBaseline
    from infoclip.models import load_model
    from infoclip.weights import WeightsMeta, read_weights, save_weights

    model, meta = load_model(tiny_weights)
    image = torch.rand(3, 32, 32) * 255
    before = DenseCLIPBaseline.from_model(model).predict(image, ["cat", "sky"], "whole")
    with torch.no_grad():  # "fine-tuning": move the CLIP's value projections
        for n, p in model.named_parameters():
            if n.startswith("clip_model.") and "attn" in n:
                p.add_(torch.randn_like(p))
    after = DenseCLIPBaseline.from_model(model).predict(image, ["cat", "sky"], "whole")
    assert not torch.allclose(before, after)
    _, stored = read_weights(tiny_weights)
    changed = tmp_path / "changed.safetensors"
    save_weights(changed, model.inference_state_dict(), WeightsMeta(adapter="catseg", config=stored.config,
                 clip_tag=stored.clip_tag, source="test"))  # fmt: skip
    reloaded, _ = load_model(changed)  # what `eval --weights changed --dense-clip` builds
    assert torch.equal(DenseCLIPBaseline.from_model(reloaded).predict(image, ["cat", "sky"], "whole"), after)


def test_dense_clip_needs_weights(run_cli, tmp_path):
    folder = write_custom_dataset(tmp_path / "mine", ["cat", "sofa"], num_images=1)
    code, _, stderr = run_cli("eval", "--clip", "infoclip-tiny-clip:none", "--dense-clip", "-d", folder)
    assert code == 1 and stderr.startswith("error: --dense-clip scores the CLIP inside --weights")


def test_a_model_without_its_clip_says_so():
    from infoclip.adapters.contract import OVSSModel
    from infoclip.errors import AdapterError

    class NoClip(OVSSModel):
        def forward_train(self, images, class_names, lpam=None):
            raise NotImplementedError

        def task_loss(self, logits, labels):
            raise NotImplementedError

        def predict(self, image, class_names, protocol="whole"):
            raise NotImplementedError

    with pytest.raises(AdapterError, match="does not expose its CLIP"):
        NoClip().dense_clip()
