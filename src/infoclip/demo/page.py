"""What the ``infoclip demo`` page does with one request, without gradio: image + classes in, everything shown out.

``DemoPage`` wraps one ``Segmenter`` (the model is loaded once, by whoever builds the page) and answers requests:

    >>> page = DemoPage(Segmenter.from_pretrained("catseg-b16"))                      # doctest: +SKIP
    >>> answer = page.run("cat.jpg", "cat, sofa\\nfloor", vocabulary="none")            # doctest: +SKIP
    >>> [(row.name, row.colour, round(row.share, 2)) for row in answer.legend]         # doctest: +SKIP
    [('sofa', '#3cb44b', 0.51), ('cat', '#e6194b', 0.32), ('floor', '#ffe119', 0.17)]
    >>> answer.files["labels"], answer.files["summary"]                              # doctest: +SKIP
    (PosixPath('/tmp/infoclip-demo-.../cat.png'), PosixPath('/tmp/infoclip-demo-.../cat.json'))

Sizes. An image above ``max_pixels`` (default ``MAX_SEGMENT_PIXELS``, 1,048,576 pixels) is scaled down, keeping its
aspect ratio, before it is segmented; the label map, the probabilities and the JSON are at that *segmentation
size* (the JSON's ``image_size``). CAT-Seg itself looks at the image at 640 pixels on the short side, so nothing
is lost for the model; the cap bounds the (classes x height x width) probabilities kept per request. What the
page displays is scaled further, to at most ``display_max_side`` (1024) pixels on the long side.

Class text embeddings: the models cache the embeddings of recent class lists (CAT-Seg's text encoder and the
dense-CLIP baseline keep an LRU per list), so while the class list, the template and the model stay the same,
a request only runs the image side. The page serialises model use (one request at a time), because the prompt
template is a setting of the shared model.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from infoclip.errors import InputError
from infoclip.segmentation.classes import display_name, load_vocabulary, shipped_vocabularies, validate_class_names
from infoclip.segmentation.images import image_name, load_image
from infoclip.segmentation.options import SegmentOptions
from infoclip.segmentation.overlay import palette
from infoclip.segmentation.segmenter import BASELINE_PREFIX, PRECISIONS, Segmenter, SegmentationResult, check_precision

#: images with more pixels are scaled down (aspect kept) before segmentation: 1024 x 1024
MAX_SEGMENT_PIXELS = 1 << 20
#: the page shows images at most this many pixels on their long side
DISPLAY_MAX_SIDE = 1024
#: the vocabulary choice that means "use the classes box"
NO_VOCABULARY = "none"
#: request folders kept on disk (the newest ones); older ones are deleted when a new request starts
KEEP_REQUESTS = 64

ProgressCallback = Callable[[float, str], object]
_SPLIT = re.compile(r"[,\n]")


@dataclass(frozen=True)
class PageOptions:
    """The "Advanced" settings of one request (the options ``infoclip segment`` offers per run).

    Attributes:
        protocol: one of the model's protocols (CAT-Seg: ``"sliding"``, the published one, or ``"whole"``, one
            view, about 5x faster).
        precision: ``"fp32"``, ``"bf16"`` (autocast) or ``"fp16"`` (GPU only).
        template: prompt template with ``{}`` once; ``""`` keeps the model's own.
        alpha: opacity of the class colours, in [0, 1].
        save_probs: also write the (T, H, W) float32 probabilities as ``<stem>_probs.npy``.
        expand_vocabulary: ``""`` (off) or a shipped vocabulary whose other classes also compete; pixels they win
            are labelled "other" (``infoclip segment --expand-vocab``).
        synonym_rule: ``"max"`` or ``"mean"`` over a class's ``|``-separated synonyms (``--synonym-rule``).
        background_threshold: ``None`` (off) or T in [0, 1]: pixels whose best score is below T are background
            (``--background-threshold``; grey in the overlay, not in the legend).
        tta: ``"none"``, ``"flip"`` or ``"ms"`` (``--tta``).
    """

    protocol: str = "sliding"
    precision: str = "fp32"
    template: str = ""
    alpha: float = 0.5
    save_probs: bool = False
    expand_vocabulary: str = ""
    synonym_rule: str = "max"
    background_threshold: float | None = None
    tta: str = "none"

    def segment_options(self, templates: str) -> SegmentOptions:
        """The ``SegmentOptions`` of this request (``templates``: the segmenter's own set).

        Raises:
            InputError: a bad synonym rule, threshold, expansion or TTA name (one line).
        """
        expand = self.expand_vocabulary if self.expand_vocabulary not in ("", NO_VOCABULARY) else None
        return SegmentOptions(templates, self.synonym_rule, False, self.background_threshold, expand, self.tta)


@dataclass(frozen=True)
class LegendRow:
    """A class present in the image: its index in the class list, name, legend label, colour and pixel share."""

    index: int
    name: str
    label: str
    colour: str  # "#rrggbb"
    share: float


@dataclass(frozen=True)
class ClassRow:
    """A row of the class table: share of the pixels and mean probability over the pixels labelled with it."""

    index: int
    name: str
    colour: str
    share: float
    mean_score: float


@dataclass
class Display:
    """What the page displays of one segmentation, small enough to keep per browser session.

    Attributes:
        image: (h, w, 3) uint8 RGB, the segmented image scaled to the display size.
        labels: (h, w) int64 labels at the display size (nearest neighbour).
        classes: the class names, in label order.
        legend: the classes present, largest share first.
        table: the same classes with their mean score, largest share first.
        colours: (T, 3) uint8 class colours (``palette(T)``).
        alpha: the overlay opacity asked for.
    """

    image: np.ndarray
    labels: np.ndarray
    classes: list[str]
    legend: list[LegendRow]
    table: list[ClassRow]
    colours: np.ndarray
    alpha: float = 0.5

    def annotations(self) -> list[tuple[np.ndarray, str]]:
        """(mask, legend label) per present class, legend order: (h, w) float32 masks, ``alpha`` inside, 0 outside."""
        return [((self.labels == row.index).astype(np.float32) * self.alpha, row.label) for row in self.legend]

    def legend_row(self, which: int | str) -> LegendRow:
        """The legend row by position, legend label, display name or class name.

        Raises:
            InputError: no present class matches.
        """
        if isinstance(which, int) and not isinstance(which, bool):
            if 0 <= which < len(self.legend):
                return self.legend[which]
        else:
            for row in self.legend:
                if which in (row.label, row.name, self.classes[row.index]):
                    return row
        present = ", ".join(row.name for row in self.legend)
        raise InputError(f"class {which!r} is not in this segmentation; present: {present}")

    def highlight(self, which: int | str) -> tuple[np.ndarray, str]:
        """The image with one class in its colour, outlined, and the rest dimmed; and a line describing it.

        Returns:
            ((h, w, 3) uint8 RGB, ``"cat: 42.0% of the image, mean score 0.812"``).
        """
        row = self.legend_row(which)
        inside = self.labels == row.index
        image = self.image.astype(np.float32)
        gray = image.mean(axis=2, keepdims=True)
        mixed = (1 - self.alpha) * image + self.alpha * self.colours[row.index].astype(np.float32)
        out = np.where(inside[..., None], mixed, 0.35 * gray + 90)
        edge = np.zeros_like(inside)
        edge[:, 1:] |= inside[:, 1:] != inside[:, :-1]
        edge[1:, :] |= inside[1:, :] != inside[:-1, :]
        out[edge] = 0
        score = next(r.mean_score for r in self.table if r.index == row.index)
        line = f"{row.name}: {100 * row.share:.1f}% of the image, mean score {score:.3f}"
        return np.clip(np.rint(out), 0, 255).astype(np.uint8), line


@dataclass
class PageAnswer:
    """Everything the page shows for one request.

    Attributes:
        result: the ``SegmentationResult`` at the segmentation size (``result.labels`` (h, w) int64).
        display: what is displayed (scaled to the display size), legend and class table included.
        files: ``"labels"`` (label-map PNG), ``"overlay"`` (PNG with legend), ``"summary"`` (the JSON
            ``infoclip segment`` writes) and, when asked, ``"probs"`` (``.npy``).
        original_size: (height, width) of the image as uploaded; ``result.labels.shape`` is the segmented size.
        message: one line for the page: what was segmented, at which size, how, how long it took.
    """

    result: SegmentationResult
    display: Display
    files: dict[str, Path]
    original_size: tuple[int, int]
    message: str = ""

    @property
    def legend(self) -> list[LegendRow]:
        return self.display.legend

    @property
    def table(self) -> list[ClassRow]:
        return self.display.table

    @property
    def summary(self) -> dict[str, Any]:
        """The JSON written to ``files["summary"]`` (``SegmentationResult.summary`` plus the file names)."""
        import json

        return json.loads(self.files["summary"].read_text("utf-8"))


def vocabulary_choices() -> list[str]:
    """``"none"`` (use the classes box) followed by the shipped vocabularies."""
    return [NO_VOCABULARY, *shipped_vocabularies()]


def parse_class_box(text: str | None) -> list[str]:
    """The classes typed into the page: separated by commas and/or new lines; empty pieces are skipped.

    Raises:
        InputError: nothing typed, or names repeat (compared ignoring case and spaces).
    """
    names = [piece.strip() for piece in _SPLIT.split(text or "")]
    names = [name for name in names if name]
    if not names:
        raise InputError(
            "the classes box is empty: type class names separated by commas or new lines (cat, sofa, floor), "
            "or choose a vocabulary"
        )
    return validate_class_names(names, source="the classes box")


def page_classes(text: str | None, vocabulary: str | None) -> list[str]:
    """The class list of a request: the classes box, or a shipped vocabulary, never both.

    Raises:
        InputError: both or neither given, an unknown vocabulary, or an invalid class list.
    """
    use_vocabulary = bool(vocabulary) and vocabulary != NO_VOCABULARY
    typed = bool((text or "").strip())
    if use_vocabulary and typed:
        raise InputError(
            f"classes typed and vocabulary {vocabulary!r} chosen: use one of them "
            "(clear the classes box, or set the vocabulary to none)"
        )
    if use_vocabulary:
        assert vocabulary is not None
        return load_vocabulary(vocabulary)
    return parse_class_box(text)


def fit_pixels(image: np.ndarray, max_pixels: int) -> np.ndarray:
    """Scale (H, W, 3) uint8 down (aspect kept, PIL bilinear with antialiasing) to at most ``max_pixels`` pixels."""
    height, width = image.shape[:2]
    if height * width <= max_pixels:
        return image
    scale = (max_pixels / (height * width)) ** 0.5
    size = (max(1, int(width * scale)), max(1, int(height * scale)))
    return _resize(image, size)


def fit_side(image: np.ndarray, labels: np.ndarray, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    """Scale an image (bilinear) and its (H, W) label map (nearest) to at most ``max_side`` on the long side."""
    height, width = labels.shape
    if max(height, width) <= max_side:
        return image, labels
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    rows = np.minimum((np.arange(size[1]) + 0.5) * height / size[1], height - 1).astype(np.int64)
    cols = np.minimum((np.arange(size[0]) + 0.5) * width / size[0], width - 1).astype(np.int64)
    return _resize(image, size), labels[rows][:, cols]


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))


def _hex(colour: np.ndarray) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in colour))


class DemoPage:
    """Answers the demo page's requests with one loaded ``Segmenter``.

    Args:
        segmenter: the model, loaded once; its protocol is the page's default.
        max_pixels: images with more pixels are scaled down before segmentation (see the module docstring).
        display_max_side: long side of what the page displays.
        workdir: where request folders go (default: a new temporary folder, removed by ``close``).
    """

    def __init__(
        self,
        segmenter: Segmenter,
        max_pixels: int = MAX_SEGMENT_PIXELS,
        display_max_side: int = DISPLAY_MAX_SIDE,
        workdir: str | Path | None = None,
    ) -> None:
        if max_pixels < 1 or display_max_side < 1:
            raise InputError(f"max_pixels and display_max_side must be positive, got {max_pixels}, {display_max_side}")
        self.segmenter = segmenter
        self.max_pixels = int(max_pixels)
        self.display_max_side = int(display_max_side)
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="infoclip-demo-")) if workdir is None else Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.default_template = segmenter.template
        self._by_precision: dict[str, Segmenter] = {segmenter.precision: segmenter}
        self._lock = threading.Lock()
        self._requests: list[Path] = []

    @property
    def default_options(self) -> PageOptions:
        return PageOptions(protocol=self.segmenter.protocol, precision=self.segmenter.precision)

    def protocols(self) -> list[tuple[str, str]]:
        """(name, description) of the model's protocols, the default (published) one first."""
        return [(p.name, p.description) for p in self.segmenter.model.protocols]

    def precisions(self) -> list[str]:
        """The precisions this page's device can run (fp16 only on a GPU)."""
        usable = []
        for name in PRECISIONS:
            try:
                check_precision(name, self.segmenter.device)
            except InputError:
                continue
            usable.append(name)
        return usable

    def describe(self) -> str:
        """One line: what model runs where."""
        kind = "training-free CLIP baseline" if self.segmenter.source.startswith(BASELINE_PREFIX) else "model"
        return f"{self.segmenter.source} ({kind}) on {self.segmenter.device}"

    def run(
        self,
        image: Any,
        classes: str | None,
        vocabulary: str | None = NO_VOCABULARY,
        options: PageOptions | None = None,
        progress: ProgressCallback | None = None,
    ) -> PageAnswer:
        """Segment one uploaded image for the page.

        Args:
            image: a path (the upload), a PIL image or an (H, W, 3) uint8 array; ``None`` when nothing was uploaded.
            classes: the classes box (commas and/or new lines), or empty when ``vocabulary`` is used.
            vocabulary: ``"none"`` or a shipped vocabulary name (``vocabulary_choices()``).
            options: the "Advanced" settings; default: the segmenter's protocol and precision.
            progress: called as ``progress(fraction, what)`` while it runs.

        Raises:
            InputError: no image, an unreadable image (non-image, truncated), an empty, repeated or doubly
                given class list, or an unusable option. One line each, safe to show on the page.
        """
        report = progress or (lambda fraction, what: None)
        options = options or self.default_options
        if image is None or (isinstance(image, str) and not image.strip()):
            raise InputError("no image: upload one (or pick an example) first")
        names = page_classes(classes, vocabulary)
        segmenter = self._checked(options)
        report(0.05, "reading the image")
        shown_name = Path(image).name if isinstance(image, (str, Path)) else image_name(image)
        try:
            array = load_image(image)
        except InputError as exc:  # name the upload as the user knows it, not by the server's copy
            raise InputError(str(exc).replace(str(image), shown_name)) from exc
        stem = image_name(image)
        original = (int(array.shape[0]), int(array.shape[1]))
        array = fit_pixels(array, self.max_pixels)
        report(0.15, f"segmenting {len(names)} classes")
        with self._lock:
            self._apply_template(options.template)
            result = segmenter.predict(
                array, names, protocol=options.protocol, options=options.segment_options(segmenter.options.templates)
            )
        result.name = stem
        result.extra["image_path"] = shown_name
        report(0.85, "drawing")
        with self._lock:
            folder = self._new_request_folder()
        files = result.save(folder, stem=stem, save_probs=options.save_probs, overlay=True, alpha=options.alpha)
        colours = palette(len(result.classes))  # one more ("other") with vocabulary expansion
        legend, table = self._rows(result, colours)
        display_image, display_labels = fit_side(result.image, result.labels, self.display_max_side)
        report(1.0, "done")
        display = Display(display_image, display_labels, list(result.classes), legend, table, colours, float(options.alpha))
        return PageAnswer(result, display, files, original, self._message(result, original, shown_name))

    def close(self) -> None:
        """Remove the request folders (and the work folder when the page made it)."""
        for folder in self._requests:
            shutil.rmtree(folder, ignore_errors=True)
        self._requests.clear()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ----------------------------------------------------------------------------------------------------------

    def _checked(self, options: PageOptions) -> Segmenter:
        self.segmenter.model.check_protocol(options.protocol)
        if not 0.0 <= float(options.alpha) <= 1.0:
            raise InputError(f"overlay opacity must be in [0, 1], got {options.alpha}")
        template = options.template.strip()
        if template and template.count("{}") != 1:
            raise InputError(f"the prompt template must contain {{}} exactly once, e.g. 'a photo of a {{}}.', got {template!r}")
        check_precision(options.precision, self.segmenter.device)
        options.segment_options(self.segmenter.options.templates)  # a bad rule, threshold or TTA fails up front
        if options.precision not in self._by_precision:
            # the same model object, another autocast setting: no second copy of the weights
            base = self.segmenter
            other = Segmenter(base.model, base.source, base.device, options.precision, base.protocol)
            other.model_info = dict(base.model_info)
            self._by_precision[options.precision] = other
        return self._by_precision[options.precision]

    def _apply_template(self, template: str) -> None:
        """Make the shared model use ``template`` ("" = its own); a no-op when it already does (keeps its cache)."""
        wanted = template.strip() or self.default_template
        if wanted is None or wanted == self.segmenter.template:
            return
        self.segmenter.set_template(wanted)

    def _new_request_folder(self) -> Path:
        while len(self._requests) >= KEEP_REQUESTS:
            shutil.rmtree(self._requests.pop(0), ignore_errors=True)
        folder = Path(tempfile.mkdtemp(prefix="request-", dir=self.workdir))
        self._requests.append(folder)
        return folder

    @staticmethod
    def _rows(result: SegmentationResult, colours: np.ndarray) -> tuple[list[LegendRow], list[ClassRow]]:
        labelled = result.labels[result.labels >= 0]  # background pixels (a threshold) belong to no class
        shares = np.bincount(labelled.reshape(-1), minlength=len(result.classes)) / result.labels.size
        present = [int(i) for i in np.argsort(-shares, kind="stable") if shares[i] > 0]
        legend, table, labels = [], [], set()
        for index in present:
            name = display_name(result.classes[index])
            label = f"{name} ({100 * shares[index]:.1f}%)"
            if label in labels:  # two classes may share a first synonym and a share; keep labels unique
                label = f"{label} #{index + 1}"
            labels.add(label)
            colour = _hex(colours[index])
            score = float(result.probs[index][result.labels == index].mean())
            legend.append(LegendRow(index, name, label, colour, float(shares[index])))
            table.append(ClassRow(index, name, colour, float(shares[index]), score))
        return legend, table

    def _message(self, result: SegmentationResult, original: tuple[int, int], shown_name: str) -> str:
        height, width = result.labels.shape
        size = f"{width}x{height}"
        if (height, width) != original:
            size += f" (scaled down from {original[1]}x{original[0]} to at most {self.max_pixels:,} pixels)"
        kind = ", training-free CLIP baseline" if result.is_baseline else ""
        return (
            f"{shown_name}: {size}, {len(result.classes)} classes, {result.protocol} protocol, {result.precision}"
            f"{kind}, {result.seconds:.2f} s on {result.device}"
        )
