"""The miniature's prediction picture: test scenes rich in unseen textures, ground truth and each model's map."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from infoclip.io_utils import atomic_write
from infoclip.miniature import tiny_clip
from infoclip.miniature.world import WorldSpec


def pick_unseen_rich(dataset, unseen: set[str], count: int) -> list[int]:
    """Indices of the ``count`` test images with the largest share of unseen-class pixels."""
    unseen_ids = [i for i, name in enumerate(dataset.class_names) if name in unseen]
    shares = [float(np.isin(dataset[i].label, unseen_ids).mean()) for i in range(len(dataset))]
    return sorted(range(len(dataset)), key=lambda i: -shares[i])[:count]


def prediction_picture(
    path: str | Path,
    test_dir: str | Path,
    world: WorldSpec,
    weights: Mapping[str, Path],
    clip_weights: Path,
    rows: int = 4,
    protocol: str = "whole",
) -> Path:
    """Write a PNG grid: image | ground truth | training-free dense CLIP | each trained model (argmax maps).

    Args:
        weights: column title -> infoclip weights file, in column order.
        clip_weights: the tiny CLIP used by the training-free column.

    Returns:
        ``path`` (written atomically).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from matplotlib.patches import Patch

    from infoclip.data import get_dataset
    from infoclip.segmentation.baseline import DenseCLIPBaseline
    from infoclip.weights import load_model

    dataset = get_dataset(test_dir, "val")
    names = list(dataset.class_names)
    picks = pick_unseen_rich(dataset, set(world.unseen), min(rows, len(dataset)))
    models = {"training-free CLIP": DenseCLIPBaseline.from_open_clip(tiny_clip.register_config(), str(clip_weights))}
    for title, file in weights.items():
        models[title] = load_model(file, "cpu")[0]
    colours = (plt.get_cmap("tab20")(np.arange(len(names)) % 20)[:, :3] * 255).astype(np.uint8)
    columns = ["image", "ground truth", *models]
    fig, axes = plt.subplots(len(picks), len(columns), figsize=(1.35 * len(columns), 1.45 * len(picks) + 0.9))
    axes = np.atleast_2d(axes)
    with torch.no_grad():
        for r, index in enumerate(picks):
            sample = dataset[index]
            image = torch.from_numpy(sample.image).permute(2, 0, 1).float()
            maps = [sample.image, colours[sample.label]]
            for model in models.values():
                model.eval()
                maps.append(colours[model.predict(image, names, protocol=protocol).argmax(0).numpy()])
            for c, picture in enumerate(maps):
                ax = axes[r, c]
                ax.imshow(picture, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(columns[c], fontsize=7)
    handles = [
        Patch(color=colours[i] / 255, label=f"{n}*" if n in world.unseen else n) for i, n in enumerate(names)
    ]
    fig.legend(handles=handles, loc="lower center", ncol=7, fontsize=6, frameon=False,
               title="* unseen in fine-tuning", title_fontsize=6)
    fig.tight_layout(rect=(0, 0.9 / (1.45 * len(picks) + 0.9), 1, 1))
    out = atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)
    return out
