"""SAN (CVPR'23, MendelXu/SAN @ e19262d) as an infoclip ``OVSSModel``, and its frozen InfoCLIP teacher.

Modules: ``clip_model`` (one open_clip CLIP, batch-first, split Q/K/V; the official code spreads it over
``clip_visual_extractor``, ``clip_rec_head`` and ``ov_classifier``), ``bg_embed`` (the learnable
background row of the classifier, official ``ov_classifier.bg_embed``) and ``side_adapter_network``
(official names). Data flow (san-reference.md §1.0): normalise -> pad to 32 -> CLIP at ``resolution_scale``
(blocks 0..N_f-1) -> side adapter on the full image with the CLIP features fused in -> masks and attention
biases -> recognition blocks N_f.. on [SOS | CLS | patches] -> mask embeddings -> logits against the
(T + 1) classifier -> semantic map ``sum_q softmax(class_q)[:T] * sigmoid(mask_q)``.

Building never downloads: CLIP starts from a seeded random init and ``load_pretrained()`` loads the
pretrained weights when a trainer starts from them; ``infoclip.models.load_model`` replaces all weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from infoclip.adapters.clip_model import OpenCLIPModel
from infoclip.adapters.contract import CLIP_PART, DenseEmbeddings, EvalProtocol, OVSSModel, TrainOutput
from infoclip.adapters.inputs import check_images, resize_shortest_edge
from infoclip.adapters.parameters import WeightDecayPolicy, count_parameters, format_parameter_table
from infoclip.adapters.san.classifier import TemplateTextEncoder, classifier_weights
from infoclip.adapters.san.config import resolve_model_config
from infoclip.adapters.san.recognition import extract_features, feature_map, recognize
from infoclip.adapters.san.side_adapter import SideAdapterNetwork
from infoclip.clip import build_clip, normalize_images
from infoclip.clip.teacher import FrozenCLIPTeacher, frozen_clip
from infoclip.errors import ConfigError, InputError

#: SAN evaluates the whole image (no sliding window)
PROTOCOLS = (EvalProtocol("whole", "short side 640 (long side at most 2560), the whole image at once, padded to 32"),)
#: parameter names SAN trains without weight decay (its SOLVER.WEIGHT_DECAY_EMBED_GROUP)
NO_DECAY_NAMES = ("absolute_pos_embed", "positional_embedding", "pos_embed", "query_embed", "relative_position_bias_table")


class SANDecayPolicy(WeightDecayPolicy):
    """SAN's ``build_optimizer`` rule: position tables and query embeddings (``NO_DECAY_NAMES``) decay at the
    embedding rate (0), normalisation layers at the norm rate, everything else, biases included, at the base
    rate (SAN's own channels-first ``LayerNorm2d`` is not an ``nn.LayerNorm``, so it decays too)."""

    def decay_of(self, module: nn.Module, param_name: str) -> float:
        if any(tag in param_name for tag in NO_DECAY_NAMES) and not isinstance(module, nn.Embedding):
            return self.embed
        return super().decay_of(module, param_name)


def set_clip_finetuning(clip_model: nn.Module, mode: str, feature_layers: int) -> None:
    """``requires_grad`` of CLIP's parameters by fine-tuning mode (san-reference.md §7).

    ``"san"``: only ``visual.positional_embedding`` (SAN as published); ``"qv_rec"``: also the Q and V
    weights of the recognition blocks (``feature_layers`` and deeper); ``"qv_all"``: also Q and V of every
    visual block. The text tower, K, biases, MLPs, norms and projections stay frozen.
    """
    for name, param in clip_model.named_parameters():
        train = name == "visual.positional_embedding"
        if mode != "san" and name.startswith("visual.transformer.resblocks.") and name.endswith(("attn.q_proj_weight", "attn.v_proj_weight")):
            block = int(name.split(".")[3])
            train = mode == "qv_all" or block >= feature_layers
        param.requires_grad_(train)


def san_clip_input(images: torch.Tensor, config: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """The two inputs SAN derives from a batch: the padded image (side adapter) and CLIP's view of it.

    Args:
        images: (B, 3, H, W) float RGB in [0, 255].
        config: a resolved SAN model config.

    Returns:
        ``(padded, clip_view)``: padded (B, 3, Hp, Wp) normalised, zero-padded bottom/right to the size
        divisibility (after normalisation, as detectron2's ImageList); clip_view = bilinear resize of it by
        ``resolution_scale`` passed as ``scale_factor`` (which maps coordinates by 1/scale, as SAN does).
    """
    check_images(images, "images", 4)
    x = normalize_images(images.float(), config["clip"]["pixel_mean"], config["clip"]["pixel_std"])
    div = config["inference"]["size_divisibility"]
    pad_h, pad_w = (-x.shape[-2]) % div, (-x.shape[-1]) % div
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))
    clip_view = F.interpolate(x, scale_factor=config["clip"]["resolution_scale"], mode="bilinear", align_corners=False)
    return x, clip_view


class SAN(OpenCLIPModel):
    """SAN: frozen CLIP + side-adapter network + recognition head with attention bias.

    Args:
        config: a ``model:`` section (partial configs are merged onto the ViT-B/16 defaults, see
            ``configs/san-vit-b16.yaml``).

    Shapes (ViT-B/16, 640 x 640 crop): CLIP view 320 x 320 -> 20 x 20 tokens; side adapter 40 x 40 tokens
    and Q = 100 queries; ``pred_logits`` (B, Q, T + 1); ``pred_masks`` (B, Q, 40, 40).
    """

    adapter_name = "san"
    protocols = PROTOCOLS
    score_description = (
        "SAN's semantic map before its argmax: sum over the queries of softmax(class logits)[c] * sigmoid(mask "
        "logit), in [0, number of queries]; not normalised over classes (divide by the per-pixel sum for shares)"
    )

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        cfg = resolve_model_config(config)
        self.config = cfg
        clip_cfg, side, dec = cfg["clip"], cfg["side_adapter"], cfg["mask_decoder"]
        self.clip_model = build_clip(clip_cfg["name"], init_seed=clip_cfg["init_seed"])
        visual = self.clip_model.visual
        blocks = visual.transformer.resblocks
        self.feature_layers = clip_cfg["feature_layers"]
        if self.feature_layers >= len(blocks):
            raise ConfigError(
                f"model.clip.feature_layers {self.feature_layers} leaves no recognition block in the "
                f"{len(blocks)}-block image tower of {clip_cfg['name']}"
            )
        text_width = self.clip_model.text_projection.shape[0]
        embed = visual.proj.shape[1]
        if text_width != embed:  # the official background row has the text width (san-reference §1.7)
            raise ConfigError(f"SAN needs a CLIP whose text width ({text_width}) equals its embedding width ({embed})")
        self.bg_embed = nn.Parameter(torch.randn(1, text_width) * text_width**-0.5)
        self.side_adapter_network = SideAdapterNetwork(
            clip_width=visual.conv1.out_channels,
            clip_heads=blocks[0].attn.num_heads,
            width=side["width"],
            depth=side["depth"],
            num_heads=side["num_heads"],
            patch_size=side["patch_size"],
            image_size=side["image_size"],
            num_queries=side["num_queries"],
            fusion_map=side["fusion_map"],
            deep_supervision=side["deep_supervision"],
            embed_channels=dec["embed_channels"],
            mlp_channels=dec["mlp_channels"],
            mlp_num_layers=dec["mlp_num_layers"],
        )
        self.text_encoder = TemplateTextEncoder(clip_cfg["name"], cfg["prompt_templates"])
        self._criterion: nn.Module | None = None
        set_clip_finetuning(self.clip_model, clip_cfg["finetune"], self.feature_layers)

    # ------------------------------------------------------------------ housekeeping
    def clip_settings(self) -> Mapping[str, Any]:
        """``model.clip`` (architecture ``name``, ``pretrained`` weights)."""
        return self.config["clip"]

    def model_config(self) -> dict[str, Any]:
        """The complete resolved ``model:`` config (stored in weights files; rebuilds this architecture)."""
        return resolve_model_config(self.config)

    def train(self, mode: bool = True) -> SAN:
        """Training mode decodes every deep-supervision output; eval only the last. The text tower is frozen
        in every fine-tuning mode, so its cached embeddings stay valid."""
        return super().train(mode)

    @property
    def prompt_templates(self) -> list[str]:
        """``model.prompt_templates``: the 14 ViLD templates of the official configs."""
        return list(self.config["prompt_templates"])

    def set_prompt_templates(self, templates: Sequence[str]) -> None:
        """Prompt with ``templates`` (any number: their embeddings are averaged); drops the cached text.

        Raises:
            InputError: a template without exactly one ``{}``, or none at all.
        """
        templates = list(templates)
        if not templates or not all(isinstance(t, str) and t.count("{}") == 1 for t in templates):
            raise InputError(f"prompt templates must be strings with {{}} exactly once, got {templates!r}")
        self.config["prompt_templates"] = templates
        self.text_encoder = TemplateTextEncoder(self.config["clip"]["name"], templates)

    def lr_parts(self) -> dict[str, tuple[str, ...]]:
        """The CLIP blocks (the Q/V weights that ``qv_rec`` / ``qv_all`` train) form the ``clip`` part, at
        ``solver.clip_lr_multiplier``; the position table (a parameter of ``clip_model.visual`` itself), the side
        adapter and the background row train at the base rate, as in SAN (CLIP_MULTIPLIER 1.0)."""
        return {CLIP_PART: ("clip_model.visual.transformer", "clip_model.transformer")}

    def param_groups(
        self,
        base_lr: float,
        weight_decay: WeightDecayPolicy | float = 0.0,
        lr_multipliers: Mapping[str, float] | None = None,
    ) -> list[dict[str, Any]]:
        """Optimizer groups by ``lr_parts`` with SAN's weight-decay rule (``SANDecayPolicy``: no decay on the
        position tables and query embeddings)."""
        given = weight_decay if isinstance(weight_decay, WeightDecayPolicy) else WeightDecayPolicy(float(weight_decay))
        policy = SANDecayPolicy(given.weight_decay, given.norm, given.bias, given.embed)
        return super().param_groups(base_lr, policy, lr_multipliers)

    def parameter_table(self) -> str:
        """Trainable / frozen parameter counts per part (CLIP towers, side adapter, background row) and the
        CLIP fine-tuning mode with the kinds of CLIP tensors that train."""
        return parameter_table(self)

    # ------------------------------------------------------------------ forward passes
    def text_embeddings(self, class_names: Sequence[str]) -> torch.Tensor:
        """(T, D) L2-normalised class embeddings of the frozen text tower (14-template mean), cached."""
        return self.text_encoder(self.clip_model, class_names)

    def classifier(self, class_names: Sequence[str]) -> torch.Tensor:
        """(T + 1, D) L2-normalised classifier rows, the learnable background row last."""
        return classifier_weights(self.text_embeddings(class_names), self.bg_embed)

    def forward_outputs(
        self, images: torch.Tensor, class_names: Sequence[str], tap: bool = False
    ) -> tuple[dict[str, Any], torch.Tensor | None, tuple[int, int]]:
        """SAN's raw outputs for images already at their working size.

        Args:
            images: (B, 3, H, W) float RGB in [0, 255].
            class_names: T class names.
            tap: also return the dense student embeddings of the last recognition pass.

        Returns:
            ``(outputs, dense, grid)``: outputs ``{"pred_logits": (B, Q, T + 1), "pred_masks": (B, Q, Hp/p,
            Wp/p), "aux_outputs": [{...}] (earlier deep-supervision outputs, training only)}`` with Hp, Wp
            the padded size; dense (B, h*w, D) or ``None``; grid (h, w) of CLIP's view.
        """
        padded, clip_view = san_clip_input(images, self.config)
        visual = self.clip_model.visual
        tokens, grid = extract_features(visual, clip_view, self.feature_layers)
        maps = [feature_map(t, grid) for t in tokens]
        masks, biases = self.side_adapter_network(padded, maps)
        weights = self.clip_model.logit_scale.exp() * self.classifier(class_names)
        logits, dense = [], None
        for i, bias in enumerate(biases):
            last = i == len(biases) - 1
            embeddings, tapped = recognize(visual, tokens[self.feature_layers], bias, grid, self.feature_layers, tap and last)
            logits.append(torch.einsum("bqc,nc->bqn", embeddings, weights.to(embeddings.dtype)))
            dense = tapped if last else dense
        outputs: dict[str, Any] = {"pred_logits": logits[-1], "pred_masks": masks[-1]}
        outputs["aux_outputs"] = [{"pred_logits": c, "pred_masks": m} for c, m in zip(logits[:-1], masks[:-1])]
        return outputs, dense, grid

    def forward(self, images: torch.Tensor, class_names: Sequence[str]) -> dict[str, Any]:
        """``forward_outputs(images, class_names)[0]``: the raw outputs dict (see there)."""
        return self.forward_outputs(images, class_names)[0]

    def forward_train(self, images: torch.Tensor, class_names: Sequence[str], lpam: nn.Module | None = None) -> TrainOutput:
        """Training forward: SAN's outputs and the student's embeddings of the same pass.

        Args:
            images: (B, 3, H, W) float RGB in [0, 255] (640 x 640 crops in the recipe).
            class_names: the T training class names.
            lpam: unused (SAN's decoder never takes the LPAM map).

        Returns:
            ``TrainOutput(outputs dict (see forward_outputs), DenseEmbeddings(image (B, h*w, D) = tokens
            entering the last recognition block through the dense last block, ln_post and proj, not
            normalised; grid (h, w); text (T, D) = the classifier's class rows without the background row))``.
        """
        outputs, dense, grid = self.forward_outputs(images, class_names, tap=True)
        return TrainOutput(outputs, DenseEmbeddings(dense, grid, self.text_embeddings(class_names)))

    def task_loss(self, logits: Mapping[str, Any], labels: torch.Tensor) -> torch.Tensor:
        """SAN's Hungarian set criterion (Mask2Former's) on the outputs of ``forward_outputs``.

        Args:
            logits: the outputs dict (``pred_logits`` (B, Q, T + 1), ``pred_masks``, ``aux_outputs``).
            labels: (B, H, W) int64 semantic labels in {-1, 0, ..., T-1} at the input size (-1: ignore).

        Returns:
            Scalar float: the weighted sum of class CE, mask BCE and dice over the final and auxiliary outputs.
        """
        from infoclip.adapters.san.loss import san_set_loss

        return san_set_loss(self, logits, labels)

    # ------------------------------------------------------------------ prediction
    @torch.no_grad()
    def semantic_scores(self, image: torch.Tensor, class_names: Sequence[str], size: tuple[int, int]) -> torch.Tensor:
        """SAN's per-class score map of one image at its working size, resized to ``size``.

        Masks (logits) are upsampled bilinearly to the padded size, cropped to the un-padded size, resized
        bilinearly to ``size``; then ``score[c] = sum_q softmax(class_q)[c] * sigmoid(mask_q)`` for c < T.

        Args:
            image: (3, h, w) float RGB in [0, 255] at the working size.
            class_names: T class names.
            size: (H, W) output size.

        Returns:
            (T, H, W) float32 scores in [0, Q] (not probabilities: one sigmoid per query is summed).
        """
        outputs = self(image.unsqueeze(0), class_names)
        h, w = image.shape[-2:]
        padded = (h + (-h) % self.config["inference"]["size_divisibility"], w + (-w) % self.config["inference"]["size_divisibility"])
        masks = F.interpolate(outputs["pred_masks"], size=padded, mode="bilinear", align_corners=False)
        masks = F.interpolate(masks[..., :h, :w], size=size, mode="bilinear", align_corners=False)[0]
        classes = outputs["pred_logits"][0].softmax(dim=-1)[:, :-1]
        return torch.einsum("qc,qhw->chw", classes, masks.sigmoid()).float()

    @torch.no_grad()
    def predict(self, image: torch.Tensor, class_names: Sequence[str], protocol: str = "whole") -> torch.Tensor:
        """SAN's per-class scores of one image with its benchmark protocol (san-reference.md §3.1, §1.8).

        detectron2's ``ResizeShortestEdge(640, max 2560)`` on the 8-bit image (PIL bilinear), the whole image
        at once (padded to 32), the semantic map at the image's original size. Runs in eval mode (restored).

        Args (trusted, as ``OVSSModel.predict`` documents: the entry points checked them):
            image: (3, H, W) float (or uint8) RGB in [0, 255].
            class_names: T >= 1 class names.
            protocol: ``"whole"`` (SAN has no other).

        Returns:
            (T, H, W) float32 scores in [0, Q]: ``sum_q softmax(class_q)[c] * sigmoid(mask_q)``, exactly what
            the official inference takes the argmax of. Divide by the per-pixel sum for probabilities.
        """
        names = list(class_names)  # checked by the entry points (OVSSModel.predict's contract)
        height, width = image.shape[-2:]
        was_training = self.training
        self.eval()
        try:
            inf = self.config["inference"]
            device = next(self.parameters()).device
            resized = resize_shortest_edge(image, inf["test_short_side"], inf["test_max_size"]).to(device)
            return self.semantic_scores(resized, names, (height, width))
        finally:
            self.train(was_training)


def _table_label(name: str) -> str:
    if name.startswith("clip_model.visual."):
        return "CLIP image tower"
    if name.startswith("clip_model."):
        return "CLIP text tower"
    if name.startswith("side_adapter_network."):
        return "side adapter"
    return "background row"


def parameter_table(model: SAN) -> str:
    """Trainable / frozen parameter counts per part of a ``SAN`` model, as an aligned text table."""
    labels = ("CLIP image tower", "CLIP text tower", "side adapter", "background row")
    counts = count_parameters(model, _table_label, labels)
    kinds = {n.rsplit(".", 1)[-1] for n, p in model.named_parameters() if p.requires_grad and n.startswith("clip_model.")}
    footer = f"CLIP fine-tuning: {model.config['clip']['finetune']} (trainable CLIP tensors: {', '.join(sorted(kinds)) or 'none'})"
    return format_parameter_table(counts, [footer])


class SANTeacher(FrozenCLIPTeacher):
    """InfoCLIP's teacher for SAN: a frozen pretrained CLIP run the way the student's dense tap runs (same
    normalisation, padding and ``scale_factor`` resize, pretrained position table resized bicubic without
    antialias, blocks 0..N-2, dense last block, ``ln_post``, ``proj``), and SAN's text recipe (14 templates,
    raw names, template mean) without the background row. Always in eval mode, never trained or exported.
    """

    def __init__(self, config: Mapping[str, Any], clip_model: nn.Module) -> None:
        config = resolve_model_config(config)
        super().__init__(clip_model, TemplateTextEncoder(config["clip"]["name"], config["prompt_templates"]))
        self.config = config

    @torch.no_grad()
    def forward(self, images: torch.Tensor, class_names: Sequence[str]) -> DenseEmbeddings:
        """images (B, 3, H, W) float RGB in [0, 255] -> ``DenseEmbeddings(image (B, h*w, D) not normalised,
        grid (h, w) as the student's, text (T, D) L2-normalised)``."""
        from infoclip.clip import encode_image_dense

        _, clip_view = san_clip_input(images, self.config)
        tokens, _ = encode_image_dense(self.clip_model, clip_view)
        patch = self.clip_model.visual.patch_size[0]
        grid = (clip_view.shape[-2] // patch, clip_view.shape[-1] // patch)
        return DenseEmbeddings(tokens[:, 1:], grid, self.text_encoder(self.clip_model, class_names))


def build_model(model_config: Mapping[str, Any] | None) -> SAN:
    """``Adapter.build_model``: the SAN student with random weights (no download; see ``load_pretrained``)."""
    return SAN(model_config)


def build_teacher(model_config: Mapping[str, Any] | None, student: OVSSModel | None = None) -> SANTeacher:
    """``Adapter.build_teacher``: the frozen pretrained CLIP (the seeded random init for ``pretrained: null``),
    on the student's device."""
    cfg = resolve_model_config(model_config)
    clip_cfg = cfg["clip"]
    return SANTeacher(cfg, frozen_clip(clip_cfg["name"], clip_cfg["pretrained"], clip_cfg["init_seed"])).on_device_of(student)
