"""CAT-Seg (CVPR'24 code) as an infoclip ``OVSSModel``, and its frozen InfoCLIP teacher.

Module names mirror the official meta-architecture so that official checkpoints map by prefix:
``clip_model`` (official ``sem_seg_head.predictor.clip_model``, open_clip key layout with split Q/K/V),
``aggregator`` (official ``sem_seg_head.predictor.transformer``), ``upsample1`` / ``upsample2`` (same names).
With ``lpam_feeds_decoder`` the model also owns the shared LPAM as ``lpam``.

Building never downloads: CLIP starts from a seeded random init and ``load_pretrained()`` loads the
pretrained weights when a trainer starts from them; ``infoclip.models.load_model`` replaces all weights.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from infoclip.adapters.catseg.aggregator import Aggregator
from infoclip.adapters.catseg.config import resolve_model_config
from infoclip.adapters.clip_model import OpenCLIPModel
from infoclip.adapters.contract import CLIP_PART, DenseEmbeddings, EvalProtocol, OVSSModel, TrainOutput
from infoclip.adapters.inputs import check_class_names, check_images, resize_shortest_edge
from infoclip.adapters.parameters import count_parameters, format_parameter_table
from infoclip.data.spec import IGNORE_INDEX
from infoclip.clip import build_clip, class_prompts, encode_image_dense, encode_text, get_tokenizer
from infoclip.clip import normalize_images
from infoclip.clip.teacher import FrozenCLIPTeacher, frozen_clip
from infoclip.errors import AdapterError, ConfigError, InputError

_TEXT_CACHE_SIZE = 8
CATSEG_PROTOCOLS = (
    EvalProtocol(
        "sliding",
        "CAT-Seg's published protocol: short side 640, four 384 crops (stride 256) plus the global view, averaged",
    ),
    EvalProtocol("whole", "short side 640, padded to a multiple of 32, resized to the CLIP resolution, one pass"),
)
PROTOCOLS = tuple(p.name for p in CATSEG_PROTOCOLS)


def set_clip_finetuning(clip_model: nn.Module, mode: str) -> None:
    """Set ``requires_grad`` on CLIP's parameters by CAT-Seg's ``CLIP_FINETUNE`` rule.

    ``"attention"``: only ``q_proj_weight`` and ``v_proj_weight`` of every block of both towers train
    (K, the packed ``in_proj_bias``, ``out_proj``, MLPs, norms, embeddings, projections are frozen);
    ``"none"``: all frozen; ``"full"``: all train.
    """
    for name, param in clip_model.named_parameters():
        if mode == "full":
            param.requires_grad_(True)
        elif mode == "attention":
            param.requires_grad_(".resblocks." in name and name.endswith(("attn.q_proj_weight", "attn.v_proj_weight")))
        else:
            param.requires_grad_(False)


def clip_input(images: torch.Tensor, config: Mapping[str, Any], pad: bool = True) -> torch.Tensor:
    """Images as CAT-Seg feeds them to CLIP: normalised, zero-padded to the size divisibility, resized.

    Args:
        images: (B, 3, H, W) float RGB in [0, 255].
        config: a resolved CAT-Seg model config.
        pad: pad to ``inference.size_divisibility`` (the official sliding window does not pad its crops).

    Returns:
        (B, 3, R, R) float, R = ``clip.resolution`` (bilinear, ``align_corners=False``, no antialias).
    """
    check_images(images, "images", 4)
    x = normalize_images(images.float(), config["clip"]["pixel_mean"], config["clip"]["pixel_std"])
    div = config["inference"]["size_divisibility"]
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % div, (-w) % div
    if pad and (pad_h or pad_w):  # detectron2's ImageList pads bottom/right with 0 after normalisation
        x = F.pad(x, (0, pad_w, 0, pad_h))
    r = config["clip"]["resolution"]
    if tuple(x.shape[-2:]) != (r, r):
        x = F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False)
    return x


class _TextEncoder:
    """Prompted class-name embeddings of one CLIP, cached per class list when the caller allows it."""

    def __init__(self, clip_name: str, templates: Sequence[str], ensemble: bool = False) -> None:
        self.tokenizer = get_tokenizer(clip_name)
        self.templates = list(templates)
        #: average all templates into one prompt channel (CLIP's ensembling) instead of one channel each
        self.ensemble = ensemble
        #: a TextEmbeddingCache for inference (``cached`` calls), set by the model's owner
        self.disk_cache = None
        self.cache: OrderedDict[tuple[tuple[str, ...], torch.dtype | None], torch.Tensor] = OrderedDict()
        self.tokens: OrderedDict[tuple[str, ...], torch.Tensor] = OrderedDict()

    def clear(self) -> None:
        self.cache.clear()

    def __call__(self, clip_model: nn.Module, class_names: Sequence[str], cached: bool) -> torch.Tensor:
        """(T, P, E) L2-normalised embeddings; with ``cached`` computed once per class list without autograd."""
        names = tuple(check_class_names(class_names))
        device = clip_model.token_embedding.weight.device
        # embeddings made under bf16/fp16 autocast are in that dtype: an fp32 run must not reuse them
        amp = torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type) else None
        key = (names, amp)
        if cached and key in self.cache and self.cache[key].device == device:
            self.cache.move_to_end(key)
            return self.cache[key]
        if names not in self.tokens:
            self.tokens[names] = self.tokenizer(class_prompts(names, self.templates))
            if len(self.tokens) > _TEXT_CACHE_SIZE:
                self.tokens.popitem(last=False)
        tokens = self.tokens[names].to(device)

        def compute() -> torch.Tensor:
            with torch.set_grad_enabled(torch.is_grad_enabled() and not cached):
                out = F.normalize(encode_text(clip_model, tokens), dim=-1).reshape(len(names), len(self.templates), -1)
            return F.normalize(out.mean(dim=1, keepdim=True), dim=-1) if self.ensemble else out

        if cached and self.disk_cache is not None:
            text = self.disk_cache.get_or_compute(
                self.templates, names, compute, device, ensemble=self.ensemble, autocast=str(amp)
            )
        else:
            text = compute()
        if cached:
            self.cache[key] = text
            if len(self.cache) > _TEXT_CACHE_SIZE:
                self.cache.popitem(last=False)
        return text


def _dense_text(text: torch.Tensor) -> torch.Tensor:
    """(T, P, E) normalised prompt embeddings -> (T, E): template mean, re-normalised (P = 1: unchanged)."""
    return text[:, 0] if text.shape[1] == 1 else F.normalize(text.mean(dim=1), dim=-1)


class CATSeg(OpenCLIPModel):
    """CAT-Seg: fine-tuned CLIP (dense) + cost aggregation, trained with per-class BCE.

    Args:
        config: a ``model:`` section (partial configs are merged onto the ViT-B/16 defaults, see
            ``configs/catseg-vit-b16.yaml``).

    Shapes (ViT-B/16 at 384; ``h = w = resolution / patch``): CLIP tokens (B, 1 + h*w, E), guidance taps
    (B, 1 + h*w, width), logits (B, T, 4h, 4w).
    """

    adapter_name = "catseg"
    protocols = CATSEG_PROTOCOLS
    score_description = (
        "independent per-class sigmoid probabilities in [0, 1] (they need not sum to 1 over the classes); "
        "classes beyond the top-pad_len preselection get sigmoid(-100)"
    )

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        cfg = resolve_model_config(config)
        self.config = cfg
        clip_cfg, agg = cfg["clip"], cfg["aggregator"]
        self.clip_model = build_clip(clip_cfg["name"], init_seed=clip_cfg["init_seed"])
        visual = self.clip_model.visual
        patch = visual.patch_size[0]
        width = visual.conv1.out_channels
        embed = visual.proj.shape[1]
        depth = len(visual.transformer.resblocks)
        resolution = clip_cfg["resolution"]
        if resolution % patch:
            raise ConfigError(f"model.clip.resolution {resolution} is not a multiple of the patch size {patch}")
        self.grid = (resolution // patch, resolution // patch)
        self.guidance_layers = tuple(clip_cfg["guidance_layers"])
        if not all(0 <= i < depth - 1 for i in self.guidance_layers):
            raise ConfigError(
                f"model.clip.guidance_layers {list(self.guidance_layers)} must be blocks 0..{depth - 2} of the "
                f"{depth}-block image tower (the last block is the dense one)"
            )
        templates = cfg["prompt_templates"]
        self.aggregator = Aggregator(
            text_guidance_dim=embed,
            text_guidance_proj_dim=agg["text_guidance_proj_dim"],
            appearance_guidance_dim=embed,
            appearance_guidance_proj_dim=agg["appearance_guidance_proj_dim"],
            decoder_dims=agg["decoder_dims"],
            decoder_guidance_dims=agg["decoder_guidance_dims"],
            decoder_guidance_proj_dims=agg["decoder_guidance_proj_dims"],
            num_layers=agg["num_layers"],
            num_heads=agg["num_heads"],
            hidden_dim=agg["hidden_dim"],
            feature_resolution=self.grid,
            window_size=agg["window_size"],
            pooling_train=agg["pooling_train"],
            pooling_eval=agg["pooling_eval"],
            attention_type=agg["attention_type"],
            prompt_channel=len(templates),
            pad_len=agg["pad_len"],
            no_grad_chunk=agg["no_grad_chunk"],
        )
        self.upsample1 = nn.ConvTranspose2d(width, agg["decoder_guidance_dims"][0], kernel_size=2, stride=2)
        self.upsample2 = nn.ConvTranspose2d(width, agg["decoder_guidance_dims"][1], kernel_size=4, stride=4)
        self.lpam: nn.Module | None = None
        if cfg["lpam_feeds_decoder"]:
            from infoclip.core import LPAM

            self.lpam = LPAM(embed, residual=cfg["lpam_residual"])
        self.text_encoder = _TextEncoder(clip_cfg["name"], templates)
        set_clip_finetuning(self.clip_model, clip_cfg["finetune"])

    # ------------------------------------------------------------------ housekeeping
    def clip_settings(self) -> Mapping[str, Any]:
        """``model.clip`` (architecture ``name``, ``pretrained`` weights)."""
        return self.config["clip"]

    def model_config(self) -> dict[str, Any]:
        """The complete resolved ``model:`` config (stored in weights files; rebuilds this architecture)."""
        return resolve_model_config(self.config)

    def train(self, mode: bool = True) -> CATSeg:
        """Switch training/evaluation behaviour: class-aggregation pooling (2x2 / 1x1 by default) and text
        caching (eval only). Entering training mode drops the cache, since training changes the text encoder;
        staying in or entering eval mode keeps it (``predict`` calls ``eval()`` on every image)."""
        if mode:
            self.text_encoder.clear()
        return super().train(mode)

    @property
    def prompt_templates(self) -> list[str]:
        """``model.prompt_templates``: the official ViT-B/16 config uses one, ``"A photo of a {} in the scene"``
        (while ensembling a template set, ``set_prompt_ensemble``: the set's templates)."""
        return list(self.text_encoder.templates) if self.text_encoder.ensemble else list(self.config["prompt_templates"])

    def set_prompt_templates(self, templates: Sequence[str]) -> None:
        """Prompt with ``templates``; their number is part of the architecture (the aggregator's prompt
        channels), so only as many templates as the model has can replace them.

        Raises:
            InputError: a template without exactly one ``{}``, or another number of templates.
        """
        templates = list(templates)
        if not templates or not all(isinstance(t, str) and t.count("{}") == 1 for t in templates):
            raise InputError(f"prompt templates must be strings with {{}} exactly once, got {templates!r}")
        current = self.config["prompt_templates"]
        if len(templates) != len(current):
            raise InputError(
                f"this CAT-Seg model uses {len(current)} prompt template(s) (part of its architecture); "
                f"{len(templates)} cannot replace them"
            )
        self.config["prompt_templates"] = templates
        self.text_encoder = _TextEncoder(self.config["clip"]["name"], templates)

    @property
    def decoder_lpam(self) -> nn.Module | None:
        """The shared LPAM with ``model.lpam_feeds_decoder`` (``None`` otherwise)."""
        return self.lpam

    def lr_parts(self) -> dict[str, tuple[str, ...]]:
        """CLIP trains at ``solver.clip_lr_multiplier`` (official rule: module names containing ``clip_model``)."""
        return {CLIP_PART: ("clip_model",)}

    def parameter_table(self) -> str:
        """Trainable / frozen parameter counts per part (CLIP towers, aggregator, upsamplers, LPAM), and the
        CLIP fine-tuning mode with the kinds of CLIP tensors that train."""
        return parameter_table(self)

    # ------------------------------------------------------------------ forward passes
    def set_prompt_ensemble(self, templates: Sequence[str]) -> None:
        """Ensemble ``templates`` into each class's one prompt channel (only for models trained with one
        template: the number of prompt channels is architecture).

        Raises:
            InputError: templates without exactly one ``{}``, or a model with several prompt channels.
        """
        templates = list(templates)
        if not templates or not all(isinstance(t, str) and t.count("{}") == 1 for t in templates):
            raise InputError(f"prompt templates must be strings with {{}} exactly once, got {templates!r}")
        if len(self.config["prompt_templates"]) != 1:
            raise InputError(
                f"this CAT-Seg model has {len(self.config['prompt_templates'])} prompt channels (architecture); "
                "only a model trained with one template can ensemble a template set"
            )
        self.text_encoder = _TextEncoder(self.config["clip"]["name"], templates, ensemble=True)

    def encode_classes(self, class_names: Sequence[str]) -> torch.Tensor:
        """(T, P, E) L2-normalised prompt embeddings; cached per class list in eval mode, recomputed with
        gradients in training mode (the text encoder's Q/V train)."""
        self.text_encoder.disk_cache = self.text_embedding_cache
        return self.text_encoder(self.clip_model, class_names, cached=not self.training)

    def encode_image(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Dense CLIP tokens (B, 1 + h*w, E) and the guidance taps of CLIP-ready images (B, 3, R, R)."""
        return encode_image_dense(self.clip_model, images, self.guidance_layers)

    def _grid_map(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, 1 + h*w, C) tokens -> (B, C, h, w) map of the patch tokens (CLS dropped)."""
        b, _, c = tokens.shape
        return tokens[:, 1:].transpose(1, 2).reshape(b, c, *self.grid)

    def _logits(
        self, tokens: torch.Tensor, taps: Sequence[torch.Tensor], text: torch.Tensor, corr: torch.Tensor | None
    ) -> torch.Tensor:
        img = self._grid_map(tokens)
        guidance = [img, self.upsample1(self._grid_map(taps[0])), self.upsample2(self._grid_map(taps[1]))]
        text_feats = text.unsqueeze(0).expand(tokens.shape[0], -1, -1, -1)
        return self.aggregator(img, text_feats, guidance, corr)

    def _resolve_lpam(self, lpam: nn.Module | None) -> nn.Module | None:
        if not self.config["lpam_feeds_decoder"]:
            return None  # the LPAM is training-only: it feeds the losses, never the decoder
        if lpam is not None and lpam is not self.lpam:
            raise AdapterError(
                "with model.lpam_feeds_decoder the model owns the shared LPAM: build the InfoCLIP objective "
                "with model.lpam and pass that one (or None)"
            )
        return self.lpam

    def _forward(
        self, clip_images: torch.Tensor, class_names: Sequence[str], lpam: nn.Module | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        text = self.encode_classes(class_names)
        tokens, taps = self.encode_image(clip_images)
        image = tokens[:, 1:]
        alignment = None
        corr = None
        lpam = self._resolve_lpam(lpam)
        if lpam is not None:
            alignment = lpam(image, _dense_text(text))  # (B, h*w, T)
            b, _, t = alignment.shape
            corr = alignment.transpose(1, 2).reshape(b, 1, t, *self.grid)
        return self._logits(tokens, taps, text, corr), image, text, alignment

    def forward(self, images: torch.Tensor, class_names: Sequence[str]) -> torch.Tensor:
        """Logits of CLIP-sized views. images (B, 3, H, W) float RGB in [0, 255] -> (B, T, 4h, 4w) float
        (96 x 96 for the official configs). Behaviour follows ``train()`` / ``eval()`` (pooling, text cache)."""
        return self._forward(clip_input(images, self.config), class_names, None)[0]

    def forward_train(
        self, images: torch.Tensor, class_names: Sequence[str], lpam: nn.Module | None = None
    ) -> TrainOutput:
        """Training forward: logits and the student's embeddings of the same pass.

        Args:
            images: (B, 3, H, W) float RGB in [0, 255], cropped (384 x 384 in the recipe).
            class_names: the T training class names.
            lpam: with ``model.lpam_feeds_decoder``, the shared LPAM (must be ``model.lpam``; ``None`` uses it);
                its map R^S (B, h*w, T) replaces the cosine cost volume and is returned as ``alignment``.
                Ignored otherwise (the LPAM then only feeds the InfoCLIP losses).

        Returns:
            ``TrainOutput(logits (B, T, 4h, 4w), DenseEmbeddings(image (B, h*w, E) = CLIP's projected dense
            patch tokens before L2 normalisation, grid (h, w), text (T, E) L2-normalised), alignment)``.
        """
        logits, image, text, alignment = self._forward(clip_input(images, self.config), class_names, lpam)
        return TrainOutput(logits, DenseEmbeddings(image, self.grid, _dense_text(text)), alignment)

    def task_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """CAT-Seg's loss: per-pixel, per-class BCE with logits against one-hot targets, mean over all.

        Logits are upsampled bilinearly (``align_corners=False``) to the label size first. Pixels labelled
        ``IGNORE_INDEX`` (-1) count as all-negative targets (official behaviour), or are left out of the
        mean when ``model.loss.mask_ignore`` is true.

        Args:
            logits: (B, T, h, w) float.
            labels: (B, H, W) int64 in {-1, 0, ..., T-1}.

        Returns:
            Scalar float loss.
        """
        if logits.ndim != 4 or labels.ndim != 3 or labels.shape[0] != logits.shape[0]:
            raise InputError(f"task_loss needs logits (B, T, h, w) and labels (B, H, W), got {tuple(logits.shape)} and {tuple(labels.shape)}")
        if labels.dtype != torch.long:
            raise InputError(f"labels must be int64, got {labels.dtype}")
        t = logits.shape[1]
        if labels.numel() and (labels.min() < IGNORE_INDEX or labels.max() >= t):
            raise InputError(f"labels must lie in [-1, {t - 1}] for {t} classes, got values in [{int(labels.min())}, {int(labels.max())}]")
        logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
        valid = labels != IGNORE_INDEX
        # BCE(x, y) = softplus(x) - x * y; with one-hot y only the labelled class's logit enters the second term.
        picked = logits.gather(1, labels.clamp(min=0).unsqueeze(1)).squeeze(1)
        positive = (picked * valid).sum()
        softplus = F.softplus(logits).sum(dim=1)
        if self.config["loss"]["mask_ignore"]:
            count = valid.sum() * t
            return ((softplus * valid).sum() - positive) / count.clamp(min=1)
        return (softplus.sum() - positive) / (labels.numel() * t)

    # ------------------------------------------------------------------ prediction
    @torch.no_grad()
    def predict(self, image: torch.Tensor, class_names: Sequence[str], protocol: str = "sliding") -> torch.Tensor:
        """Per-class probabilities of one image with the official evaluation protocol (catseg-reference §3.1).

        Steps: detectron2's ``ResizeShortestEdge(640, max 2560)`` on the 8-bit image (PIL bilinear; the input
        is rounded to 8 bits as the official loader reads JPEG/PNG); then

        * ``"sliding"``: squash to 640 x 640, four 384 crops with stride 256 plus the whole image at 384 as a
          global view, logits upsampled to 384 and passed through a sigmoid, crops folded (averaged where they
          overlap) and averaged 50/50 with the global view;
        * ``"whole"``: zero-pad to a multiple of 32, resize to the CLIP resolution, sigmoid;

        then bilinear resize to the original size. Classes beyond ``pad_len`` go through the per-view
        top-``pad_len`` preselection (the others get probability sigmoid(-100)). Runs in eval mode (restored).

        Args (trusted, as ``OVSSModel.predict`` documents: the entry points checked them):
            image: (3, H, W) float (or uint8) RGB in [0, 255].
            class_names: T >= 1 class names.
            protocol: ``"sliding"`` or ``"whole"``.

        Returns:
            (T, H, W) float32 probabilities in [0, 1].
        """
        names = list(class_names)  # checked by the entry points (OVSSModel.predict's contract)
        height, width = image.shape[-2:]
        was_training = self.training
        self.eval()
        try:
            inf = self.config["inference"]
            device = next(self.parameters()).device
            resized = resize_shortest_edge(image, inf["test_short_side"], inf["test_max_size"]).to(device)
            if protocol == "sliding":
                probs = self._predict_sliding(resized, names)
            else:
                logits = self(resized.unsqueeze(0), names)
                probs = logits.sigmoid()
            out = F.interpolate(probs, size=(height, width), mode="bilinear", align_corners=False)[0]
        finally:
            self.train(was_training)
        return out.float()

    def _predict_sliding(self, image: torch.Tensor, class_names: list[str]) -> torch.Tensor:
        """image (3, h, w) float 0-255 -> (1, T, out_res, out_res) averaged probabilities."""
        inf = self.config["inference"]
        kernel, out_res = inf["sliding_kernel"], inf["sliding_out_res"]
        stride = int(kernel * (1 - inf["sliding_overlap"]))
        x = image.unsqueeze(0)
        square = F.interpolate(x, size=(out_res, out_res), mode="bilinear", align_corners=False)
        starts = list(range(0, out_res - kernel + 1, stride))
        offsets = [(top, left) for top in starts for left in starts]  # nn.Unfold's row-major order
        views = [square[..., top : top + kernel, left : left + kernel] for top, left in offsets]
        views.append(F.interpolate(x, size=(kernel, kernel), mode="bilinear", align_corners=False))
        batch = torch.cat(views, dim=0)
        t = len(class_names)
        local = batch.new_zeros(1, t, out_res, out_res)
        count = batch.new_zeros(1, 1, out_res, out_res)
        global_probs = None
        step = self.config["inference"]["views_per_batch"]
        for first in range(0, batch.shape[0], step):
            logits = self._forward(clip_input(batch[first : first + step], self.config, pad=False), class_names, None)[0]
            for j in range(logits.shape[0]):
                probs = F.interpolate(logits[j : j + 1], size=(kernel, kernel), mode="bilinear", align_corners=False).sigmoid()
                index = first + j
                if index == len(offsets):
                    global_probs = F.interpolate(probs, size=(out_res, out_res), mode="bilinear", align_corners=False)
                else:
                    top, left = offsets[index]
                    local[..., top : top + kernel, left : left + kernel] += probs
                    count[..., top : top + kernel, left : left + kernel] += 1
        return local.div_(count).add_(global_probs).div_(2)  # (local / count + global) / 2, in place


def _table_label(name: str) -> str:
    if name.startswith("clip_model.visual."):
        return "CLIP image tower"
    if name.startswith("clip_model."):
        return "CLIP text tower"
    if name.startswith("aggregator."):
        return "aggregator"
    if name.startswith("upsample"):
        return "guidance upsamplers"
    return "LPAM"


def parameter_table(model: CATSeg) -> str:
    """Trainable / frozen parameter counts per part of a ``CATSeg`` model, as an aligned text table."""
    labels = ("CLIP image tower", "CLIP text tower", "aggregator", "guidance upsamplers", "LPAM")
    counts = count_parameters(model, _table_label, labels)
    trained_kinds = {n.rsplit(".", 1)[-1] for n, p in model.named_parameters() if p.requires_grad and n.startswith("clip_model.")}
    mode = model.config["clip"]["finetune"]
    kinds = ", ".join(sorted(trained_kinds)) or "none"
    return format_parameter_table(counts, [f"CLIP fine-tuning: {mode} (trainable CLIP tensors: {kinds})"])


class CATSegTeacher(FrozenCLIPTeacher):
    """InfoCLIP's teacher for CAT-Seg: a frozen pretrained CLIP run exactly as the student runs its own
    (same normalisation, padding, resolution, dense last block, prompts). Always in eval mode, never
    trained (no parameter requires grad), never exported.

    Args:
        config: the student's resolved model config.
        clip_model: the CLIP to freeze (from ``build_clip``, pretrained weights loaded).
    """

    def __init__(self, config: Mapping[str, Any], clip_model: nn.Module) -> None:
        config = resolve_model_config(config)
        super().__init__(clip_model, _TextEncoder(config["clip"]["name"], config["prompt_templates"]))
        self.config = config
        patch = clip_model.visual.patch_size[0]
        resolution = self.config["clip"]["resolution"]
        self.grid = (resolution // patch, resolution // patch)

    @torch.no_grad()
    def forward(self, images: torch.Tensor, class_names: Sequence[str]) -> DenseEmbeddings:
        """Teacher embeddings: images (B, 3, H, W) float RGB in [0, 255] -> ``DenseEmbeddings(image
        (B, h*w, E) projected dense patch tokens before L2 normalisation, grid (h, w), text (T, E)
        L2-normalised, cached per class list)``."""
        text = self.text_encoder(self.clip_model, class_names, cached=True)
        tokens, _ = encode_image_dense(self.clip_model, clip_input(images, self.config))
        return DenseEmbeddings(tokens[:, 1:], self.grid, _dense_text(text))


def configure_lpam(model_config: Mapping[str, Any], feeds_decoder: bool, residual: str) -> dict[str, Any]:
    """``Adapter.configure_lpam``: set ``lpam_feeds_decoder`` and ``lpam_residual`` of a CAT-Seg model config."""
    config = {**dict(model_config or {}), "lpam_feeds_decoder": bool(feeds_decoder), "lpam_residual": residual}
    return config


def build_model(model_config: Mapping[str, Any] | None) -> CATSeg:
    """``Adapter.build_model``: the CAT-Seg student with random weights (no download; see ``load_pretrained``)."""
    return CATSeg(model_config)


def build_teacher(model_config: Mapping[str, Any] | None, student: OVSSModel | None = None) -> CATSegTeacher:
    """``Adapter.build_teacher``: the frozen pretrained CLIP, on the student's device.

    With ``clip.pretrained`` set the pretrained weights are loaded (downloaded if needed). With
    ``pretrained: null`` the teacher is the seeded random init (``clip.init_seed``), i.e. exactly the
    student's CLIP as it was built, before any training, also when a run resumes.
    """
    cfg = resolve_model_config(model_config)
    clip_cfg = cfg["clip"]
    return CATSegTeacher(cfg, frozen_clip(clip_cfg["name"], clip_cfg["pretrained"], clip_cfg["init_seed"])).on_device_of(student)
