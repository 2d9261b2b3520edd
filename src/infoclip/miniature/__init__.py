"""The miniature benchmark: a procedural open-vocabulary world small enough to run the whole method on a CPU.

* ``world``: texture classes, Voronoi scenes, captions;
* ``dataset``: the training (seen classes) and test (all classes) folders in the custom-dataset layout;
* ``tiny_clip`` / ``pretrain``: the tiny CLIP, its contrastive pretraining, the shipped weights;
* ``config``: the miniature YAML (one section per adapter: run config and methods; the modes);
* ``pipeline``: data -> ``infoclip train`` / ``export`` / ``eval`` -> tables; ``picture``: the prediction figure.

Command line: ``infoclip miniature --fast`` (about 3 minutes), ``infoclip miniature`` (the full run).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from infoclip.errors import InputError
from infoclip.miniature.config import MiniatureConfig, default_config_path
from infoclip.miniature.pipeline import Miniature
from infoclip.miniature.world import TEXTURES, WorldSpec

#: sub-folders a miniature run writes (and ``--force`` replaces)
RUN_FOLDERS = ("data", "clip", "configs", "runs", "weights", "eval", "logs")
RUN_FILES = ("results.json", "results.md", "predictions.png")


def prepare_output_dir(output_dir: str | Path, force: bool = False) -> Path:
    """Make ``output_dir`` ready for a run; an earlier run there is replaced only with ``force``.

    Raises:
        InputError: ``output_dir`` is a file, or holds an earlier run and ``force`` is false.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise InputError(f"--output-dir {output_dir} is a file; give a folder")
    earlier = [output_dir / n for n in (*RUN_FOLDERS, *RUN_FILES) if (output_dir / n).exists()]
    if earlier and not force:
        raise InputError(
            f"{output_dir} already holds a miniature run; pass --force to replace it or choose another --output-dir"
        )
    for path in earlier:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    output_dir.mkdir(parents=True, exist_ok=True)
    return output_dir


__all__ = ["Miniature", "MiniatureConfig", "TEXTURES", "WorldSpec", "default_config_path", "prepare_output_dir"]
