"""Write the miniature's segmentation data as infoclip custom datasets (``dataset.yaml`` layout).

Two folders, because the two splits have different vocabularies:

* ``train/``: scenes made of *seen* textures only, labelled with the seen vocabulary (the model never sees
  an unseen class name during fine-tuning, not even as a negative);
* ``test/``: scenes over the whole vocabulary, labelled with every class, with ``seen_classes`` so that
  ``infoclip eval`` reports seen mIoU, unseen mIoU and their harmonic mean.

Images are PNG (JPEG would blur the fine textures), labels uint8 PNG with the class index per pixel; every
pixel has a class, so no ignore value is ever written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from infoclip.errors import InputError
from infoclip.io_utils import atomic_write_text
from infoclip.miniature.world import WorldSpec, render_scene

DESCRIPTION_FILE = "dataset.yaml"


def write_split(
    folder: str | Path,
    spec: WorldSpec,
    classes: tuple[str, ...],
    n_images: int,
    seed: int,
    seen_classes: tuple[str, ...] | None = None,
    name: str = "miniature",
) -> Path:
    """Render ``n_images`` scenes over ``classes`` into ``folder`` and describe them in ``dataset.yaml``.

    The description is written last (atomically), so a folder with a ``dataset.yaml`` is always complete.

    Returns:
        ``folder``.
    """
    if n_images < 1:
        raise InputError(f"a miniature split needs at least one image, got {n_images}")
    folder = Path(folder)
    images_dir, labels_dir = folder / "images", folder / "labels"
    images_dir.mkdir(parents=True, exist_ok=True)
    labels_dir.mkdir(parents=True, exist_ok=True)
    if len(classes) > 255:
        raise InputError("uint8 labels hold at most 255 classes")
    rng = np.random.default_rng(seed)
    for i in range(n_images):
        image, label, _ = render_scene(spec, classes, rng)
        stem = f"{name}_{i:05d}"
        Image.fromarray(image).save(images_dir / f"{stem}.png")
        Image.fromarray(label.astype(np.uint8)).save(labels_dir / f"{stem}.png")
    description = {
        "name": name,
        "classes": list(classes),
        "images": "images",
        "labels": "labels",
        "image_suffix": ".png",
        "label_suffix": ".png",
        "ignore_value": 255,
    }
    if seen_classes is not None:
        description["seen_classes"] = list(seen_classes)
    atomic_write_text(folder / DESCRIPTION_FILE, yaml.safe_dump(description, sort_keys=False))
    return folder


def write_datasets(root: str | Path, spec: WorldSpec, n_train: int, n_test: int, seed: int = 0) -> tuple[Path, Path]:
    """The miniature's training folder (seen classes only) and test folder (all classes, seen/unseen split).

    Returns:
        (train folder, test folder) under ``root``.
    """
    root = Path(root)
    train = write_split(root / "train", spec, spec.seen, n_train, seed=seed, name="miniature-train")
    test = write_split(
        root / "test", spec, spec.classes, n_test, seed=seed + 1_000_003, seen_classes=spec.seen, name="miniature-test"
    )
    return train, test
