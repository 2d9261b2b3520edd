"""The model card ``infoclip export`` writes beside exported weights: a README.md a Hub repository can take as is.

Front matter (Hugging Face model-card metadata): ``library_name: infoclip``, ``pipeline_tag:
image-segmentation``, ``tags``, ``license``, ``base_model`` (the CLIP the run started from, as its Hub
repository when open_clip names one), ``datasets`` (the training dataset), and ``model-index`` with every
evaluation found in the run folder: the final validation (``RUN/metrics.json``) and any ``infoclip eval -o
RUN/...`` output (``RUN/**/metrics.json``), one result per dataset, split and protocol. The body says what
the model is, how to run it, how it was trained, and the results table.

The license is the one of the named weights the run started from (``train.init_weights``), else ``other``
with a line asking the author to state it: infoclip cannot know the terms of a user's data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CARD_MARKER = "<!-- written by infoclip export for {weights} -->"
CARD_FILE = "README.md"


def find_eval_results(run_dir: Path) -> list[dict[str, Any]]:
    """Evaluation results in a run folder: ``metrics.json`` files that hold a dataset and an mIoU.

    Later evaluations of the same (dataset, split, protocol) replace earlier ones; ``infoclip eval`` outputs
    are read after the run's own final validation, so they win.
    """
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    # RUN/metrics.json is the final validation; RUN/val/iter_*/ hold the intermediate ones, which it supersedes
    later = sorted(
        p for p in run_dir.rglob("metrics.json")
        if p != run_dir / "metrics.json" and p.relative_to(run_dir).parts[0] not in ("val", "checkpoints")
    )
    paths = [run_dir / "metrics.json", *later]
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or not isinstance(data.get("mIoU"), (int, float)) or not data.get("dataset"):
            continue
        key = (str(data["dataset"]), str(data.get("split", "")), str(data.get("protocol", "")))
        found[key] = data
    return list(found.values())


def base_model(clip_tag: str) -> str | None:
    """The Hub repository of the pretrained CLIP named by ``clip_tag`` (``"ViT-B-16-quickgelu:openai"``), when
    open_clip knows one for it (its ``hf_hub``); ``None`` for local files, random inits and unknown tags."""
    name, _, tag = clip_tag.partition(":")
    if not name or not tag or tag == "random" or "/" in tag or tag.endswith((".pt", ".pth", ".bin", ".safetensors")):
        return None
    try:
        import open_clip

        hub = (open_clip.get_pretrained_cfg(name, tag) or {}).get("hf_hub", "")
    except Exception:  # an architecture open_clip does not know (tiny test configs): no base model to name
        return None
    return hub.strip("/") or None


def _license(config: Mapping[str, Any]) -> str:
    init = (config.get("train") or {}).get("init_weights")
    if init:
        from infoclip.named_weights import registered_weights

        entry = registered_weights().get(str(init))
        if entry is not None and entry.license:
            return entry.license.lower()
    return "other"


def card_text(
    weights_file: str, config: Mapping[str, Any], clip_tag: str, summary: Mapping[str, Any],
    results: list[dict[str, Any]],
) -> str:
    """The README.md text: YAML front matter, then Markdown. ``clip_tag`` is the model's (``OVSSModel.clip_tag``)."""
    import yaml

    adapter = str(config.get("adapter", ""))
    data = config.get("data") or {}
    train_set = Path(str(data.get("train", ""))).name or "unknown"
    info = config.get("infoclip") or {}
    license_id = _license(config)
    name = Path(weights_file).stem
    meta: dict[str, Any] = {
        "library_name": "infoclip",
        "pipeline_tag": "image-segmentation",
        "tags": ["infoclip", "open-vocabulary-semantic-segmentation", "clip", adapter],
        "license": license_id,
        "datasets": [train_set],
    }
    base = base_model(clip_tag)
    if base:
        meta["base_model"] = base
    if results:
        meta["model-index"] = [
            {
                "name": name,
                "results": [
                    {
                        "task": {"type": "image-segmentation", "name": "Open-vocabulary semantic segmentation"},
                        "dataset": {"name": r.get("title") or r["dataset"], "type": r["dataset"], "split": r.get("split", "")},
                        "metrics": [{"type": "mean_iou", "name": "mIoU", "value": round(float(r["mIoU"]), 2)}],
                    }
                    for r in results
                ],
            }
        ]
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    clip_shown = clip_tag or "a random init"
    method = (
        f"InfoCLIP (lambda_c = {info.get('lambda_compression')}, lambda_d = {info.get('lambda_distillation')}, "
        f"Gram axis {info.get('gram_axis')})" if info.get("enabled") else "the plain framework (InfoCLIP losses off)"
    )
    lines = [
        "---",
        front.rstrip(),
        "---",
        CARD_MARKER.format(weights=weights_file),
        "",
        f"# {name}",
        "",
        f"Open-vocabulary semantic segmentation weights for [infoclip](https://pypi.org/project/infoclip/): the "
        f"`{adapter}` adapter on CLIP `{clip_shown}`, "
        f"trained on `{train_set}` with {method}, {summary.get('iteration', '?')} iterations.",
        "",
        "## Use",
        "",
        "```bash",
        "pip install infoclip",
        f'infoclip segment photo.jpg --classes "cat,sofa,floor" --weights {weights_file}',
        f"# from the Hub: --weights hf:ORG/REPO/{weights_file}",
        "```",
        "",
        "```python",
        "from infoclip import Segmenter",
        f'result = Segmenter.from_pretrained("{weights_file}").predict("photo.jpg", ["cat", "sofa", "floor"])',
        "```",
        "",
        "## Training",
        "",
        f"- adapter `{adapter}`, CLIP `{clip_shown}`"
        + (f", started from `{(config.get('train') or {}).get('init_weights')}`" if (config.get("train") or {}).get("init_weights") else ""),
        f"- data `{train_set}`, {summary.get('classes', '?')} training classes, "
        f"batch {(config.get('solver') or {}).get('batch_size')}, {summary.get('iteration', '?')} iterations",
        f"- exported from `{summary.get('checkpoint', '?')}`",
        "",
        "## Results",
        "",
    ]
    if results:
        lines += ["| dataset | split | protocol | mIoU |", "|---|---|---|---|"]
        lines += [
            f"| {r.get('title') or r['dataset']} | {r.get('split', '')} | {r.get('protocol', '')} | {float(r['mIoU']):.2f} |"
            for r in results
        ]
    else:
        lines.append("No evaluation was found in the run folder; run `infoclip eval --weights ... -o RUN/eval` and export again.")
    if license_id == "other":
        lines += ["", "## License", "", "State the license of these weights and of the training data here."]
    return "\n".join(lines) + "\n"


def card_path(weights_path: Path) -> Path:
    """``README.md`` beside the weights, unless a README.md is already there that is not this file's card
    (a project's own README, or the card of other weights in the same folder): then ``<weights stem>.md``."""
    readme = weights_path.parent / CARD_FILE
    own = CARD_MARKER.format(weights=weights_path.name)
    if readme.exists() and own not in readme.read_text(encoding="utf-8", errors="replace"):
        return weights_path.with_suffix(".md")
    return readme


def write_model_card(
    weights_path: Path, run_dir: Path, config: Mapping[str, Any], clip_tag: str, summary: Mapping[str, Any]
) -> Path:
    """Write the model card for ``weights_path`` (atomically); returns its path."""
    from infoclip.io_utils import atomic_write_text

    text = card_text(weights_path.name, config, clip_tag, summary, find_eval_results(run_dir))
    return atomic_write_text(card_path(weights_path), text)
