"""One process of the DDP equivalence test (run as a script, with torchrun's environment variables set).

Usage: ``python ddp_worker.py RUN_DIR OUT.pt OVERRIDE...``. Builds the trainer from the ``catseg-tiny`` preset
and the overrides, runs two iterations, validates, and saves ``OUT.pt.rank<r>``: losses of both steps, the
gradients after step 1, the parameters after step 2, and the validation mIoU (rank 0).
"""

from __future__ import annotations

import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ["INFOCLIP_DISABLE_PLUGIN_AUTOLOAD"] = "1"

import torch  # noqa: E402


def two_steps(run_dir: str, overrides: list[str]) -> dict:
    """Build the trainer, run two iterations and validate; what the test compares."""
    from infoclip.training.engine import Trainer
    from infoclip.training.run_config import resolve_run_config

    config = resolve_run_config("catseg-tiny", "catseg", overrides)
    trainer = Trainer(config, run_dir)
    first = trainer.run_step()
    grads = {n: p.grad.clone() for n, p in trainer.bundle.named_parameters() if p.grad is not None}
    second = trainer.run_step()
    params = {n: p.detach().clone() for n, p in trainer.bundle.named_parameters() if p.requires_grad}
    result = trainer.validate()
    payload = {
        "losses": [first.losses, second.losses],
        "grad_norms": [first.grad_norm, second.grad_norm],
        "grads": grads,
        "params": params,
        "miou": None if result is None else result.miou,
        "val_images": None if result is None else result.num_images,
        "rank": trainer.ctx.rank,
    }
    trainer.ctx.shutdown()
    return payload


def main() -> None:
    torch.set_num_threads(1)
    run_dir, out, overrides = sys.argv[1], sys.argv[2], sys.argv[3:]
    payload = two_steps(run_dir, overrides)
    torch.save(payload, f"{out}.rank{payload['rank']}")


if __name__ == "__main__":
    main()
