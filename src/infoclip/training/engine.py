"""The training loop: an adapter's model, the InfoCLIP objective, the CAT-Seg recipe, resumable, DDP-ready.

``train(config, run_dir)`` runs a whole job; ``Trainer`` exposes the pieces (``run_step``, ``validate``,
``save_checkpoint``) for tests and benchmarks. One iteration:

1. ``grad_accumulation`` micro-steps, each on this rank's slice of the global batch (``data_stream``): the
   frozen teacher (eval, no_grad, bf16 on CUDA devices that support it) gives D_V^T, D_L^T; the student's
   ``forward_train`` gives the logits and D_V^S, D_L^S of the same pass; the loss is
   ``L = L_task + lambda_1 L_c + lambda_2 L_d`` (the InfoCLIP terms in fp32, outside autocast);
2. every loss term is averaged over ranks and checked: a NaN or inf stops the run with ``TrainingError``
   before the weights change, and the last checkpoint stays the last good one;
3. full-model gradient clipping, AdamW step, cosine schedule step.

Rank 0 writes the run folder (config, CSV/TensorBoard logs, checkpoints, validation results, plot);
validation is sharded over ranks with the code and protocol of ``infoclip eval`` and the confusion matrices
are summed.

This module is the loop only: the run config and the model section it builds come from ``run_config``, the
optimizer and schedule from ``optim``, checkpoint files and the resumed optimizer/schedule state from
``checkpoint``, log rows and ``summary.json`` from ``run_log``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from infoclip.adapters.contract import CLIP_PART
from infoclip.runtime import autocast, precision_dtype
from infoclip.config import save_config
from infoclip.errors import AdapterError, CheckpointError, ConfigError, DatasetError, DiskFullError, TrainingError
from infoclip.training import checkpoint as ckpt
from infoclip.training import run_lock
from infoclip.training.augment import TrainAugmentation
from infoclip.training.data_stream import StreamLayout, build_train_loader, worker_count
from infoclip.training.distributed import DistContext, init_distributed
from infoclip.training.interrupt import GracefulStop, ImmediateStop, TrainingInterrupted, agreed_stop, stop_notice
from infoclip.training.optim import clip_full_model, recipe_optimizer
from infoclip.training.run_config import (
    effective_model_config,
    load_initial_weights,
    prepare_run_config,
    validate_run_config,
)
from infoclip.training.run_folder import CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, VAL_DIR
from infoclip.training.run_log import (
    TRAIN_LOG,
    VAL_LOG,
    CsvLog,
    StepResult,
    TensorBoardLog,
    TrainSummary,
    plot_curves,
    summary_json,
)

# prepare_run_config (run_config), StepResult and TrainSummary (run_log) are re-exported: callers import
# them from here.
__all__ = [
    "LOSS_TERMS",
    "FrozenTeacher",
    "StepResult",
    "TrainBundle",
    "TrainSummary",
    "Trainer",
    "TrainingProgress",
    "prepare_run_config",
    "train",
]

logger = logging.getLogger("infoclip.training")

LOSS_TERMS = ("total", "task", "compression", "distillation")


class TrainingProgress(Protocol):
    """What the engine reports to a user interface (rank 0 only). The CLI draws a progress bar with it."""

    def start(self, total: int, done: int) -> None:
        """Training of ``total`` iterations begins with ``done`` already completed (resume)."""

    def update(self, done: int, info: Mapping[str, float]) -> None:
        """Iteration ``done`` finished; ``info`` holds the loss terms and learning rates."""

    def note(self, text: str) -> None:
        """A one-line event (checkpoint written, validation result, warning)."""

    def close(self) -> None:
        """Training ended (normally or not)."""


# ---------------------------------------------------------------- model pieces


class FrozenTeacher(nn.Module):
    """The adapter's teacher, frozen: eval mode, no gradient, weights in the teacher precision.

    ``forward(images (B,3,H,W) float 0-255, class_names) -> DenseEmbeddings`` with float32 embeddings.
    """

    def __init__(self, teacher: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.teacher = teacher.eval().requires_grad_(False)
        self.dtype = dtype
        if dtype != torch.float32:
            self.teacher.to(dtype)

    def train(self, mode: bool = True) -> FrozenTeacher:
        # The teacher stays in eval mode whatever the trainer switches.
        super().train(False)
        return self

    @torch.no_grad()
    def forward(self, images: torch.Tensor, class_names: Sequence[str]) -> Any:
        from infoclip.adapters.contract import DenseEmbeddings

        with autocast(images.device, self.dtype):
            out = self.teacher(images, class_names)
        if not isinstance(out, DenseEmbeddings):
            raise AdapterError(f"the adapter's teacher returned {type(out).__name__}, expected DenseEmbeddings")
        return DenseEmbeddings(out.image.float(), out.grid, out.text.float())


class TrainBundle(nn.Module):
    """Everything that trains, as one module (what DDP wraps): the student and the InfoCLIP objective.

    ``forward(images (B,3,S,S) float 0-255, labels (B,S,S) int64 with -1, class_names, teacher_embeddings)``
    returns a dict of 0-dim tensors ``total``, ``task``, ``compression``, ``distillation`` (the last two 0
    without the objective).
    """

    def __init__(self, model: nn.Module, objective: nn.Module | None, lpam_feeds_decoder: bool = False) -> None:
        super().__init__()
        self.model = model
        self.objective = objective
        self.lpam_feeds_decoder = lpam_feeds_decoder

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str], teacher: Any = None
    ) -> dict[str, torch.Tensor]:
        lpam = self.objective.lpam if (self.objective is not None and self.lpam_feeds_decoder) else None
        out = self.model.forward_train(images, class_names, lpam=lpam)
        task = self.model.task_loss(out.logits, labels).float()
        zero = task.new_zeros(())
        if self.objective is None:
            return {"total": task, "task": task, "compression": zero, "distillation": zero}
        # Entropies of Gram matrices are sensitive to precision: the objective always runs in fp32.
        with torch.autocast(device_type=images.device.type, enabled=False):
            alignment = out.alignment.float() if out.alignment is not None else None
            info = self.objective(
                out.embeddings.image.float(), out.embeddings.text.float(), teacher.image, teacher.text,
                student_alignment=alignment,
            )  # fmt: skip
        return {
            "total": task + info["total"],
            "task": task,
            "compression": info["compression"],
            "distillation": info["distillation"],
        }


# ---------------------------------------------------------------- the trainer


class Trainer:
    """A training run of ``config`` in ``run_dir`` (see the module docstring).

    Args:
        config: a resolved run config (``prepare_run_config`` / ``resolve_run_config``).
        run_dir: the run folder; created if missing.
        resume: continue from ``run_dir``'s last checkpoint (``CheckpointError`` if it has none).
        progress: user-interface callbacks, used on rank 0 only.
        dist_context: process placement; by default read from torchrun's environment.
        stop: the stop-signal flag ``train`` checks at every iteration boundary (``interrupt.GracefulStop``).
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        run_dir: str | os.PathLike[str],
        resume: bool = False,
        progress: TrainingProgress | None = None,
        dist_context: DistContext | None = None,
        stop: GracefulStop | None = None,
    ) -> None:
        self.config = json.loads(json.dumps(config))
        validate_run_config(self.config)
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.stop = stop
        self.ctx = dist_context or init_distributed(self.config["train"]["device"])
        self.device = self.ctx.device
        train_cfg, solver = self.config["train"], self.config["solver"]
        self.max_iter = int(solver["iterations"])
        self.layout = StreamLayout(
            batch_size=int(solver["batch_size"]),
            world_size=self.ctx.world_size,
            rank=self.ctx.rank,
            accumulation=int(train_cfg["grad_accumulation"]),
        )
        self.amp_dtype = precision_dtype(train_cfg["amp"], self.ctx.device)
        self._build_data()
        self._build_model()
        self._build_optimizer()
        self._init_measurements()
        self.start_iter = 0
        self.last_checkpoint: Path | None = None
        self._checkpointed_at: int | None = None
        if resume:
            self._resume()
        self._seed_for_training()
        requested = int(self.config["data"]["num_workers"])
        self.num_workers = worker_count(requested)
        if self.num_workers < requested and self.ctx.is_main:
            self._note(f"data.num_workers {requested} capped at {self.num_workers}, the CPUs this process may use")
        from infoclip.data.panoptic import PanopticDataset

        # A panoptic set gives per-segment targets to a model whose loss takes them (FC-CLIP's set criterion);
        # every other model trains on its semantic view (crowd regions keep their class, as detectron2 converts).
        instance_targets = isinstance(self.train_set, PanopticDataset) and bool(self.model.instance_targets)
        if isinstance(self.train_set, PanopticDataset) and not instance_targets and self.ctx.is_main:
            self._note(f"{self.train_set.name}: the {self.adapter.name} adapter trains on its semantic view (one class map per image)")
        self.loader = build_train_loader(
            self.train_set,
            TrainAugmentation.from_config(self.config["data"]),
            self.layout,
            seed=int(train_cfg["seed"]),
            start_iteration=self.start_iter,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            instance_targets=instance_targets,
        )
        self._batches: Iterator[tuple[torch.Tensor, torch.Tensor]] | None = None
        self.iteration = self.start_iter

    # ---- construction

    def _build_data(self) -> None:
        from infoclip.data import get_dataset

        data = self.config["data"]
        self.train_set = get_dataset(data["train"], split=data["train_split"])
        self.class_names = list(self.train_set.class_names)
        if data["train_classes"] is not None:
            from infoclip.data.vocab import resolve_classes

            names = resolve_classes(data["train_classes"])
            if len(names) != len(self.class_names):
                raise ConfigError(
                    f"data.train_classes {data['train_classes']} has {len(names)} classes, the training set "
                    f"{data['train']} {len(self.class_names)}; give one name per dataset class, in label order"
                )
            self.class_names = names
        if len(self.train_set) == 0:
            raise DatasetError(f"the training split {data['train_split']!r} of {data['train']} has no image")
        self.val_set = None
        self.val_skipped = ""
        if int(self.config["train"]["eval_period"]) == 0:
            self.val_skipped = "train.eval_period is 0"
            return
        name = data["val"] if data["val"] is not None else data["train"]
        try:
            self.val_set = get_dataset(name, split=data["val_split"])
        except DatasetError as exc:
            if data["val"] is not None:
                raise
            self.val_skipped = f"no validation split ({exc})"

    def _build_model(self) -> None:
        from infoclip.adapters import get_adapter
        from infoclip.models import build_model

        cfg = self.config
        self.adapter = get_adapter(cfg["adapter"])
        self.model_config = effective_model_config(self.adapter, cfg)
        seed = int(cfg["train"]["seed"])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # every rank builds the same initial weights
            model = build_model(self.adapter, self.model_config)
            model.load_pretrained()
            info = cfg["infoclip"]
            self.teacher: FrozenTeacher | None = None
            objective = None
            if info["enabled"]:
                from infoclip.core import LPAM, InfoCLIPObjective

                # Built before any checkpoint is loaded, so on resume it is the same frozen teacher.
                teacher = self.adapter.build_teacher(self.model_config, model)
                self.teacher = FrozenTeacher(teacher, precision_dtype(info["teacher_precision"], self.device))
                lpam = model.decoder_lpam if info["lpam_feeds_decoder"] else None
                if lpam is None:
                    lpam = LPAM(model.embed_dim, residual=info["residual"])
                objective = InfoCLIPObjective(
                    lpam,
                    lambda_compression=float(info["lambda_compression"]),
                    lambda_distillation=float(info["lambda_distillation"]),
                    alpha=float(info["alpha"]),
                    gram_axis=info["gram_axis"],
                    kernel=info["kernel"],
                    detach_teacher_in_distillation=bool(info["detach_teacher_in_distillation"]),
                    sigma=None if info["sigma"] is None else float(info["sigma"]),
                )
        init = cfg["train"]["init_weights"]
        if init:  # after the teacher is built: the teacher stays the pretrained CLIP, never these weights
            load_initial_weights(model, init, cfg["adapter"])
        if cfg["train"]["grad_checkpointing"]:
            try:
                model.set_grad_checkpointing(True)
            except AdapterError as exc:
                raise ConfigError(f"train.grad_checkpointing: {exc}") from exc
        self.model = model.to(self.device).train()
        self.objective = objective.to(self.device) if objective is not None else None
        if self.teacher is not None:
            self.teacher.to(self.device)
            self.teacher_fingerprint = ckpt.tensor_fingerprint(self.teacher)
        self.bundle = TrainBundle(self.model, self.objective, bool(cfg["infoclip"]["lpam_feeds_decoder"]))
        self.trainable: nn.Module = self.bundle
        if self.ctx.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.trainable = DistributedDataParallel(
                self.bundle,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=bool(cfg["train"]["find_unused_parameters"]),
            )

    def _init_measurements(self) -> None:
        """The mechanism measurements (``gradient_balance``, ``alignment_agreement``) this run makes."""
        from infoclip.training.gradient_balance import clip_parameters

        self.term_gradient_params: list[nn.Parameter] = []
        self.measurement_notes: list[str] = []
        if self.config["train"]["log_term_gradients"]:
            try:
                self.term_gradient_params = clip_parameters(self.model)
            except AdapterError as exc:
                self.measurement_notes.append(f"per-term CLIP gradient norms not logged: {exc}")
        # The agreement needs the pretrained teacher also in a plain fine-tuning run (that is the comparison).
        self.agreement_teacher: FrozenTeacher | None = None
        if self.config["train"]["alignment_agreement"] and self.val_set is not None:
            if self.teacher is not None:
                self.agreement_teacher = self.teacher
            else:
                with torch.random.fork_rng(devices=[]):  # the training trajectory must not depend on this
                    teacher = self.adapter.build_teacher(self.model_config, self.model)
                precision = precision_dtype(self.config["infoclip"]["teacher_precision"], self.device)
                self.agreement_teacher = FrozenTeacher(teacher, precision).to(self.device)

    def _logs_at(self, done: int) -> bool:
        """Whether iteration ``done`` (1-based) writes a ``log.csv`` row."""
        return done % int(self.config["train"]["log_period"]) == 0 or done == self.max_iter

    def _build_optimizer(self) -> None:
        lpam = self.objective.lpam if self.objective is not None else None
        self.optimizer, self.scheduler = recipe_optimizer(self.model, lpam, self.config)
        use_scaler = self.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=use_scaler)

    def _seed_for_training(self) -> None:
        if self.start_iter == 0:
            seed = int(self.config["train"]["seed"]) + 1000 * self.ctx.rank
            torch.manual_seed(seed)
            np.random.seed(seed % 2**32)
            import random

            random.seed(seed)

    def parameter_summary(self) -> dict[str, int]:
        """Trainable and total parameter counts: student (CLIP part, rest), LPAM, frozen teacher."""
        parts = self.model.parameter_counts()
        counts = {
            "student_total": sum(c["trainable"] + c["frozen"] for c in parts.values()),
            "student_trainable": sum(c["trainable"] for c in parts.values()),
            "clip_trainable": parts.get(CLIP_PART, {}).get("trainable", 0),
        }
        counts["lpam"] = sum(p.numel() for p in self.objective.lpam.parameters()) if self.objective is not None else 0
        counts["teacher"] = sum(p.numel() for p in self.teacher.parameters()) if self.teacher is not None else 0
        return counts

    # ---- checkpoints

    def _resume(self) -> None:
        found = ckpt.last_checkpoint(self.run_dir)
        if found is None:
            raise CheckpointError(f"nothing to resume: {self.run_dir} holds no training checkpoint")
        data = ckpt.read_checkpoint(found, map_location="cpu")
        from infoclip.weights import load_state_strict

        load_state_strict(self.model, data["model"], found)
        if self.objective is not None:
            if "lpam" not in data:
                raise ConfigError(f"{found} was written without the InfoCLIP objective; resume with infoclip.enabled=false")
            load_state_strict(self.objective.lpam, data["lpam"], found)
            saved = data.get("teacher_fingerprint")
            if saved is not None and not np.allclose(saved, self.teacher_fingerprint, rtol=1e-6):
                raise TrainingError(
                    f"the teacher rebuilt for {found} differs from the one it was trained with (other CLIP weights?); "
                    "resume with the same model.clip settings and weights file"
                )
        ckpt.restore_optimizer_state(self.optimizer, self.scheduler, data, found)
        self.scaler.load_state_dict(data["scaler"])
        rng_states = data.get("rng", [])
        if len(rng_states) == self.ctx.world_size:
            ckpt.restore_rng_state(rng_states[self.ctx.rank])
        elif self.ctx.is_main:
            self._note(f"{found} was written by {len(rng_states)} processes, this run has {self.ctx.world_size}: "
                       "data order is unchanged, other random states are reseeded")  # fmt: skip
        self.start_iter = int(data["iteration"])
        self.last_checkpoint = found
        self._checkpointed_at = self.start_iter

    def save_checkpoint(self) -> Path | None:
        """Write the checkpoint of the current iteration (rank 0 writes; every rank must call this).

        Refused with ``TrainingError`` when a weight is NaN or inf (the weights are the same on every rank, so
        every rank refuses): the last good checkpoint stays the last one.
        """
        self._check_finite_weights()
        rng = self.ctx.gather_objects(ckpt.capture_rng_state())
        path = None
        if self.ctx.is_main:
            payload: dict[str, Any] = {
                "config": self.config,
                "model_config": self.model_config,
                "classes": self.class_names,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "rng": rng,
                "world_size": self.ctx.world_size,
            }
            if self.objective is not None:
                payload["lpam"] = self.objective.lpam.state_dict()
                payload["teacher_fingerprint"] = self.teacher_fingerprint
            path = ckpt.write_checkpoint(self.run_dir, self.iteration, payload)
            ckpt.prune_checkpoints(self.run_dir, self.config["train"]["keep_checkpoints"])
            self.last_checkpoint = path
        self._checkpointed_at = self.iteration
        self.ctx.barrier()
        return path

    # ---- one iteration

    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._batches is None:
            self._batches = iter(self.loader)
        images, labels = next(self._batches)
        return images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)

    def run_step(self) -> StepResult:
        """Run iteration ``self.iteration`` (0-based) and advance; raises ``TrainingError`` on a non-finite loss."""
        start = time.perf_counter()
        accumulation = self.layout.accumulation
        self.optimizer.zero_grad(set_to_none=True)
        totals = torch.zeros(len(LOSS_TERMS), dtype=torch.float64)
        data_seconds = forward_seconds = backward_seconds = 0.0
        term_norms: dict[str, float] = {}
        measure = bool(self.term_gradient_params) and self._logs_at(self.iteration + 1)
        # Phase times end at points that synchronise with the device anyway (.cpu() of the losses, the
        # gradient norm as a float), so measuring them costs nothing.
        for micro in range(accumulation):
            tick = time.perf_counter()
            images, labels = self._next_batch()
            data_seconds += time.perf_counter() - tick
            tick = time.perf_counter()
            last = micro == accumulation - 1
            sync = contextlib.nullcontext() if (last or not self.ctx.distributed) else self.trainable.no_sync()
            with sync:
                teacher = self.teacher(images, self.class_names) if self.teacher is not None else None
                with autocast(self.device, self.amp_dtype):
                    losses = self.trainable(images, labels, self.class_names, teacher)
                values = torch.stack([losses[k].detach().float() for k in LOSS_TERMS])
                values = self.ctx.all_mean(values).cpu().double()
                if not torch.isfinite(values).all():
                    self._non_finite(values)
                forward_seconds += time.perf_counter() - tick
                if measure and last:  # counted in backward_seconds: it is three backward passes
                    from infoclip.training.gradient_balance import objective_weights, term_gradient_norms

                    tick = time.perf_counter()
                    term_norms = term_gradient_norms(losses, self.term_gradient_params, objective_weights(self.objective))
                    backward_seconds += time.perf_counter() - tick
                tick = time.perf_counter()
                self.scaler.scale(losses["total"] / accumulation).backward()
                backward_seconds += time.perf_counter() - tick
            totals += values
        tick = time.perf_counter()
        self.scaler.unscale_(self.optimizer)
        grad_norm = float(clip_full_model(self.optimizer, self.config["solver"]["grad_clip"]))
        backward_seconds += time.perf_counter() - tick
        if not math.isfinite(grad_norm) and not self.scaler.is_enabled():
            raise TrainingError(
                f"iteration {self.iteration + 1}: the gradient norm is {grad_norm} although every loss is finite; "
                f"{self._kept_message()}"
            )
        lr = {group.get("name", str(i)): float(group["lr"]) for i, group in enumerate(self.optimizer.param_groups)}
        self.scaler.step(self.optimizer)
        self.scaler.update()
        with warnings.catch_warnings():
            # fp16: the scaler skips steps with inf gradients; the schedule still advances (as detectron2 does).
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step()`")
            self.scheduler.step()
        self.iteration += 1
        means = (totals / accumulation).tolist()
        return StepResult(
            iteration=self.iteration,
            losses=dict(zip(LOSS_TERMS, means)),
            lr=lr,
            grad_norm=grad_norm,
            seconds=time.perf_counter() - start,
            data_seconds=data_seconds,
            forward_seconds=forward_seconds,
            backward_seconds=backward_seconds,
            term_grad_norms=term_norms,
        )

    def _check_finite_weights(self) -> None:
        from infoclip.weights import first_non_finite

        states = [("", self.model.state_dict())]
        if self.objective is not None:
            states.append(("lpam.", self.objective.lpam.state_dict()))
        for prefix, state in states:
            bad = first_non_finite(state)
            if bad is not None:
                raise TrainingError(
                    f"iteration {self.iteration}: parameter {prefix}{bad[0]} holds {bad[1]} non-finite values "
                    f"(NaN or inf); no checkpoint written; {self._last_good()}"
                )

    def _last_good(self) -> str:
        if self.last_checkpoint is not None:
            return f"the last good checkpoint is {self.last_checkpoint}"
        return "no checkpoint was written yet"

    def _stop_on_signal(self, signum: int) -> None:
        """Checkpoint the finished iterations (unless that just happened) and raise ``TrainingInterrupted``."""
        import signal

        if self._checkpointed_at != self.iteration:
            self.save_checkpoint()
        name = signal.Signals(signum).name
        raise TrainingInterrupted(
            f"training stopped by {name} after iteration {self.iteration} of {self.max_iter}; "
            f"checkpoint {self.last_checkpoint}; resume the run to continue",
            signum=signum,
            iteration=self.iteration,
            checkpoint=self.last_checkpoint,
        )

    def _kept_message(self) -> str:
        if self.last_checkpoint is not None:
            return f"the last good checkpoint {self.last_checkpoint} is kept (resume from it with a lower lr or amp=none)"
        return "no checkpoint was written yet"

    def _non_finite(self, values: torch.Tensor) -> None:
        bad = [f"{name} = {value}" for name, value in zip(LOSS_TERMS, values.tolist()) if not math.isfinite(value)]
        raise TrainingError(
            f"non-finite loss at iteration {self.iteration + 1}: {', '.join(bad)}; training stopped before the "
            f"weights changed; {self._kept_message()}"
        )

    # ---- validation

    def validate(self) -> Any:
        """Evaluate the student on the validation split (sharded over ranks); rank 0 writes and returns the result."""
        from infoclip.evaluation import evaluate

        if self.val_set is None:
            return None
        data = self.config["data"]
        count = len(self.val_set) if data["val_limit"] is None else min(len(self.val_set), int(data["val_limit"]))
        shard = list(range(self.ctx.rank, count, self.ctx.world_size))
        result = None
        if shard:
            result = evaluate(self.model, self.val_set, protocol=data["val_protocol"], indices=shard,
                              device=self.device, extra={"iteration": self.iteration})  # fmt: skip
            confusion = torch.from_numpy(result.confusion)
        else:  # more processes than validation images
            classes = len(self.val_set.eval_class_names)
            confusion = torch.zeros((classes, classes), dtype=torch.int64)
        if self.ctx.distributed:
            confusion = confusion.to(self.device)
            torch.distributed.all_reduce(confusion)
        agreement = self._alignment_agreement(shard)
        self.model.train()
        if not self.ctx.is_main or result is None:
            return None
        result = result.with_confusion(confusion.cpu().numpy(), num_images=count)
        result.extra.update(agreement)
        result.write(self.run_dir / VAL_DIR / f"iter_{self.iteration:07d}")
        scalars = {k: v for k, v in result.to_json().items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        scalars.update(agreement)
        CsvLog(self.run_dir / VAL_LOG).append({"iteration": self.iteration, **{k: scalars[k] for k in sorted(scalars)}})
        return result

    def _alignment_agreement(self, shard: Sequence[int]) -> dict[str, float]:
        """Teacher-student alignment agreement (``evaluation.alignment_agreement``) on the validation images,
        averaged over all ranks' shards; ``{}`` when it is off."""
        from infoclip.evaluation.alignment_agreement import METRICS, measure_agreement

        if self.agreement_teacher is None:
            return {}
        assert self.val_set is not None
        images = [torch.from_numpy(self.val_set[i].image).to(self.device).permute(2, 0, 1).float() for i in shard]
        sums = torch.zeros(len(METRICS) + 1, dtype=torch.float64)
        if images:
            means = measure_agreement(
                self.model, self.agreement_teacher, images, list(self.val_set.eval_class_names),
                size=int(self.config["data"]["crop_size"]), alpha=float(self.config["infoclip"]["alpha"]),
            )  # fmt: skip
            sums = torch.tensor([means[k] * len(images) for k in METRICS] + [len(images)], dtype=torch.float64)
        if self.ctx.distributed:
            sums = sums.to(self.device)
            torch.distributed.all_reduce(sums)
            sums = sums.cpu()
        total = float(sums[-1])
        return {k: float(v) / total for k, v in zip(METRICS, sums[:-1].tolist())} if total else {}

    # ---- the whole run

    def _note(self, text: str) -> None:
        logger.info(text)
        if self.progress is not None and self.ctx.is_main:
            self.progress.note(text)

    def _write_header_files(self, changed: Sequence[str]) -> None:
        if not self.ctx.is_main:
            return
        save_config(self.config, self.run_dir / CONFIG_FILE)
        if changed:
            self._note(f"resumed with changed settings: {', '.join(changed)}")

    def train(self, changed_settings: Sequence[str] = ()) -> TrainSummary:
        """Run from the current iteration to ``solver.iterations``; checkpoint, log, validate and plot on the way."""
        train_cfg = self.config["train"]
        started = time.perf_counter()
        self._write_header_files(changed_settings)
        csv_log = CsvLog(self.run_dir / TRAIN_LOG)
        val_log = CsvLog(self.run_dir / VAL_LOG)
        tensorboard = TensorBoardLog(self.run_dir / "tensorboard", bool(train_cfg["tensorboard"])) if self.ctx.is_main else None
        if self.ctx.is_main:
            csv_log.truncate_after(self.start_iter)
            val_log.truncate_after(self.start_iter)
            counts = self.parameter_summary()
            self._note(
                "trainable parameters: "
                f"{counts['student_trainable']:,} of {counts['student_total']:,} in the student "
                f"({counts['clip_trainable']:,} CLIP), LPAM {counts['lpam']:,}; frozen teacher {counts['teacher']:,}; "
                f"{self.ctx.world_size} process(es) on {self.device.type}, "
                f"{self.layout.per_step} image(s) per process per step"
            )
            self._note(self.model.parameter_table())
            if self.start_iter:
                self._note(f"resuming from {self.last_checkpoint} at iteration {self.start_iter}")
            if self.val_skipped:
                self._note(f"validation skipped: {self.val_skipped}")
            for text in self.measurement_notes:
                self._note(text)
            samples = self.layout.per_step * self.ctx.world_size
            info = self.config["infoclip"]
            if info["enabled"] and info["gram_axis"] == "batch" and samples < 2:
                self._note(
                    f"warning: infoclip.gram_axis=batch with {samples} image per step (over all processes): the "
                    "Gram matrices are 1 x 1 and L_c, L_d are 0; use >= 2 images per step or infoclip.gram_axis=pairs"
                )
        if self.progress is not None and self.ctx.is_main:
            self.progress.start(self.max_iter, self.start_iter)
        ckpt_period = int(train_cfg["checkpoint_period"])
        eval_period = int(train_cfg["eval_period"])
        last: StepResult | None = None
        final_metrics = None
        stopped: str | None = None
        immediate = False
        try:
            while self.iteration < self.max_iter:
                last = self.run_step()
                done = self.iteration
                at_end = done == self.max_iter
                if self.ctx.is_main:
                    info = {**{f"loss_{k}": v for k, v in last.losses.items()}, "lr": max(last.lr.values())}
                    if self._logs_at(done):
                        csv_log.append(last.row())
                        if tensorboard is not None:
                            tensorboard.scalars(done, last.row(), prefix="train/")
                    if self.progress is not None:
                        self.progress.update(done, info)
                if done % ckpt_period == 0 or at_end:
                    path = self.save_checkpoint()
                    if path is not None:
                        self._note(f"checkpoint {path.relative_to(self.run_dir)}")
                if eval_period and (done % eval_period == 0 or at_end) and self.val_set is not None:
                    result = self.validate()
                    if result is not None:
                        final_metrics = result.to_json()
                        self._note(f"validation at {done}: mIoU {result.miou:.2f} on {result.num_images} images")
                        if tensorboard is not None:
                            tensorboard.scalars(done, {"mIoU": result.miou}, prefix="val/")
                        self._plot()
                signum = agreed_stop(self.stop, self.ctx)
                if signum is not None:
                    self._stop_on_signal(signum)
        except DiskFullError as exc:
            error = TrainingError(f"{exc}; {self._last_good()}")
            stopped = str(error)
            raise error from exc
        except ImmediateStop as exc:
            stopped, immediate = f"stopped at once by a second {exc}; {self._last_good()}", True
            raise
        except BaseException as exc:  # whatever ends the run early, summary.json says so
            stopped = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise
        finally:
            summary = TrainSummary(
                run_dir=self.run_dir,
                iterations=self.iteration,
                last_checkpoint=self.last_checkpoint,
                last_losses=dict(last.losses) if last is not None else {},
                final_metrics=final_metrics,
                seconds=time.perf_counter() - started,
                stopped=stopped,
            )
            if self.ctx.is_main:
                self._close_run_files(summary, tensorboard, redraw=not immediate)
        return summary

    def _plot(self) -> None:
        why = f"validation off: {self.val_skipped}" if self.val_skipped else "no validation yet"
        plot_curves(self.run_dir, title=self.run_dir.name, no_validation=why)

    def _close_run_files(self, summary: TrainSummary, tensorboard: TensorBoardLog | None, redraw: bool) -> None:
        """End of a run, finished or not: the plot, the TensorBoard writer, the progress display, the summary.

        Each step is attempted even on a full disk (a failed write there must not hide why the run stopped);
        ``summary.json`` then describes the iterations that finished.
        """
        from infoclip.io_utils import atomic_write_text

        def attempt(write: Callable[[], object]) -> None:
            try:
                write()
            except DiskFullError as exc:
                logger.warning("%s", exc)

        if redraw and (self.run_dir / TRAIN_LOG).is_file():
            attempt(self._plot)
        if tensorboard is not None:
            attempt(tensorboard.close)
        if self.progress is not None:
            self.progress.close()
        if summary.final_metrics is not None and summary.stopped is None:
            attempt(lambda: atomic_write_text(self.run_dir / METRICS_FILE, json.dumps(summary.final_metrics, indent=2) + "\n"))
        peak = torch.cuda.max_memory_allocated(self.device) if self.device.type == "cuda" else None
        record = summary_json(summary, processes=self.ctx.world_size, device=str(self.device),
                              peak_gpu_memory_bytes=peak, parameters=self.parameter_summary())  # fmt: skip
        text = json.dumps(record, indent=2) + "\n"
        attempt(lambda: atomic_write_text(self.run_dir / SUMMARY_FILE, text))



def train(
    config: Mapping[str, Any],
    run_dir: str | os.PathLike[str],
    resume: bool = False,
    progress: TrainingProgress | None = None,
    changed_settings: Sequence[str] = (),
) -> TrainSummary:
    """Train ``config`` into ``run_dir`` (resuming from its last checkpoint when ``resume``); see ``Trainer``.

    Under ``torchrun`` every process calls this with the same arguments; rank 0 writes the run folder.
    """
    ctx = init_distributed(config["train"]["device"])

    def on_first(name: str) -> None:
        if progress is not None and ctx.is_main:
            progress.note(stop_notice(name))
        elif ctx.is_main:
            print(stop_notice(name), file=sys.stderr, flush=True)

    try:
        with run_lock.hold(run_dir, enabled=ctx.is_main), GracefulStop(on_first) as stop:
            trainer = Trainer(config, run_dir, resume=resume, progress=progress, dist_context=ctx, stop=stop)
            return trainer.train(changed_settings)
    finally:
        ctx.shutdown()
