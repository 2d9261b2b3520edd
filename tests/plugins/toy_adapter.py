"""The test suite's toy adapter: a small architecture unlike CAT-Seg that honours the whole ``OVSSModel`` contract.

It is what proves the contract suffices: no ViT, no CLIP, no ``clip`` config section, its own evaluation
protocol, score meaning, preset and official-checkpoint format. ``tests/conftest.py`` installs it (with its
preset ``toy-tiny.yaml`` beside it) as a real entry-point distribution ``infoclip-toy``.

* image encoder: two strided 3x3 convs (stride 4 in all); its (B, D, H/4, W/4) features are the dense
  embeddings D_V;
* text embedder: a hashed bag of character trigrams of each prompt (``EmbeddingBag`` over ``buckets``
  hash buckets, mean over the prompt templates), then a linear map; the class embeddings D_L;
* decoder ("head"): a learned temperature times the cosine of D_V and D_L, plus a learned bias;
* protocols: ``tiles`` (2x2 overlapping tiles, scores averaged where they overlap) and ``whole``;
* official format (``convert toy``): a torch pickle ``{"format": "toyseg-1", "arch": {...}, "state": {...}}``
  with its own key names (``stem.*``, ``body.*``, ``lexicon.*``, ``project.*``, ``temperature``, ``offset``).
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from infoclip import hookimpl
from infoclip.adapters import Adapter, DenseEmbeddings, OVSSModel, TrainOutput
from infoclip.adapters.contract import EvalProtocol
from infoclip.adapters.config_checks import unknown_keys
from infoclip.adapters.parameters import format_parameter_table
from infoclip.errors import ConfigError, InputError, WeightsNotFoundError

#: the model config schema with its defaults (every key; unknown keys are refused)
DEFAULTS: dict[str, Any] = {
    "width": 8,  # channels of the first conv
    "embed_dim": 8,  # D, the dense embedding width
    "buckets": 64,  # hash buckets of the character trigrams
    "init_seed": 0,  # seed of the random init (student and teacher start from it)
    "pretrained": None,  # a toyseg-1 file the trainer starts from (load_pretrained), or null
    "prompt_templates": ["a {}"],
}
STRIDE = 4
OFFICIAL_FORMAT = "toyseg-1"
#: official key -> our key
OFFICIAL_KEYS = {
    "stem.w": "encoder.0.weight", "stem.b": "encoder.0.bias",
    "body.w": "encoder.2.weight", "body.b": "encoder.2.bias",
    "lexicon.w": "text.bag.weight", "project.w": "text.proj.weight", "project.b": "text.proj.bias",
    "temperature": "head.scale", "offset": "head.bias",
}


def check_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The defaults merged with ``config``; ``ConfigError`` on an unknown key or a bad value."""
    bad = unknown_keys(DEFAULTS, config)
    if bad:
        raise ConfigError(f"unknown toy model key(s): {', '.join(bad)}; known: {', '.join(DEFAULTS)}")
    merged = {**copy.deepcopy(DEFAULTS), **dict(config)}
    for key in ("width", "embed_dim", "buckets"):
        if isinstance(merged[key], bool) or not isinstance(merged[key], int) or merged[key] < 1:
            raise ConfigError(f"model.{key} must be a positive integer, got {merged[key]!r}")
    _check_templates(merged["prompt_templates"], ConfigError)
    return merged


def _check_templates(templates: Any, error: type[Exception]) -> list[str]:
    if isinstance(templates, str) or not templates or not all(isinstance(t, str) and t.count("{}") == 1 for t in templates):
        raise error(f"prompt templates must be a non-empty list of strings holding '{{}}' once, got {templates!r}")
    return list(templates)


def trigram_ids(text: str, buckets: int) -> list[int]:
    """Hash bucket of every character trigram of `` text `` (padded with spaces, lower-cased)."""
    padded = f" {text.lower()} "
    return [zlib.crc32(padded[i : i + 3].encode()) % buckets for i in range(len(padded) - 2)]


class HashedTextEmbedder(nn.Module):
    """Class names -> (T, D) L2-normalised embeddings: mean over templates of a bag of hashed trigrams."""

    def __init__(self, buckets: int, dim: int) -> None:
        super().__init__()
        self.buckets = buckets
        self.bag = nn.EmbeddingBag(buckets, dim, mode="mean")
        self.proj = nn.Linear(dim, dim)

    def forward(self, class_names: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        prompts = [t.format(n) for n in class_names for t in templates]
        ids = [trigram_ids(p, self.buckets) for p in prompts]
        flat = torch.tensor([i for row in ids for i in row], device=self.bag.weight.device)
        offsets = torch.tensor([0, *torch.tensor([len(r) for r in ids]).cumsum(0)[:-1].tolist()], device=flat.device)
        per_prompt = F.normalize(self.proj(self.bag(flat, offsets)), dim=-1)
        return F.normalize(per_prompt.view(len(class_names), len(templates), -1).mean(1), dim=-1)


class CosineHead(nn.Module):
    """Logits = scale * cos(D_V, D_L) + bias."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(10.0))
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, alignment: torch.Tensor) -> torch.Tensor:
        return self.scale * alignment + self.bias


class ToyModel(OVSSModel):
    """Conv encoder + hashed-trigram text embedder; dense embeddings at stride 4."""

    adapter_name = "toy"
    protocols = (
        EvalProtocol("tiles", "four overlapping tiles (2/3 of each side) predicted apart, scores averaged"),
        EvalProtocol("whole", "the whole image in one forward pass"),
    )
    score_description = "per-class softmax over temperature-scaled trigram-conv cosines (sums to 1 over classes)"
    default_lr_part = "head"

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        self.config = check_config(config)
        cfg = self.config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(cfg["init_seed"]))
            self.encoder = nn.Sequential(
                nn.Conv2d(3, cfg["width"], 3, stride=2, padding=1), nn.GELU(),
                nn.Conv2d(cfg["width"], cfg["embed_dim"], 3, stride=2, padding=1),
            )
            self.text = HashedTextEmbedder(cfg["buckets"], cfg["embed_dim"])
            self.head = CosineHead()
        self._templates = list(cfg["prompt_templates"])
        self._checkpointing = False

    # ------------------------------------------------------------ contract properties
    @property
    def embed_dim(self) -> int:
        return int(self.config["embed_dim"])

    @property
    def clip_tag(self) -> str:
        """``""``: the toy starts from no CLIP (the contract's value for a model that names none)."""
        return ""

    @property
    def prompt_templates(self) -> list[str]:
        return list(self._templates)

    def set_prompt_templates(self, templates: Sequence[str]) -> None:
        """Any number of templates: the text embedder averages them itself."""
        self._templates = _check_templates(list(templates), InputError)
        self.config["prompt_templates"] = list(self._templates)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self._checkpointing = bool(enable)

    def lr_parts(self) -> dict[str, tuple[str, ...]]:
        return {"encoder": ("encoder",), "text": ("text",)}

    def parameter_table(self) -> str:
        counts = {part: (c["trainable"], c["frozen"]) for part, c in self.parameter_counts().items()}
        footer = [f"text: hashed character trigrams, {self.config['buckets']} buckets, no CLIP"]
        return format_parameter_table(counts, footer)

    def load_pretrained(self, cache_dir: str | None = None) -> Path | None:
        """Load ``pretrained`` (a toyseg-1 file) when the config names one."""
        source = self.config["pretrained"]
        if source is None:
            return None
        path = Path(source)
        if not path.is_file():
            raise WeightsNotFoundError(f"toy pretrained weights {path} do not exist")
        state, _ = import_official(path)
        self.load_state_dict(state)
        return path

    # ------------------------------------------------------------ forward
    def _dense(self, images: torch.Tensor) -> torch.Tensor:
        x = images / 127.5 - 1.0
        if self._checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(self.encoder, x, use_reentrant=False)
        return self.encoder(x)

    def forward_train(self, images, class_names, lpam=None):  # noqa: ANN001
        feats = self._dense(images)  # (B, D, h, w)
        b, d, h, w = feats.shape
        dense = feats.flatten(2).transpose(1, 2)  # (B, h*w, D)
        text = self.text(class_names, self._templates)
        alignment = lpam(dense, text) if lpam is not None else F.normalize(dense, dim=-1) @ text.T
        logits = self.head(alignment).transpose(1, 2).reshape(b, len(class_names), h, w)
        return TrainOutput(logits, DenseEmbeddings(dense, (h, w), text), alignment if lpam is not None else None)

    def task_loss(self, logits, labels):  # noqa: ANN001
        up = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
        return F.cross_entropy(up, labels, ignore_index=-1)

    def _whole(self, image: torch.Tensor, class_names: Sequence[str]) -> torch.Tensor:
        logits = self.forward_train(image[None].float(), class_names).logits
        return F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=False)[0].softmax(0)

    @torch.no_grad()
    def predict(self, image, class_names, protocol="tiles"):  # noqa: ANN001
        if protocol == "whole":
            return self._whole(image, class_names).float()
        _, height, width = image.shape
        th, tw = max(1, -(-2 * height // 3)), max(1, -(-2 * width // 3))
        total = image.new_zeros((len(class_names), height, width), dtype=torch.float32)
        count = image.new_zeros((1, height, width), dtype=torch.float32)
        for top in (0, height - th):
            for left in (0, width - tw):
                total[:, top : top + th, left : left + tw] += self._whole(image[:, top : top + th, left : left + tw], class_names)
                count[:, top : top + th, left : left + tw] += 1
        return total / count


class ToyTeacher(nn.Module):
    """The frozen pretrained toy (a copy of the student as built and loaded, before any training)."""

    def __init__(self, student: ToyModel) -> None:
        super().__init__()
        self.frozen = copy.deepcopy(student).eval().requires_grad_(False)

    @torch.no_grad()
    def forward(self, images, class_names):  # noqa: ANN001
        return self.frozen.forward_train(images, class_names).embeddings


def import_official(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a toyseg-1 checkpoint: ``(state_dict in our key names, model config)``."""
    from infoclip.errors import CheckpointError as WeightsFormatError

    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != OFFICIAL_FORMAT or not isinstance(blob.get("state"), dict):
        raise WeightsFormatError(f"{path} is not a {OFFICIAL_FORMAT} checkpoint (a dict with format and state)")
    missing = sorted(set(OFFICIAL_KEYS) - set(blob["state"]))
    if missing:
        raise WeightsFormatError(f"{path} lacks the {OFFICIAL_FORMAT} key(s) {', '.join(missing)}")
    state = {ours: blob["state"][theirs] for theirs, ours in OFFICIAL_KEYS.items()}
    return state, check_config(dict(blob.get("arch", {})))


def write_official(model: ToyModel, path: Path) -> Path:
    """Write ``model`` in the toyseg-1 format (what the made-up official release ships; for tests)."""
    ours = model.state_dict()
    arch = {k: model.config[k] for k in ("width", "embed_dim", "buckets")}
    torch.save({"format": OFFICIAL_FORMAT, "arch": arch, "state": {t: ours[o] for t, o in OFFICIAL_KEYS.items()}}, path)
    return path


@hookimpl
def infoclip_register_adapters():
    return [
        Adapter(
            name="toy",
            summary="toy adapter of the tests: conv encoder + hashed-trigram text (not a CLIP)",
            build_model=lambda cfg: ToyModel(cfg),
            build_teacher=lambda cfg, student: ToyTeacher(student),
            configs={"toy-tiny": Path(__file__).with_name("toy-tiny.yaml")},
            importers={OFFICIAL_FORMAT: import_official},
            version="0.1",
        )
    ]
