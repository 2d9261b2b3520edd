"""Training from given weights (``train.init_weights`` / ``train --weights``) and the model card of ``export``."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.hub.conftest import allow_tiny_official, caches, tiny_official_bytes  # noqa: F401  (fixtures)
from tests.training.test_cli import _sets, cli  # noqa: F401  (fixture)

from .conftest import tiny_overrides


def front_matter(text: str) -> dict:
    assert text.startswith("---\n"), "a model card starts with YAML front matter"
    block = text.split("\n---\n", 1)[0][len("---\n"):]
    return yaml.safe_load(block)


def test_train_starts_from_an_official_checkpoint_and_export_writes_a_card(
    cli, tmp_path, tiny_dataset, caches, allow_tiny_official, tiny_official_bytes
):
    from safetensors.torch import load_file

    from infoclip.weights_resolver import resolve_weights

    source = tmp_path / "model_base.pth"
    source.write_bytes(tiny_official_bytes)
    run = tmp_path / "run"
    frozen = ["solver.lr=0", "infoclip.lpam_lr=0"]  # lr 0: the weights after one step are the initial ones
    result = cli(["train", "--config", "catseg-tiny", "--output-dir", str(run), "--weights", str(source), "--json",
                  *_sets(tiny_overrides(tiny_dataset, 1) + frozen)])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["init_weights"] == str(source)

    out = tmp_path / "export" / "toyroom-tiny.safetensors"
    assert cli(["export", str(run), "-o", str(out)]).exit_code == 0
    initial = load_file(str(resolve_weights(source).path))
    exported = load_file(str(out))
    assert set(exported) == set(initial)
    assert all(exported[k].equal(initial[k]) for k in initial), "the run started from the given weights"

    card = (out.parent / "README.md").read_text()
    meta = front_matter(card)
    assert meta["library_name"] == "infoclip" and meta["pipeline_tag"] == "image-segmentation"
    assert meta["datasets"] == ["toyroom"] and meta["license"] == "other" and "catseg" in meta["tags"]
    assert "model-index" not in meta and "No evaluation was found" in card

    scored = cli(["eval", "-w", str(out), "-d", str(tiny_dataset), "--protocol", "whole", "--limit", "2",
                  "-o", str(run / "eval")])  # fmt: skip
    assert scored.exit_code == 0, scored.stderr
    miou = json.loads((run / "eval" / "toyroom" / "metrics.json").read_text())["mIoU"]
    assert cli(["export", str(run), "-o", str(out), "--force"]).exit_code == 0
    meta = front_matter((out.parent / "README.md").read_text())
    (result,) = meta["model-index"][0]["results"]
    assert result["dataset"]["type"] == "toyroom" and result["task"]["type"] == "image-segmentation"
    assert result["metrics"][0]["type"] == "mean_iou" and result["metrics"][0]["value"] == pytest.approx(miou, abs=0.01)


def test_card_never_overwrites_a_foreign_readme_and_names_the_base_model(tmp_path):
    from infoclip.training.model_card import card_path, card_text, write_model_card

    weights = tmp_path / "model.safetensors"
    (tmp_path / "README.md").write_text("# my project\n")
    assert card_path(weights) == tmp_path / "model.md"
    config = {"adapter": "catseg", "data": {"train": "coco171"}, "train": {"init_weights": "catseg-b16"},
              "infoclip": {"enabled": True}, "solver": {"batch_size": 4}}
    clip_tag = "ViT-B-16-quickgelu:openai"
    path = write_model_card(weights, tmp_path, config, clip_tag, {"iteration": 80000})
    assert path == tmp_path / "model.md" and (tmp_path / "README.md").read_text() == "# my project\n"
    meta = front_matter(path.read_text())
    assert meta["base_model"] == "timm/vit_base_patch16_clip_224.openai"
    assert meta["license"] == "mit", "the license of the named weights the run started from"
    assert meta["datasets"] == ["coco171"]
    assert "model-index" not in front_matter(card_text("m.safetensors", config, clip_tag, {}, []))
    # a second weights file in a folder whose README.md is the first one's card gets its own card file
    (tmp_path / "README.md").unlink()
    assert write_model_card(weights, tmp_path, config, clip_tag, {}) == tmp_path / "README.md"
    assert write_model_card(weights, tmp_path, config, clip_tag, {}) == tmp_path / "README.md", "its own: rewritten"
    other = tmp_path / "other.safetensors"
    assert write_model_card(other, tmp_path, config, clip_tag, {}) == tmp_path / "other.md"


def test_init_weights_errors_are_one_line(cli, tmp_path, tiny_dataset, caches):
    base = ["train", "--config", "catseg-tiny", "--output-dir", str(tmp_path / "r"), *_sets(tiny_overrides(tiny_dataset, 1))]
    unknown = cli([*base, "--weights", "catseg-b61"])
    assert unknown.exit_code == 1 and "unknown weights name 'catseg-b61'" in unknown.stderr
    missing = cli([*base, "--weights", str(tmp_path / "nothing.pth")])
    assert missing.exit_code == 1 and "weights file not found" in missing.stderr


def test_card_results_are_the_final_validation_and_later_evaluations(tmp_path):
    from infoclip.training.model_card import find_eval_results

    def write(rel, miou, dataset="toyroom", protocol="sliding"):
        path = tmp_path / rel / "metrics.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"dataset": dataset, "split": "val", "protocol": protocol, "mIoU": miou}))

    write(".", 20.0)                                  # the run's final validation
    write("val/iter_0000005", 5.0)                    # an intermediate one: superseded
    write("eval/toyroom", 21.5)                       # infoclip eval -o RUN/eval, same dataset/protocol: wins
    write("eval/ade150", 9.0, dataset="ade150")
    (tmp_path / "eval" / "broken").mkdir()
    (tmp_path / "eval" / "broken" / "metrics.json").write_text("{not json")
    results = {r["dataset"]: r["mIoU"] for r in find_eval_results(tmp_path)}
    assert results == {"toyroom": 21.5, "ade150": 9.0}
