"""FC-CLIP (NeurIPS'23 code, bytedance/fc-clip @ 2b0bbe2) as an infoclip ``OVSSModel``, and its InfoCLIP teacher.

Module names mirror the official meta-architecture so that official checkpoints map by prefix:
``backbone.clip_model`` (open_clip ConvNeXt CLIP, frozen), ``sem_seg_head.pixel_decoder``,
``sem_seg_head.predictor`` (the decoder and class head) and ``void_embedding``.

Inference (fcclip-reference.md §1.0, §1.5, §1.6): normalise, zero-pad to 32, run the frozen CLIP trunk at
the padded resolution, pixel decoder, decoder; classify every query twice, in-vocabulary (the trained class
head) and out-of-vocabulary (CLIP's own head on the query's mask-pooled dense CLIP features), combine the two
with the geometric ensemble (alpha for seen classes, beta for unseen ones) and void re-weighting, and
compute FC-CLIP's semantic score map ``sum_q p_qc * sigmoid(mask_q)`` in one of the two upsampling orders.

Building never downloads: the CLIP starts from a seeded random init; ``load_pretrained()`` loads the
pretrained tag, ``infoclip.models.load_model`` replaces all weights.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from infoclip.adapters.inputs import check_images, resize_shortest_edge
from infoclip.adapters.contract import CLIP_PART, DenseEmbeddings, EvalProtocol, OVSSModel, TrainOutput
from infoclip.adapters.contract import check_class_list
from infoclip.adapters.fcclip.backbone import ConvNeXtCLIP
from infoclip.adapters.fcclip.config import resolve_model_config
from infoclip.adapters.fcclip.decoder import HeadOutput, MaskedAttentionDecoder, mask_pool, synonym_max_logits
from infoclip.adapters.fcclip.pixel_decoder import MSDeformAttnPixelDecoder
from infoclip.adapters.fcclip.vocabularies import VOCABULARIES, fcclip_vocabulary, seen_classes, split_synonyms
from infoclip.clip import get_tokenizer, load_clip_weights
from infoclip.errors import AdapterError, InputError
from infoclip.mask_classification import SetCriterion, SetCriterionConfig
from infoclip.mask_classification.semantic_inference import semantic_scores as mask_semantic_scores
from infoclip.mask_classification.targets import InstanceLabels, batch_semantic_targets

#: FC-CLIP has one evaluation protocol (segment and eval default to it for FC-CLIP weights)
FCCLIP_PROTOCOLS = (
    EvalProtocol("whole", "FC-CLIP's protocol: short side 800 (long side <= 1333), the whole image in one pass, zero-padded to 32"),
)
_TEXT_CACHE_SIZE = 8


class TextClassifier:
    """FC-CLIP's text classifier: every synonym in every template, averaged over templates, per class list.

    Rows are ordered class -> synonym; each row is ``L2(mean_t L2(encode_text(template_t(synonym))))``.
    Computed without autograd (the text tower is frozen) and cached per class list. Prompts are encoded in
    chunks; with ``truncate`` tokens are cut after the chunk's longest end-of-text token (equal up to float
    rounding: the attention is causal).
    """

    def __init__(self, clip_name: str, templates: Sequence[str], chunk: int, truncate: bool = True) -> None:
        self.tokenizer = get_tokenizer(clip_name)
        self.templates = list(templates)
        self.chunk = chunk
        self.truncate = truncate
        self.cache: OrderedDict[tuple[str, ...], tuple[torch.Tensor, list[int]]] = OrderedDict()
        #: the model's ``text_embedding_cache`` (a TextEmbeddingCache on disk), set before each call; ``None``: none
        self.disk_cache = None

    def clear(self) -> None:
        self.cache.clear()

    @torch.no_grad()
    def __call__(self, backbone: ConvNeXtCLIP, class_names: Sequence[str]) -> tuple[torch.Tensor, list[int]]:
        """``(text (S, E) L2-normalised, synonyms per class)`` for ``class_names``."""
        key = tuple(check_class_list(class_names))
        device = backbone.clip_model.token_embedding.weight.device
        hit = self.cache.get(key)
        if hit is not None and hit[0].device == device:
            self.cache.move_to_end(key)
            return hit
        synonyms = split_synonyms(key)

        def compute() -> torch.Tensor:
            prompts = [template.format(s) for names in synonyms for s in names for template in self.templates]
            rows = []
            for start in range(0, len(prompts), self.chunk):
                tokens = self.tokenizer(prompts[start : start + self.chunk]).to(device)
                if self.truncate:
                    tokens = tokens[:, : int(tokens.argmax(dim=-1).max()) + 1]
                rows.append(backbone.encode_text(tokens).float())
            text = F.normalize(torch.cat(rows), dim=-1).reshape(-1, len(self.templates), rows[0].shape[-1]).mean(1)
            return F.normalize(text, dim=-1)

        cache = self.disk_cache
        text = compute() if cache is None else cache.get_or_compute(self.templates, key, compute, device, truncate=self.truncate)
        entry = (text, [len(s) for s in synonyms])
        self.cache[key] = entry
        if len(self.cache) > _TEXT_CACHE_SIZE:
            self.cache.popitem(last=False)
        return entry


class FCCLIPHead(nn.Module):
    """The official ``FCCLIPHead``: pixel decoder + masked-attention decoder."""

    def __init__(self, channels: Sequence[int], embed_dim: int, config: Mapping[str, Any]) -> None:
        super().__init__()
        pix, dec = config["pixel_decoder"], config["decoder"]
        self.pixel_decoder = MSDeformAttnPixelDecoder(
            channels, pix["conv_dim"], pix["mask_dim"], pix["num_layers"], pix["num_heads"], pix["ffn_dim"], pix["num_points"]
        )
        self.predictor = MaskedAttentionDecoder(
            dec["hidden_dim"], pix["mask_dim"], embed_dim, dec["num_queries"], dec["num_heads"], dec["ffn_dim"], dec["num_layers"]
        )


@dataclass
class FCCLIPOutputs:
    """Everything one forward computes (eval and training alike).

    Attributes:
        features: the CLIP trunk's ``res2..res5`` and ``clip_vis_dense``.
        mask_features: (B, mask_dim, Hp/4, Wp/4); maps: the pixel decoder's [1/32, 1/16, 1/8] maps.
        heads: decoder outputs, first to last (``heads[-1]`` is the prediction).
        text: (S + 1, E) text classifier incl. the normalised void embedding; synonyms: rows per class.
    """

    features: dict[str, torch.Tensor]
    mask_features: torch.Tensor
    maps: list[torch.Tensor]
    heads: list[HeadOutput]
    text: torch.Tensor
    synonyms: list[int]


class FCCLIP(OVSSModel):
    """FC-CLIP: frozen ConvNeXt CLIP, Mask2Former pixel decoder and decoder, in/out-vocabulary ensemble.

    Args:
        config: a ``model:`` section (partial configs are merged onto the ConvNeXt-L defaults, see
            ``configs/fcclip-convnext-l.yaml``).
    """

    adapter_name = "fcclip"
    protocols = FCCLIP_PROTOCOLS
    instance_targets = True  # the set criterion takes one target per panoptic segment (COCO panoptic training)
    score_description = (
        "FC-CLIP's semantic scores sum_q p_qc * sigmoid(mask_q) over the queries, in [0, number of queries]: not "
        "probabilities (the official sem_seg before argmax)"
    )

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        cfg = resolve_model_config(config)
        self.config = cfg
        clip_cfg = cfg["clip"]
        self.backbone = ConvNeXtCLIP(clip_cfg["name"], clip_cfg["init_seed"])
        self.sem_seg_head = FCCLIPHead(self.backbone.channels, self.backbone.embed_dim, cfg)
        self.void_embedding = nn.Embedding(1, self.backbone.embed_dim)
        self.register_buffer("pixel_mean", torch.tensor(clip_cfg["pixel_mean"], dtype=torch.float32).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(clip_cfg["pixel_std"], dtype=torch.float32).view(-1, 1, 1), False)
        vocab = cfg["train_vocabulary"]
        self.train_class_names = fcclip_vocabulary(vocab) if isinstance(vocab, str) and vocab in VOCABULARIES else list(
            [vocab] if isinstance(vocab, str) else vocab
        )
        self._text = TextClassifier(clip_cfg["name"], cfg["prompt_templates"], cfg["inference"]["text_chunk"], cfg["inference"]["text_truncate"])
        self.set_clip_finetuning(clip_cfg["finetune"])

    # ------------------------------------------------------------------ housekeeping
    def model_config(self) -> dict[str, Any]:
        """The complete resolved ``model:`` config (stored in weights files)."""
        return resolve_model_config(self.config)

    @property
    def clip_tag(self) -> str:
        """``"<open_clip name>:<pretrained>"`` (``:random`` for null)."""
        clip_cfg = self.config["clip"]
        return f"{clip_cfg['name']}:{clip_cfg['pretrained'] or 'random'}"

    @property
    def embed_dim(self) -> int:
        """Width D of the dense embeddings and class text embeddings (CLIP's joint space, 768 for ConvNeXt-L)."""
        return self.backbone.embed_dim

    def set_clip_finetuning(self, mode: str) -> None:
        """``"none"``: the whole CLIP is frozen (official); ``"stage4"``: only the last ConvNeXt stage trains."""
        for name, param in self.backbone.clip_model.named_parameters():
            param.requires_grad_(mode == "stage4" and name.startswith("visual.trunk.stages.3."))

    def train(self, mode: bool = True) -> FCCLIP:
        """Training mode for the heads; the CLIP always stays in eval mode (drop-path off, as official)."""
        super().train(mode)
        self.backbone.eval()
        return self

    def _apply(self, fn, *args, **kwargs):  # noqa: ANN001 - nn.Module's signature
        self._text.clear()
        return super()._apply(fn, *args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):  # noqa: ANN001
        self._text.clear()
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def load_pretrained(self, cache_dir: str | None = None) -> Path | None:
        """Load the pretrained CLIP named by ``model.clip.pretrained`` (tag or file); may download.

        Returns the file read, or ``None`` for ``pretrained: null`` (the seeded random init stays).
        """
        clip_cfg = self.config["clip"]
        if not clip_cfg["pretrained"]:
            return None
        self._text.clear()
        return load_clip_weights(self.backbone.clip_model, clip_cfg["name"], clip_cfg["pretrained"], cache_dir)

    @property
    def prompt_templates(self) -> list[str]:
        """``model.prompt_templates``: ViLD's 14 templates in the official model."""
        return list(self.config["prompt_templates"])

    def set_prompt_templates(self, templates: Sequence[str]) -> None:
        """Prompt every synonym with ``templates`` (any number: FC-CLIP averages over them)."""
        templates = list(templates)
        if not templates or not all(isinstance(t, str) and t.count("{}") == 1 for t in templates):
            raise InputError(f"prompt templates must be strings with {{}} exactly once, got {templates!r}")
        self.config["prompt_templates"] = templates
        inf = self.config["inference"]
        self._text = TextClassifier(self.config["clip"]["name"], templates, inf["text_chunk"], inf["text_truncate"])

    def lr_parts(self) -> dict[str, tuple[str, ...]]:
        """The CLIP (frozen, except its last stage with ``clip.finetune: stage4``) trains at the CLIP multiplier."""
        return {CLIP_PART: ("backbone.clip_model",)}

    def parameter_table(self) -> str:
        """Trainable / frozen parameter counts per part (CLIP image and text towers, pixel decoder, decoder, void)."""
        return parameter_table(self)

    # ------------------------------------------------------------------ forward passes
    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float RGB 0-255 -> normalised, zero-padded bottom/right to the size divisibility."""
        check_images(images, "images", 4)
        x = (images.float() - self.pixel_mean) / self.pixel_std
        div = self.config["inference"]["size_divisibility"]
        pad_h, pad_w = (-x.shape[-2]) % div, (-x.shape[-1]) % div
        return F.pad(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x

    def text_classifier(self, class_names: Sequence[str]) -> tuple[torch.Tensor, list[int]]:
        """``(text (S + 1, E), synonyms per class)``: the cached synonym rows plus the normalised void embedding."""
        self._text.disk_cache = None if self.training else self.text_embedding_cache
        text, synonyms = self._text(self.backbone, class_names)
        return torch.cat([text, F.normalize(self.void_embedding.weight, dim=-1)], dim=0), synonyms

    def _clip_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.config["clip"]["finetune"] == "stage4" and torch.is_grad_enabled():
            trunk = self.backbone.clip_model.visual.trunk
            with torch.no_grad():
                feats = {}
                y = trunk.stem(x)
                for i, stage in enumerate(trunk.stages[:3]):
                    y = stage(y)
                    feats[f"res{i + 2}"] = y
            feats["res5"] = trunk.stages[3](y)
            feats["clip_vis_dense"] = trunk.norm_pre(feats["res5"])
            return feats
        with torch.no_grad():
            return self.backbone.features(x)

    def run(self, x: torch.Tensor, class_names: Sequence[str]) -> FCCLIPOutputs:
        """The network on preprocessed images ``x`` (B, 3, Hp, Wp) (see ``preprocess``)."""
        features = self._clip_features(x)
        text, synonyms = self.text_classifier(class_names)
        mask_features, maps = self.sem_seg_head.pixel_decoder(features)
        heads = self.sem_seg_head.predictor(maps, mask_features, text, synonyms)
        return FCCLIPOutputs(features, mask_features, maps, heads, text, synonyms)

    def out_of_vocabulary_logits(self, outputs: FCCLIPOutputs) -> torch.Tensor:
        """(B, Q, C + 1): CLIP's head on each query's mask-pooled ``clip_vis_dense`` vs the text classifier."""
        dense = outputs.features["clip_vis_dense"]
        masks = F.interpolate(outputs.heads[-1].masks, size=dense.shape[-2:], mode="bilinear", align_corners=False)
        region = self.backbone.region_embeddings(mask_pool(dense, masks))
        return synonym_max_logits(region, outputs.text, self.backbone.logit_scale, outputs.synonyms)

    def class_log_probs(self, outputs: FCCLIPOutputs, class_names: Sequence[str]) -> torch.Tensor:
        """FC-CLIP's ensembled per-query class scores ``log(p + 1e-8)``, (B, Q, C + 1), void last.

        ``p_c = softmax_c(ens) * (1 - p_void)`` with ``ens_c = log(p_in^(1-a) p_out^a)`` (a = alpha for seen
        classes, beta for unseen), p_in / p_out the softmax of the in- / out-of-vocabulary logits without the
        void column, and ``p_void`` the void probability of the in-vocabulary softmax over all C + 1.
        """
        in_logits = outputs.heads[-1].logits
        out_logits = self.out_of_vocabulary_logits(outputs)
        p_in = in_logits[..., :-1].softmax(-1)
        p_out = out_logits[..., :-1].softmax(-1)
        seen = torch.tensor(seen_classes(class_names, self.train_class_names), dtype=torch.long, device=p_in.device)
        ens = self.config["ensemble"]
        alpha, beta = ens["alpha"], ens["beta"]
        if ens["log_space"]:
            log_in, log_out = p_in.log(), p_out.log()
            mixed = torch.where(seen.bool(), (1 - alpha) * log_in + alpha * log_out, (1 - beta) * log_in + beta * log_out)
        else:  # as written officially: 0 * log(0) = NaN where a probability underflows
            mixed = (p_in ** (1 - alpha) * p_out**alpha).log() * seen + (p_in ** (1 - beta) * p_out**beta).log() * (1 - seen)
        p_void = in_logits.softmax(-1)[..., -1:]
        probs = torch.cat([mixed.softmax(-1) * (1.0 - p_void), p_void], dim=-1)
        return torch.log(probs + 1e-8)

    def semantic_scores(
        self, class_log_probs: torch.Tensor, mask_logits: torch.Tensor, padded: tuple[int, int], image_size: tuple[int, int],
        output_size: tuple[int, int], before: bool | None = None,
    ) -> torch.Tensor:
        """FC-CLIP's ``semantic_inference`` with its upsampling order, for one image.

        Args:
            class_log_probs: (Q, C + 1) from ``class_log_probs``.
            mask_logits: (Q, Hp/4, Wp/4) mask logits of the last decoder layer.
            padded: (Hp, Wp) the padded input size; image_size: (h, w) the resized image inside it;
            output_size: (H0, W0) the original image size.
            before: crop and resize mask logits before the einsum (A-150/COCO configs) or the score map after
                it (A-847, PC, VOC configs); default ``inference.postprocess_before_inference``.

        Returns:
            (C, H0, W0) float ``sum_q softmax(class_log_probs)[q, c] * sigmoid(mask_q)``, void dropped.
        """
        before = self.config["inference"]["postprocess_before_inference"] if before is None else before
        h, w = image_size
        masks = F.interpolate(mask_logits[None], size=padded, mode="bilinear", align_corners=False)[0]
        if before:
            masks = F.interpolate(masks[None, :, :h, :w], size=output_size, mode="bilinear", align_corners=False)[0]
            return mask_semantic_scores(class_log_probs[None], masks[None])[0]
        scores = mask_semantic_scores(class_log_probs[None], masks[None])
        return F.interpolate(scores[:, :, :h, :w], size=output_size, mode="bilinear", align_corners=False)[0]

    def forward(self, images: torch.Tensor, class_names: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Ensembled class scores and mask logits of a batch.

        Args:
            images: (B, 3, H, W) float RGB in [0, 255] (padded here to the size divisibility).

        Returns:
            ``(class_log_probs (B, Q, C + 1), mask_logits (B, Q, Hp/4, Wp/4))``.
        """
        outputs = self.run(self.preprocess(images), class_names)
        return self.class_log_probs(outputs, class_names), outputs.heads[-1].masks

    # ------------------------------------------------------------------ training
    def student_embeddings(self, outputs: FCCLIPOutputs, detach_weights: bool = True) -> torch.Tensor:
        """The in-vocabulary branch's region embeddings spread back onto CLIP's 1/32 grid (reference §6).

        ``D(p) = sum_q w_q(p) e_q / (sum_q w_q(p) + 1e-6)`` with ``e_q`` the normalised last-layer class
        embedding and ``w_q = avgpool8(sigmoid(mask_q)) * (1 - p_void,q)`` (detached by default, so only the
        classification space is distilled). Returns (B, h*w, E), h, w = Hp/32, Wp/32.
        """
        head = outputs.heads[-1]
        grid = outputs.features["clip_vis_dense"].shape[-2:]
        masks = F.adaptive_avg_pool2d(head.masks.sigmoid(), grid)
        p_void = head.logits.softmax(-1)[..., -1]
        weights = masks * (1 - p_void)[..., None, None]
        if detach_weights:
            weights = weights.detach()
        e = F.normalize(head.embeddings, dim=-1)
        dense = torch.einsum("bqhw,bqe->bhwe", weights, e) / (weights.sum(1)[..., None] + 1e-6)
        return dense.flatten(1, 2)

    def forward_train(self, images: torch.Tensor, class_names: Sequence[str], lpam: nn.Module | None = None) -> TrainOutput:
        """Training forward: the in-vocabulary semantic map and the student's embeddings of the same pass.

        Training uses the in-vocabulary branch only (no ensemble), as the official code does.

        Args:
            images: (B, 3, H, W) float RGB in [0, 255] (padded here to the size divisibility).
            class_names: the T training class names (synonyms comma-separated).
            lpam: unused: FC-CLIP's decoder has no alignment map to replace, the LPAM only feeds the losses.

        Returns:
            ``TrainOutput(logits (B, T, Hp/4, Wp/4) = log of sum_q softmax(in-vocab logits)_qc sigmoid(mask_q)
            (void dropped, clamped at 1e-8), DenseEmbeddings(student (B, h*w, E), grid (Hp/32, Wp/32), text (T, E)))``.
            The decoder outputs of this pass are kept for ``task_loss`` (the set criterion needs every query).
        """
        outputs = self.run(self.preprocess(images), class_names)
        head = outputs.heads[-1]
        logits = torch.log(mask_semantic_scores(head.logits, head.masks).clamp(min=1e-8))
        self._train_pass = (logits, outputs)
        grid = tuple(outputs.features["clip_vis_dense"].shape[-2:])
        embeddings = DenseEmbeddings(self.student_embeddings(outputs), grid, class_text(outputs.text, outputs.synonyms))
        return TrainOutput(logits, embeddings)

    def task_loss(self, logits: torch.Tensor, labels: torch.Tensor | InstanceLabels) -> torch.Tensor:
        """FC-CLIP's loss: Mask2Former's set criterion (``model.criterion``) over the final and auxiliary decoder
        outputs of the ``forward_train`` pass that produced ``logits``. Targets: with ``InstanceLabels`` (COCO
        panoptic, the official recipe) one mask per non-crowd segment; with a semantic label map one mask per
        class present (``IGNORE_INDEX`` pixels belong to no mask). Random points come from the global generator
        (restored on resume by the engine).

        Args:
            logits: the ``TrainOutput.logits`` of the latest ``forward_train`` (B, T, h, w).
            labels: (B, H, W) int64 in {-1, 0..T-1} at the input resolution, or ``InstanceLabels`` of that size.

        Returns:
            Scalar float: the sum of the weighted terms (30 with 9 auxiliary outputs).
        """
        if logits.ndim != 4 or len(labels.shape) != 3 or labels.shape[0] != logits.shape[0]:
            raise InputError(f"task_loss needs logits (B, T, h, w) and labels (B, H, W), got {tuple(logits.shape)} and {tuple(labels.shape)}")
        if not isinstance(labels, InstanceLabels) and labels.dtype != torch.long:
            raise InputError(f"labels must be int64, got {labels.dtype}")
        last = getattr(self, "_train_pass", None)
        if last is None or last[0] is not logits:
            raise AdapterError("FC-CLIP's task_loss needs the logits of the latest forward_train (its set loss reads every query of that pass)")
        outputs = last[1]
        self._train_pass = None
        t = logits.shape[1]
        try:
            if isinstance(labels, InstanceLabels):
                if int(labels.classes.max()) >= t:
                    raise ValueError(f"instance labels hold class {int(labels.classes.max())}, beyond the {t} class names")
                targets = labels.targets()
            else:
                targets = batch_semantic_targets(labels, t)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        heads = outputs.heads
        criterion = SetCriterion(SetCriterionConfig.from_mapping(self.config["criterion"], num_classes=t)).to(logits.device)
        packed = {
            "pred_logits": heads[-1].logits,
            "pred_masks": heads[-1].masks,
            "aux_outputs": [{"pred_logits": h.logits, "pred_masks": h.masks} for h in heads[:-1]],
        }
        return criterion(packed, targets).total

    # ------------------------------------------------------------------ prediction
    @torch.no_grad()
    def predict(self, image: torch.Tensor, class_names: Sequence[str], protocol: str = "whole") -> torch.Tensor:
        """FC-CLIP's semantic score map of one image with its evaluation protocol (reference §3).

        detectron2's ``ResizeShortestEdge(800, max 1333)`` on the 8-bit image (PIL bilinear), the whole image
        in one pass (zero-padded to 32), ensemble, semantic inference in the configured upsampling order, at the
        original size. FC-CLIP has one protocol, ``"whole"`` (``FCCLIP_PROTOCOLS``).

        Args (trusted, as ``OVSSModel.predict`` documents: the entry points checked them):
            image: (3, H, W) float (or uint8) RGB in [0, 255].
            class_names: T >= 1 class names (synonyms comma-separated, as in FC-CLIP's vocabularies).
            protocol: ``"whole"``.

        Returns:
            (T, H, W) float32 scores ``sum_q p_qc sigmoid(mask_q)``, in [0, Q] (the official ``sem_seg``; argmax
            gives the labels; not a probability: it sums over queries).
        """
        names = list(class_names)  # checked by the entry points (OVSSModel.predict's contract)
        height, width = image.shape[-2:]
        was_training = self.training
        self.eval()
        try:
            inf = self.config["inference"]
            device = self.pixel_mean.device
            resized = resize_shortest_edge(image, inf["test_short_side"], inf["test_max_size"]).to(device)
            x = self.preprocess(resized[None])
            outputs = self.run(x, names)
            cls = self.class_log_probs(outputs, names)
            scores = self.semantic_scores(cls[0], outputs.heads[-1].masks[0], tuple(x.shape[-2:]), tuple(resized.shape[-2:]), (height, width))
        finally:
            self.train(was_training)
        return scores.float()


def class_text(text: torch.Tensor, synonyms: Sequence[int]) -> torch.Tensor:
    """One row per class from FC-CLIP's synonym rows: ``L2(mean of the class's synonym rows)``, void dropped.

    Args:
        text: (S + 1, E) normalised rows (void last); synonyms: rows per class.

    Returns:
        (C, E) L2-normalised.
    """
    rows = text[:-1].split(list(synonyms))
    return F.normalize(torch.stack([r.mean(0) for r in rows]), dim=-1)


class FCCLIPTeacher(nn.Module):
    """The frozen ConvNeXt CLIP of FC-CLIP's dense mode: CLIP's image head per pixel on ``clip_vis_dense``.

    It owns its copy of the CLIP (the engine casts the teacher to its precision, which must not touch the
    student). With ``clip.finetune: none`` that copy equals the student's frozen CLIP; with ``stage4`` it is the
    pretrained CLIP the student's last stage starts from.
    """

    def __init__(self, config: Mapping[str, Any], backbone: ConvNeXtCLIP, text: TextClassifier) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone
        self._text = text
        self.backbone.requires_grad_(False)
        self.register_buffer("pixel_mean", torch.tensor(config["clip"]["pixel_mean"], dtype=torch.float32).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(config["clip"]["pixel_std"], dtype=torch.float32).view(-1, 1, 1), False)

    def train(self, mode: bool = True) -> FCCLIPTeacher:
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor, class_names: Sequence[str]) -> DenseEmbeddings:
        """images (B, 3, H, W) float RGB 0-255 -> ``DenseEmbeddings(image (B, h*w, E) per-pixel CLIP head on
        res5 (not normalised), grid (Hp/32, Wp/32), text (T, E) per-class synonym means, normalised)``."""
        check_images(images, "images", 4)
        x = (images.float() - self.pixel_mean) / self.pixel_std
        div = self.config["inference"]["size_divisibility"]
        x = F.pad(x, (0, (-x.shape[-1]) % div, 0, (-x.shape[-2]) % div))
        dense = self.backbone.features(x)["clip_vis_dense"]
        text, synonyms = self._text(self.backbone, class_names)
        rows = torch.cat([text, text.new_zeros(1, text.shape[1])])
        return DenseEmbeddings(self.backbone.dense_embeddings(dense), tuple(dense.shape[-2:]), class_text(rows, synonyms))


def parameter_table(model: FCCLIP) -> str:
    """Trainable / frozen parameter counts per part, as a small text table."""
    parts = {
        "CLIP image tower": model.backbone.clip_model.visual,
        "CLIP text tower": None,
        "pixel decoder": model.sem_seg_head.pixel_decoder,
        "decoder + heads": model.sem_seg_head.predictor,
        "void embedding": model.void_embedding,
    }
    visual_ids = {id(p) for p in model.backbone.clip_model.visual.parameters()}
    lines = [f"{'part':<18} {'trainable':>13} {'frozen':>13}"]
    for name, module in parts.items():
        if module is None:
            params = [p for p in model.backbone.clip_model.parameters() if id(p) not in visual_ids]
        else:
            params = list(module.parameters())
        train = sum(p.numel() for p in params if p.requires_grad)
        frozen = sum(p.numel() for p in params if not p.requires_grad)
        lines.append(f"{name:<18} {train:>13,} {frozen:>13,}")
    total_t = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total_f = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    lines.append(f"{'total':<18} {total_t:>13,} {total_f:>13,}")
    return "\n".join(lines)


def build_model(model_config: Mapping[str, Any] | None) -> FCCLIP:
    """``Adapter.build_model``: FC-CLIP with random weights (no download; see ``load_pretrainedip``)."""
    return FCCLIP(model_config)


def build_teacher(model_config: Mapping[str, Any] | None, student: OVSSModel | None = None) -> FCCLIPTeacher:
    """``Adapter.build_teacher``: the frozen pretrained ConvNeXt CLIP in FC-CLIP's dense mode.

    The pretrained tag when ``clip.pretrained`` is set (downloaded if needed), else the seeded random init,
    i.e. the student's CLIP as it was built, also when a run resumes.
    """
    cfg = resolve_model_config(model_config)
    if student is not None and not isinstance(student, FCCLIP):
        raise AdapterError(f"the FC-CLIP teacher needs an FC-CLIP student, got {type(student).__name__}")
    backbone = ConvNeXtCLIP(cfg["clip"]["name"], cfg["clip"]["init_seed"])
    if cfg["clip"]["pretrained"]:
        load_clip_weights(backbone.clip_model, cfg["clip"]["name"], cfg["clip"]["pretrained"])
    teacher = FCCLIPTeacher(cfg, backbone, TextClassifier(cfg["clip"]["name"], cfg["prompt_templates"], cfg["inference"]["text_chunk"], cfg["inference"]["text_truncate"]))
    if student is not None:
        teacher = teacher.to(student.pixel_mean.device)
    return teacher
