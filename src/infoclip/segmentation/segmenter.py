"""Segment your own images with your own class names: ``Segmenter`` and ``SegmentationResult``.

    >>> from infoclip import Segmenter                                  # doctest: +SKIP
    >>> seg = Segmenter.from_pretrained("catseg-b16")                    # doctest: +SKIP
    >>> result = seg.predict("cat.jpg", ["cat", "sofa", "floor"])        # doctest: +SKIP
    >>> result.labels.shape, result.probs.shape                         # doctest: +SKIP
    ((480, 640), (3, 480, 640))
    >>> result.overlay().save("cat_overlay.png")                        # doctest: +SKIP
    >>> result.save("out/")        # out/cat.png, out/cat_overlay.png, out/cat.json  # doctest: +SKIP

Without segmentation weights, ``Segmenter.from_clip("ViT-B-16:openai")`` runs the training-free dense-CLIP
baseline (``infoclip.segmentation.baseline``); everything it writes says so.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from infoclip.adapters.contract import OVSSModel, check_prediction_inputs
from infoclip.errors import AdapterError, InputError
from infoclip.io_utils import atomic_write, atomic_write_text
from infoclip.runtime import PRECISIONS, autocast, check_precision, resolve_device
from infoclip.segmentation.classes import parse_classes
from infoclip.segmentation.background import BACKGROUND, expansion_names
from infoclip.segmentation.synonyms import SYNONYM_SEPARATOR
from infoclip.segmentation.images import image_name, load_image
from infoclip.segmentation.options import OptionedPredictor, SegmentOptions
from infoclip.segmentation.outputs import (
    BACKGROUND_GREY,
    MAX_INDEXED_CLASSES,
    class_statistics,
    coco_rle_records,
    save_indexed_png,
)
from infoclip.segmentation.outputs import save_probs as _write_probs
from infoclip.segmentation.outputs import to_hf as _to_hf
from infoclip.segmentation.overlay import draw_overlay, palette, pixel_shares
from infoclip.segmentation.text_cache import TextEmbeddingCache, file_identity

#: a label map is stored as uint8 up to this many classes (labels 0..254; 255 stays free for "ignore" tools)
UINT8_MAX_CLASSES = 255


def _checked_device(device: str | torch.device | None, precision: str) -> torch.device:
    resolved = resolve_device(device)
    check_precision(precision, resolved)
    return resolved


# --------------------------------------------------------------------------------------------------------------
# results


def label_map_dtype(num_classes: int) -> type[np.unsignedinteger[Any]]:
    """uint8 for up to 255 classes, uint16 above (up to 65535 classes)."""
    if num_classes > np.iinfo(np.uint16).max:
        raise InputError(f"{num_classes} classes do not fit a 16-bit label map (at most 65535)")
    return np.uint8 if num_classes <= UINT8_MAX_CLASSES else np.uint16


def check_output_dir(output_dir: str | os.PathLike[str]) -> Path:
    """Create ``output_dir`` if needed and check that files can be written into it.

    Raises:
        InputError: one line saying which folder cannot be written and why.
    """
    folder = Path(output_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = atomic_write_text(folder / ".infoclip-write-test", "")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise InputError(f"cannot write to output folder {folder}: {reason}") from exc
    return folder


@dataclass
class SegmentationResult:
    """The segmentation of one image.

    Attributes:
        image: (H, W, 3) uint8 RGB, the image as segmented (EXIF orientation applied).
        probs: (T, H, W) float32 per-class probabilities of the protocol, at the image's size (with a
            vocabulary expansion the last class is ``"other"``, the best score of the expansion's names).
        labels: (H, W) int64 class indices in [0, T): the argmax of ``probs``; ``BACKGROUND`` (-1) where the
            best score is below the background threshold.
        classes: the T class names, in label order (``"other"`` last with a vocabulary expansion).
        protocol: the protocol's name (one of the model's ``protocols``).
        source: what produced it: the weights path, or ``"training-free baseline: MODEL:TAG"``.
        name: the stem used for output files (the image file's stem, ``"image"`` for in-memory images).
        template: the prompt template used (``None`` when the model uses several or does not say).
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        device: the device it ran on.
        seconds: wall time of the prediction (model only, not loading or writing).
        extra: ``"image_path"`` (when read from a file) and ``"model"`` (adapter, CLIP tag) for the summary.
        options: ``SegmentOptions.describe()`` of the options used (recorded in the summary).
        scores: what the values of ``probs`` mean (the model's ``score_description``).
    """

    image: np.ndarray
    probs: np.ndarray
    labels: np.ndarray
    classes: list[str]
    protocol: str
    source: str
    name: str = "image"
    template: str | None = None
    precision: str = "fp32"
    device: str = "cpu"
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    scores: str = ""
    options: dict[str, Any] = field(default_factory=lambda: SegmentOptions().describe())

    @property
    def shares(self) -> dict[str, float]:
        """Fraction of the image's pixels labelled with each class (class name -> share; with the background
        share, under the key ``"(background)"`` when there is background, they sum to 1)."""
        assigned = self.labels[self.labels >= 0]
        values = pixel_shares(assigned, len(self.classes)) * (assigned.size / max(self.labels.size, 1))
        shares = {name: float(v) for name, v in zip(self.classes, values)}
        if assigned.size < self.labels.size:
            shares[BACKGROUND_KEY] = 1.0 - assigned.size / self.labels.size
        return shares

    @property
    def background_value(self) -> int:
        """The label-map value of background pixels: the largest value of the map's dtype (255 or 65535)."""
        return int(np.iinfo(label_map_dtype(len(self.classes))).max)

    @property
    def is_baseline(self) -> bool:
        return self.source.startswith(BASELINE_PREFIX)

    def label_map(self) -> np.ndarray:
        """The label map as stored: (H, W) uint8 (at most 255 classes) or uint16; background is
        ``background_value``."""
        dtype = label_map_dtype(len(self.classes))
        return np.where(self.labels == BACKGROUND, self.background_value, self.labels).astype(dtype)

    def overlay(self, alpha: float = 0.5) -> Any:
        """The class colours over the image with a legend (class colour, name, share): a ``PIL.Image`` (RGB);
        background pixels are grey."""
        caption = baseline_caption(self.source) if self.is_baseline else None
        if (self.labels >= 0).all():
            return draw_overlay(self.image, self.labels, self.classes, alpha=alpha, caption=caption).image
        labels = np.where(self.labels < 0, len(self.classes), self.labels)
        colours = np.concatenate([palette(len(self.classes)), np.array([BACKGROUND_GREY], dtype=np.uint8)])
        return draw_overlay(
            self.image, labels, [*self.classes, "background"], alpha=alpha, caption=caption, colours=colours
        ).image

    def class_statistics(self) -> list[dict[str, Any]]:
        """Per predicted class: pixels, share, mean and max score over its region, bounding box (``outputs``)."""
        return class_statistics(self.probs, self.labels, self.classes)

    def to_coco_rle(self) -> list[dict[str, Any]]:
        """detectron2 ``sem_seg_predictions.json`` records of this image (one per predicted class)."""
        return coco_rle_records(self.labels, self.extra.get("image_path", self.name))

    def to_hf(self) -> list[dict[str, Any]]:
        """``[{"label", "score", "mask"}]`` as transformers' image-segmentation pipelines return (``mask``: a
        PIL "L" image, 255 on the class; ``score``: the class's mean score over its region)."""
        return _to_hf(self.probs, self.labels, self.classes)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description: classes, pixel shares, what produced it, protocol, image size, version."""
        from infoclip._version import __version__

        height, width = self.labels.shape
        shares = self.shares
        return {
            "image": self.extra.get("image_path", self.name),
            "image_size": {"height": height, "width": width},
            "classes": list(self.classes),
            "pixel_shares": shares,
            "present": [
                name for name, s in sorted(shares.items(), key=lambda kv: -kv[1]) if s > 0 and name != BACKGROUND_KEY
            ],
            "class_statistics": self.class_statistics(),
            "options": self.options,
            "background_value": self.background_value if self.options.get("background_threshold") is not None else None,
            "weights": self.source,
            "model": self.extra.get("model", {}),
            "training_free_baseline": self.is_baseline,
            **{key: self.extra[key] for key in ("vocabulary_expansion",) if key in self.extra},
            "protocol": self.protocol,
            "scores": self.scores,
            "precision": self.precision,
            "template": self.template,
            "device": self.device,
            "seconds": round(self.seconds, 4),
            "infoclip_version": __version__,
        }

    def save(
        self,
        output_dir: str | os.PathLike[str],
        stem: str | None = None,
        save_probs: bool = False,
        overlay: bool = True,
        alpha: float = 0.5,
        probs_dtype: str = "float32",
        indexed: bool = False,
        rle: bool = False,
    ) -> dict[str, Path]:
        """Write the outputs of this image into ``output_dir``; returns kind -> path.

        Files (``<stem>`` defaults to ``self.name``):

        * ``<stem>.png``: the label map, uint8 PNG (uint16 PNG above 255 classes), pixel value = class index;
        * ``<stem>_overlay.png``: the overlay with its legend (unless ``overlay=False``);
        * ``<stem>.json``: ``summary()`` plus the names of the files written;
        * ``<stem>_probs.npy``: (T, H, W) probabilities in ``probs_dtype`` (float32 or float16; only with
          ``save_probs=True``);
        * with ``indexed=True`` the label map is a palette PNG (same values, the overlay's colours; <= 256 classes);
        * ``<stem>_rle.json``: detectron2 ``sem_seg_predictions.json`` records (only with ``rle=True``).

        Each file is written atomically, and if any of them fails the others written by this call are removed,
        so an image's outputs are complete or absent.

        Raises:
            InputError: the folder cannot be created or written (one line naming it).
        """
        from PIL import Image

        folder = Path(output_dir)
        stem = stem or self.name
        if indexed and len(self.classes) > MAX_INDEXED_CLASSES - 1:
            raise InputError(f"an indexed PNG holds at most {MAX_INDEXED_CLASSES - 1} classes and background; this result has {len(self.classes)}")
        if indexed:
            colours = palette(len(self.classes))
            write_labels: Callable[[Path], object] = lambda tmp: save_indexed_png(tmp, self.label_map(), colours)  # noqa: E731
        else:
            write_labels = lambda tmp: Image.fromarray(self.label_map()).save(tmp, format="PNG")  # noqa: E731
        planned: list[tuple[str, Path, Callable[[Path], object]]] = [("labels", folder / f"{stem}.png", write_labels)]
        if overlay:
            planned.append(
                ("overlay", folder / f"{stem}_overlay.png", lambda tmp: self.overlay(alpha).save(tmp, format="PNG"))
            )
        if save_probs:
            planned.append(("probs", folder / f"{stem}_probs.npy", lambda tmp: _write_probs(tmp, self.probs, probs_dtype)))
        if rle:
            records = self.to_coco_rle()
            planned.append(
                ("rle", folder / f"{stem}_rle.json", lambda tmp: tmp.write_text(json.dumps(records) + "\n", "utf-8"))
            )
        summary_path = folder / f"{stem}.json"
        files = {kind: path for kind, path, _ in planned} | {"summary": summary_path}
        payload = self.summary() | {"outputs": {kind: path.name for kind, path in files.items()}}
        planned.append(
            ("summary", summary_path, lambda tmp: tmp.write_text(json.dumps(payload, indent=2) + "\n", "utf-8"))
        )
        written: list[Path] = []
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for _, path, write in planned:
                atomic_write(path, write)
                written.append(path)
        except BaseException as exc:  # an error or Ctrl-C: no image keeps a partial set of outputs
            for path in written:
                path.unlink(missing_ok=True)
            if not isinstance(exc, OSError):
                raise
            reason = exc.strerror or str(exc)
            raise InputError(f"cannot write to output folder {folder}: {reason}") from exc
        return files


# --------------------------------------------------------------------------------------------------------------
# the segmenter

BASELINE_PREFIX = "training-free baseline: "
#: the ``shares`` key of background pixels
BACKGROUND_KEY = "(background)"


def baseline_caption(source: str) -> str:
    """The overlay footer of a training-free run: the CLIP's name and tag, never a weights file's path (a long
    path would widen the picture to its own length)."""
    name, _, tag = source.removeprefix(BASELINE_PREFIX).partition(":")
    if os.sep in tag or "/" in tag or Path(tag).suffix:
        return f"{BASELINE_PREFIX}{name} (local weights {Path(tag).name})"
    return f"{BASELINE_PREFIX}{name}:{tag}" if tag else f"{BASELINE_PREFIX}{name}"


class Segmenter:
    """Runs a segmentation model on images with any class list.

    The model is an ``OVSSModel``: an adapter's (``from_pretrained``) or the dense-CLIP baseline (``from_clip``).
    ``predict`` is a public entry point: it checks the image, the classes and the protocol once, and the
    model's ``predict`` trusts them.
    """

    def __init__(
        self,
        model: OVSSModel,
        source: str,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        protocol: str | None = None,
        template: str | None = None,
        options: SegmentOptions | None = None,
        text_cache: str | os.PathLike[str] | None = None,
    ) -> None:
        self.device = _checked_device(device, precision)
        if not isinstance(model, OVSSModel):
            raise InputError(f"Segmenter needs an infoclip OVSSModel, got {type(model).__name__}")
        protocol = model.check_protocol(protocol)
        self.model = model.to(self.device).eval()
        self.protocol = protocol
        self.source = source
        self.precision = precision
        #: what the summary JSON records about the model (adapter, CLIP tag, ...), set by the constructors
        self.model_info: dict[str, str] = {}
        if template is not None:
            self.set_template(template)
        #: the opt-in prediction options (``infoclip.segmentation.options``); their templates apply now
        self.options = options or SegmentOptions()
        self._predictor = OptionedPredictor(self.model, self.options)
        self._predictors: dict[SegmentOptions, OptionedPredictor] = {}
        self.text_cache_dir = None if text_cache is None else Path(text_cache)

    @classmethod
    def from_pretrained(
        cls,
        weights: str | os.PathLike[str] | None = None,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        protocol: str | None = None,
        template: str | None = None,
        options: SegmentOptions | None = None,
        text_cache: str | os.PathLike[str] | None = None,
        notify: Callable[[str], None] | None = None,
    ) -> Segmenter:
        """Load segmentation weights by name, from the Hub, or from a file.

        Args:
            weights: a registered name (``None``: the default, ``"catseg-b16"``; ``infoclip weights list``), downloaded
                once into the Hugging Face cache; ``"hf:ORG/REPO/FILE[@REVISION]"``; an infoclip
                ``.safetensors`` file (``infoclip export``); or an official checkpoint (``model_base.pth``),
                converted on first use and cached (``infoclip.conversion``).
            device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"``.
            precision: ``"fp32"`` (default), ``"bf16"`` (CPU or GPU autocast) or ``"fp16"`` (GPU only).
            protocol: the default protocol of ``predict``, one of the model's ``protocols`` (CAT-Seg: ``"sliding"``,
                the published one, or ``"whole"``); ``None``: the model's default.
            template: prompt template with ``{}`` replacing the model's (CAT-Seg: ``"A photo of a {} in the scene"``).
            options: opt-in prediction options (template sets, synonyms, background, expansion, TTA).
            text_cache: a folder for the disk cache of class text embeddings (``text_cache``); ``None``: none.
            notify: called with one line when an official checkpoint is converted (the CLI prints it).

        Raises:
            WeightsNotFoundError: a missing file, or a download that cannot happen (offline, not found, ...).
            CheckpointError: the file is damaged, of another framework, or does not fit its declared architecture.
        """
        from infoclip.models import load_model

        resolved = _checked_device(device, precision)  # before loading: a wrong flag fails fast
        if weights is None:
            from infoclip.named_weights import default_name

            weights = default_name()
        model, meta = load_model(weights, resolved, notify=notify)
        segmenter = cls(model, os.fspath(weights), resolved, precision, protocol, template, options, text_cache)
        segmenter.model_info = {"adapter": meta.adapter, "clip": meta.clip_tag, "weights_source": meta.source}
        if text_cache is not None:
            segmenter._attach_text_cache(weights_identity(weights, meta.adapter, meta.clip_tag))
        return segmenter

    @classmethod
    def from_clip(
        cls,
        spec: str,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        protocol: str | None = None,
        template: str | None = None,
        options: SegmentOptions | None = None,
        text_cache: str | os.PathLike[str] | None = None,
    ) -> Segmenter:
        """The training-free baseline: dense cosine alignment of a pretrained CLIP (``baseline.DenseCLIPBaseline``).

        Args:
            spec: ``"MODEL:TAG"`` (``"ViT-B-16:openai"``), ``"MODEL:/path/to/weights"`` or ``"MODEL:none"``
                (random initialisation; for tests).

        Raises:
            WeightsNotFoundError: the CLIP weights are not available offline (the message says what to fetch).
        """
        from infoclip.segmentation.baseline import DenseCLIPBaseline

        resolved = _checked_device(device, precision)
        model = DenseCLIPBaseline.from_spec(spec)
        segmenter = cls(model, BASELINE_PREFIX + spec, resolved, precision, protocol, template, options, text_cache)
        segmenter.model_info = {"adapter": "dense-clip-baseline", "clip": model.clip_tag}
        segmenter._attach_text_cache(baseline_identity(spec))
        return segmenter

    def _attach_text_cache(self, identity: dict[str, Any]) -> None:
        """Give the model a disk cache of its class embeddings keyed by ``identity`` (+ precision)."""
        if self.text_cache_dir is not None:
            self.model.text_embedding_cache = TextEmbeddingCache(self.text_cache_dir, {**identity, "precision": self.precision})

    def set_template(self, template: str) -> None:
        """Use ``template`` (must contain ``{}`` once) to turn class names into prompts."""
        if not isinstance(template, str) or template.count("{}") != 1:
            raise InputError(f"a prompt template must contain {{}} exactly once, e.g. 'a photo of a {{}}.', got {template!r}", parameter="template")
        try:
            self.model.set_prompt_templates([template])
        except AdapterError as exc:
            raise InputError(f"the model of {self.source} cannot change its prompt template ({exc})") from exc

    @property
    def template(self) -> str | None:
        """The prompt template the model uses now (``None`` when it has several or none)."""
        templates = self.model.prompt_templates
        return templates[0] if len(templates) == 1 else None

    @torch.inference_mode()
    def predict(
        self,
        image: str | os.PathLike[str] | np.ndarray | Any,
        classes: str | Sequence[str],
        protocol: str | None = None,
        expand_vocabulary: str | None = None,
        options: SegmentOptions | None = None,
    ) -> SegmentationResult:
        """Segment one image.

        Args:
            image: a path, a PIL image, or an (H, W, 3) uint8 RGB array (grayscale, RGBA, 16-bit and EXIF
                orientation are handled, see ``infoclip.segmentation.images``).
            classes: the class names in label order, or one string ``"a,b,c"`` / ``"@names.txt"``.
            protocol: one of the model's ``protocols``; default: the segmenter's.
            expand_vocabulary: for this call, the segmenter's ``options.expand_vocab`` (``"coco"``,
                ``"coco-stuff"``, ``"ade150"`` or a shipped vocabulary): its other names join the prediction and
                pixels they win get one extra label "other" (id T), scored by the maximum of their scores
                (``infoclip.segmentation.background``).
            options: for this call, options instead of the segmenter's (synonym rule, background threshold,
                expansion, TTA); their template set must be the segmenter's, since templates change the model.

        Returns:
            ``SegmentationResult`` with ``labels`` (H, W) int64 and ``probs`` (T, H, W) float32.

        Raises:
            InputError: an unreadable image (named), an invalid class list (offending names given).
        """
        protocol = self.model.check_protocol(protocol or self.protocol)
        class_names = parse_classes(classes)
        options, predictor = self._options_for(expand_vocabulary, options)
        added = expansion_names(options.expand_vocab, class_names) if options.expand_vocab else []
        array = load_image(image)
        tensor = torch.tensor(array, device=self.device).permute(2, 0, 1).float()  # a copy: PIL arrays are read-only
        check_prediction_inputs(tensor, class_names)
        start = time.perf_counter()
        with autocast(self.device, self.precision):
            if options.is_default and not any(SYNONYM_SEPARATOR in name for name in class_names):
                # the published protocol, untouched
                probs = self.model.predict(tensor, class_names, protocol=protocol)
                labels = None
                result_classes = class_names
            else:
                optioned = predictor.scores(tensor, class_names, protocol)
                probs, labels, result_classes = optioned.scores, optioned.labels, optioned.classes
        probs_np = probs.detach().float().cpu().numpy()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - start
        expected = (len(result_classes), array.shape[0], array.shape[1])
        if probs_np.shape != expected:
            raise InputError(f"the model returned probabilities of shape {probs_np.shape}, expected {expected}")
        labels_np = probs_np.argmax(axis=0).astype(np.int64) if labels is None else labels.cpu().numpy().astype(np.int64)
        extra: dict[str, Any] = {"model": dict(self.model_info)}
        if added:
            extra["vocabulary_expansion"] = {"vocabulary": options.expand_vocab, "added_classes": len(added),
                                             "other_id": len(class_names), "other_score": "maximum over the added classes"}  # fmt: skip
        if isinstance(image, (str, os.PathLike)):
            extra["image_path"] = str(image)
        return SegmentationResult(
            image=array,
            probs=np.ascontiguousarray(probs_np, dtype=np.float32),
            labels=labels_np,
            classes=list(result_classes),
            protocol=protocol,
            source=self.source,
            name=image_name(image),
            template=self.template,
            precision=self.precision,
            device=str(self.device),
            seconds=seconds,
            extra=extra,
            options=options.describe(),
            scores=self.model.score_description,
        )

    def _options_for(
        self, expand_vocabulary: str | None, options: SegmentOptions | None = None
    ) -> tuple[SegmentOptions, OptionedPredictor]:
        """The options (and their predictor) of one call: the segmenter's, or the call's (another expansion).

        Raises:
            InputError: the call's options name another template set than the segmenter's.
        """
        options = options or self.options
        if options.templates != self.options.templates:
            raise InputError(
                f"the template set is the segmenter's ({self.options.templates!r}), not one call's "
                f"({options.templates!r}): build the Segmenter with options=SegmentOptions(templates=...)"
            )
        if expand_vocabulary is not None:
            options = replace(options, expand_vocab=expand_vocabulary)
        if options == self.options:
            return self.options, self._predictor
        if options not in self._predictors:
            if len(self._predictors) >= 16:  # a server answering many option values keeps a few, not all
                self._predictors.pop(next(iter(self._predictors)))
            self._predictors[options] = OptionedPredictor(self.model, options)
        return options, self._predictors[options]

    def predict_many(
        self, images: Sequence[Any], classes: str | Sequence[str], protocol: str | None = None,
        expand_vocabulary: str | None = None,
    ) -> Iterator[SegmentationResult | InputError]:
        """``predict`` each image in turn; an unreadable image yields its ``InputError`` and the rest still run."""
        class_names = parse_classes(classes)
        options, _ = self._options_for(expand_vocabulary)
        if options.expand_vocab:
            expansion_names(options.expand_vocab, class_names)  # a bad vocabulary or an "other" class fails once, up front
        for image in images:
            try:
                yield self.predict(image, class_names, protocol, expand_vocabulary)
            except InputError as exc:
                yield exc

    def __repr__(self) -> str:
        return f"Segmenter({self.source!r}, device={str(self.device)!r}, precision={self.precision!r}, protocol={self.protocol!r})"


def weights_identity(weights: str | os.PathLike[str], adapter: str, clip_tag: str) -> dict[str, Any]:
    """The text-cache identity of segmentation weights (a file, a name or ``hf:...``): the adapter, the resolved
    file's path, size and modification time, and the CLIP tag."""
    from infoclip.weights_resolver import resolve_weights

    return {"adapter": adapter, "weights": file_identity(resolve_weights(weights).path), "clip": clip_tag}


def baseline_identity(spec: str) -> dict[str, Any]:
    """The text-cache identity of the training-free baseline ``MODEL:TAG``: the spec, and the weights file's
    identity when the tag is a path."""
    from infoclip.segmentation.baseline import parse_clip_spec

    model_name, pretrained = parse_clip_spec(spec)
    identity: dict[str, Any] = {"adapter": "dense-clip-baseline", "clip": spec}
    if pretrained is not None and Path(pretrained).is_file():
        identity["weights"] = file_identity(pretrained)
    return identity
