"""The training-free baseline: segment with a pretrained CLIP alone, no segmentation weights.

Each image patch's dense CLIP embedding (CAT-Seg's dense last block, ``infoclip.clip.encode_image_dense``: the
value path of the last block, no attention) is compared by cosine similarity with the prompted class-name
embeddings; the similarity grid is upsampled bilinearly to the view size and turned into probabilities with a
**softmax over the given classes** at CLIP's own logit scale (100 for OpenAI's weights), as in CLIP's zero-shot
classification. So probabilities sum to 1 at each pixel, and every pixel goes to *some* listed class: list the
things in the scene, including a catch-all such as "background" or "wall" where it helps.

Protocols, both on views of the CLIP's native input size S (224 for ViT-B/16):

* ``whole``: the image resized to S x S;
* ``sliding``: CAT-Seg's geometry scaled to S: the image resized to (S + s) x (S + s) with stride s = int(S * 0.667)
  (640 = 384 + 256 for S = 384), its four overlapping S x S crops plus the whole image at S x S; probabilities of
  the crops are averaged where they overlap, then averaged with the global view's.

The result is bilinearly resized to the image size. Aspect ratio is not kept inside the views (as in CAT-Seg);
downsizing uses antialiasing so that large photos do not alias. It is a baseline: expect blobby, low-resolution
maps (14 x 14 tokens per view for ViT-B/16 at 224), not the quality of a trained model.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from infoclip.adapters.contract import EvalProtocol, OVSSModel, TrainOutput
from infoclip.errors import AdapterError, InputError, WeightsNotFoundError

DEFAULT_TEMPLATE = "A photo of a {} in the scene"
#: sliding-window overlap of CAT-Seg's ``inference_sliding_window`` (stride = int(S * (1 - 0.333)))
SLIDING_OVERLAP = 0.333
_TEXT_CHUNK = 256  # prompts per text-tower batch: bounds memory for 847-class vocabularies
_TEXT_CACHE_SIZE = 4


def parse_clip_spec(spec: str) -> tuple[str, str | None]:
    """Split ``"MODEL:TAG"`` into the open_clip architecture and the weights to load.

    ``TAG`` is an open_clip pretrained tag (``openai``, ``laion2b_s34b_b88k``, ...), a local weights file, or
    ``none`` for random initialisation (tests and benchmarks). For OpenAI-style tags trained with QuickGELU the
    ``-quickgelu`` architecture is chosen (``ViT-B-16:openai`` runs ``ViT-B-16-quickgelu``), because open_clip
    would otherwise build the GELU variant and run OpenAI's weights with the wrong activation.

    Raises:
        InputError: no ``:`` in ``spec``, or an empty part.
    """
    model_name, sep, tag = spec.partition(":")
    model_name, tag = model_name.strip(), tag.strip()
    if not sep or not model_name or not tag:
        raise InputError(
            f"a CLIP is named MODEL:TAG such as ViT-B-16:openai (or MODEL:/path/to/weights, or MODEL:none for "
            f"random weights), got {spec!r}",
            parameter="clip",
        )
    import open_clip

    from infoclip.clip import TINY_CLIP, register_tiny_configs

    register_tiny_configs()
    if model_name not in open_clip.list_models():
        raise InputError(
            f"unknown CLIP architecture {model_name!r} in {spec}; open_clip's ViT names such as ViT-B-16, "
            f"ViT-L-14, ViT-L-14-336 (all: open_clip.list_models()), or {TINY_CLIP} for tests",
            parameter="clip",
        )
    if tag.lower() == "none":
        return model_name, None
    quick = (open_clip.get_pretrained_cfg(model_name, tag) or {}).get("quick_gelu", False)
    if quick and not model_name.endswith("-quickgelu") and f"{model_name}-quickgelu" in open_clip.list_models():
        model_name = f"{model_name}-quickgelu"
    return model_name, tag


def _resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (B, C, H, W), antialiased when shrinking."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    shrink = size[0] < images.shape[-2] or size[1] < images.shape[-1]
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=shrink)


class DenseCLIPBaseline(OVSSModel):
    """Training-free segmentation by dense CLIP / text cosine alignment (see the module docstring).

    It honours the prediction side of the model contract (``predict``, ``protocols``, prompt templates,
    ``clip_tag``, ``embed_dim``); it has nothing to train, so ``forward_train`` and ``task_loss`` raise
    ``AdapterError``.

    Args:
        clip_model: an open_clip CLIP built by ``infoclip.clip.build_clip`` / ``load_clip`` (split attention).
        model_name: its open_clip architecture name (for the tokenizer).
        template: prompt template containing ``{}``.
    """

    def __init__(
        self, clip_model: nn.Module, model_name: str, template: str = DEFAULT_TEMPLATE, clip_tag: str | None = None
    ) -> None:
        super().__init__()
        import open_clip

        from infoclip.clip import get_tokenizer

        self.clip = clip_model.eval()
        self.model_name = model_name
        self._clip_tag = clip_tag or model_name
        self.tokenizer = get_tokenizer(model_name)
        cfg = open_clip.get_model_preprocess_cfg(clip_model)
        size = cfg.get("size", clip_model.visual.image_size)
        self.view_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        mean = cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)
        std = cfg.get("std", open_clip.OPENAI_DATASET_STD)
        # images arrive on the 0-255 scale (the model contract); CLIP's statistics are on the 0-1 scale
        self.register_buffer("pixel_mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("pixel_std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0)
        self.template = DEFAULT_TEMPLATE
        self.set_prompt_template(template)
        self._text_cache: OrderedDict[tuple[tuple[str, ...], str], torch.Tensor] = OrderedDict()

    @classmethod
    def from_spec(cls, spec: str, template: str = DEFAULT_TEMPLATE) -> DenseCLIPBaseline:
        """Build from ``--clip``'s ``"MODEL:TAG"`` (see ``parse_clip_spec``); ``clip_tag`` records what was built.

        Raises:
            InputError: a malformed spec or an unknown architecture.
            WeightsNotFoundError: the weights are not available offline (says which file to fetch).
        """
        model_name, pretrained = parse_clip_spec(spec)
        return cls.from_open_clip(model_name, pretrained, template, clip_tag=f"{model_name}:{pretrained or 'none'}")

    @classmethod
    def from_open_clip(
        cls, model_name: str, pretrained: str | None, template: str = DEFAULT_TEMPLATE, clip_tag: str | None = None
    ) -> DenseCLIPBaseline:
        """Build the CLIP (``infoclip.clip.load_clip``) and wrap it.

        Raises:
            WeightsNotFoundError: the weights are neither cached nor downloadable (says which file to fetch, where).
            ConfigError: an architecture the dense forward cannot run.
        """
        from infoclip.clip import load_clip, resolve_pretrained

        if pretrained is None:  # random weights, seeded so that a test or benchmark run is reproducible
            return cls(load_clip(model_name, None, init_seed=0), model_name, template, clip_tag)
        # find (or fail to find) the weights file before building a large model that would go unused
        try:
            weights_file = resolve_pretrained(model_name, pretrained)
        except WeightsNotFoundError as exc:
            raise WeightsNotFoundError(
                f"{exc}; then give that file as {model_name}:/path/to/the/file", parameter="clip"
            ) from exc
        return cls(load_clip(model_name, str(weights_file)), model_name, template, clip_tag)

    @classmethod
    def from_model(cls, model: OVSSModel, template: str = DEFAULT_TEMPLATE) -> DenseCLIPBaseline:
        """The training-free dense alignment of a trained model's own CLIP (``OVSSModel.dense_clip``).

        Scores the fine-tuned CLIP exactly as ``from_spec`` scores a pretrained one (same dense block, prompt
        template, softmax), so the two numbers compare: did fine-tuning keep CLIP's pixel-text alignment?
        The CLIP is shared with ``model``, not copied, and is put in eval mode.

        Raises:
            AdapterError: the model does not expose its CLIP.
        """
        clip_model, model_name = model.dense_clip()
        tag = model.clip_tag or model_name
        return cls(clip_model, model_name, template, clip_tag=f"{tag} (fine-tuned in {model.adapter_name or type(model).__name__})")

    adapter_name = "dense-clip-baseline"
    protocols = (
        EvalProtocol("sliding", "CAT-Seg's sliding geometry scaled to the CLIP input size: four crops plus the global view"),
        EvalProtocol("whole", "the image resized to the CLIP input size, one pass"),
    )
    score_description = "softmax over the given classes of CLIP's dense cosine logits (sums to 1 at each pixel)"

    @property
    def clip_tag(self) -> str:
        """``"MODEL:TAG"`` of the weights when built by ``from_spec``; the bare architecture name otherwise."""
        return self._clip_tag

    @property
    def embed_dim(self) -> int:
        return int(self.clip.visual.output_dim)

    @property
    def prompt_templates(self) -> list[str]:
        """The templates class names go through now (several while ensembling)."""
        return list(self.ensemble) if self.ensemble else [self.template]

    def set_prompt_templates(self, templates: Sequence[str]) -> None:
        """Use one template (``{}`` once) for class prompts; clears the text-embedding cache.

        Raises:
            InputError: not exactly one template, or one without exactly one ``{}``.
        """
        templates = list(templates)
        if len(templates) != 1:
            raise InputError(f"the dense-CLIP baseline prompts with one template, got {len(templates)}")
        self.set_prompt_template(templates[0])

    def set_prompt_template(self, template: str) -> None:
        """Use ``template`` (``{}`` once) for class prompts; clears the text-embedding cache."""
        if not isinstance(template, str) or template.count("{}") != 1:
            raise InputError(f"a prompt template must contain {{}} exactly once, got {template!r}")
        self.template = template
        self.ensemble: list[str] | None = None
        if hasattr(self, "_text_cache"):
            self._text_cache.clear()

    def set_prompt_ensemble(self, templates: Sequence[str]) -> None:
        """Embed each class as the re-normalised mean of its normalised prompts in all ``templates`` (CLIP's
        ensembling); clears the text-embedding cache."""
        templates = list(templates)
        if not templates or not all(isinstance(t, str) and t.count("{}") == 1 for t in templates):
            raise InputError(f"prompt templates must be strings with {{}} exactly once, got {templates!r}")
        self.ensemble = templates
        self._text_cache.clear()

    def forward_train(self, images: torch.Tensor, class_names: Sequence[str], lpam: nn.Module | None = None) -> TrainOutput:
        raise AdapterError("the training-free dense-CLIP baseline does not train; train an adapter's model instead")

    def task_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise AdapterError("the training-free dense-CLIP baseline has no task loss")

    @property
    def logit_scale(self) -> float:
        return float(self.clip.logit_scale.exp())

    def text_embeddings(self, class_names: Sequence[str]) -> torch.Tensor:
        """(T, E) float32 L2-normalised prompt embeddings of the classes (first synonym of each name)."""
        from infoclip.clip import class_prompts, encode_text

        templates = self.prompt_templates
        key = (tuple(class_names), "\n".join(templates))
        if key in self._text_cache:
            self._text_cache.move_to_end(key)
            return self._text_cache[key]
        device = self.pixel_mean.device

        def compute() -> torch.Tensor:
            prompts = class_prompts(list(class_names), templates)
            chunks = []
            for start in range(0, len(prompts), _TEXT_CHUNK):
                tokens = self.tokenizer(prompts[start : start + _TEXT_CHUNK]).to(device)
                chunks.append(encode_text(self.clip, tokens).float())
            per_prompt = F.normalize(torch.cat(chunks), dim=-1).reshape(len(class_names), len(templates), -1)
            return per_prompt[:, 0] if len(templates) == 1 else F.normalize(per_prompt.mean(dim=1), dim=-1)

        cache = self.text_embedding_cache
        if cache is not None:
            embeddings = cache.get_or_compute(templates, class_names, compute, device)
        else:
            embeddings = compute()
        self._text_cache[key] = embeddings
        while len(self._text_cache) > _TEXT_CACHE_SIZE:
            self._text_cache.popitem(last=False)
        return embeddings

    def dense_logits(self, views: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Cosine logits on the token grid.

        Args:
            views: (B, 3, S, S) float RGB, 0-255.
            text: (T, E) float, L2-normalised.

        Returns:
            (B, T, h, w) float32: logit_scale * cosine(dense token, class embedding); h = w = S / patch.
        """
        from infoclip.clip import encode_image_dense

        normalised = (views - self.pixel_mean) / self.pixel_std
        tokens, _ = encode_image_dense(self.clip, normalised)
        batch, _, height, width = views.shape
        patch = self.clip.visual.conv1.kernel_size
        grid = (height // patch[0], width // patch[1])
        dense = F.normalize(tokens[:, 1:].float(), dim=-1)  # CLS dropped, as CAT-Seg does
        cosine = dense @ text.T  # (B, h*w, T)
        return (self.logit_scale * cosine).transpose(1, 2).reshape(batch, text.shape[0], *grid)

    def _view_probs(self, logits: torch.Tensor, size: int) -> torch.Tensor:
        """(T, h, w) logits -> (T, size, size) softmax probabilities over classes."""
        up = F.interpolate(logits[None], size=(size, size), mode="bilinear", align_corners=False)[0]
        return up.softmax(dim=0)

    @torch.no_grad()
    def predict(self, image: torch.Tensor, class_names: Sequence[str], protocol: str = "sliding") -> torch.Tensor:
        """Per-class probabilities of one image.

        Args:
            image: (3, H, W) float RGB in [0, 255].
            class_names: T >= 1 class names (no preselection needed above 256 classes: each class costs one
                dot product per token).
            protocol: ``"sliding"`` or ``"whole"`` (see the module docstring).

        Returns:
            (T, H, W) float32 probabilities in [0, 1], summing to 1 over T at each pixel.
        """
        height, width = image.shape[-2:]
        text = self.text_embeddings(class_names)
        size = self.view_size
        batch = image[None].float()
        if protocol == "whole":
            logits = self.dense_logits(_resize(batch, (size, size)), text)
            merged = self._view_probs(logits[0], size)
        else:
            stride = int(size * (1 - SLIDING_OVERLAP))
            side = size + stride
            big = _resize(batch, (side, side))
            offsets = [(y, x) for y in (0, stride) for x in (0, stride)]
            crops = [big[..., y : y + size, x : x + size] for y, x in offsets]
            logits = self.dense_logits(torch.cat(crops + [_resize(batch, (size, size))]), text)
            local = torch.zeros(text.shape[0], side, side, device=image.device)
            count = torch.zeros(1, side, side, device=image.device)
            for k, (y, x) in enumerate(offsets):
                local[:, y : y + size, x : x + size] += self._view_probs(logits[k], size)
                count[:, y : y + size, x : x + size] += 1
            global_view = F.interpolate(
                self._view_probs(logits[-1], size)[None], size=(side, side), mode="bilinear", align_corners=False
            )[0]
            merged = (local / count + global_view) / 2
            size = side
        if (size, size) != (height, width):
            merged = F.interpolate(merged[None], size=(height, width), mode="bilinear", align_corners=False)[0]
        return merged.float()
