"""The training loop of a fine-tuning run: epochs, validation, the best weights, early
stopping, and the state a resumed run starts from.

One epoch: the training images in the epoch's order (``data.epoch_order``), augmented and
seeded per image, through the network under autocast; AdamW on the label-smoothed
cross-entropy, the schedule stepped per batch; then the validation images (evaluation
preprocessing) scored. Torch's generator is seeded at the start of each epoch from (seed,
epoch), so dropout and drop-path depend on nothing that came before: with the weights,
the optimizer's and the schedule's state and :class:`Progress` restored, a resumed run
computes what an uninterrupted one does.

With a domain loss (:mod:`featkit.finetune.domain`), each source batch comes with a target
batch (``data.target_order``, seeded per epoch), both pass through the backbone together,
and the loss adds the adaptation term on their pooled embeddings, weighted by
``adapt_weight``, at the run's progress (global step / total steps).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from featkit.finetune.data import (
    EPOCH,
    ImageRows,
    derive_seed,
    epoch_order,
    make_loader,
    target_order,
)
from featkit.finetune.domain import DomainLoss
from featkit.finetune.model import ImageClassifier
from featkit.finetune.strategy import set_train_mode

__all__ = ["Progress", "TrainingLoop", "autocast", "deterministic", "logits_of", "torch_threads"]


@dataclass
class Progress:
    """Where a run is: epochs done, their history, the best epoch's weights, the epochs
    since the last improvement, and whether early stopping ended it."""

    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    bad_epochs: int = 0
    stopped: bool = False


class TrainingLoop:
    """The model, its optimizer, schedule and data, and the progress of a run."""

    def __init__(
        self,
        model: ImageClassifier,
        optimizer: Any,
        scheduler: Any,
        *,
        train_set: ImageRows,
        val_set: ImageRows,
        batch_size: int,
        workers: int,
        device: torch.device,
        precision: str,
        label_smoothing: float,
        freeze_bn: bool,
        patience: int | None,
        seed: int,
        target_set: ImageRows | None = None,
        domain_loss: DomainLoss | None = None,
        adapt_weight: float = 1.0,
        total_steps: int = 1,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
        self.train_set = train_set
        self.val_set = val_set
        self.batch_size = batch_size
        self.workers = workers
        self.device = device
        self.precision = precision
        self.loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.freeze_bn = freeze_bn
        self.patience = patience
        self.seed = seed
        self.target_set = target_set
        self.domain_loss = domain_loss
        self.adapt_weight = adapt_weight
        self.total_steps = max(1, int(total_steps))
        self.progress = Progress()

    # -- one epoch ------------------------------------------------------------------------
    def run_epoch(self) -> dict[str, Any]:
        """Train one epoch, validate, keep the best weights; the epoch's history row."""
        epoch = self.progress.epoch  # 0-based: the one about to run
        started = time.perf_counter()
        torch.manual_seed(derive_seed(self.seed, EPOCH, epoch))  # dropout, drop-path
        set_train_mode(self.model, self.freeze_bn)
        order = epoch_order(len(self.train_set), self.seed, epoch)
        loader = make_loader(
            self.train_set,
            order,
            epoch,
            self.batch_size,
            self.workers,
            pin_memory=self.device.type == "cuda",
        )
        targets = None
        if self.domain_loss is not None and self.target_set is not None:
            self.domain_loss.train()
            # One target batch per source batch: the target images, reshuffled as often
            # as it takes to cover the epoch's steps.
            targets = make_loader(
                self.target_set,
                target_order(len(self.target_set), len(order), self.seed, epoch),
                epoch,
                self.batch_size,
                self.workers,
                pin_memory=self.device.type == "cuda",
            )
        first_step = epoch * math.ceil(len(order) / self.batch_size)
        loss, accuracy, extra = self._train(loader, targets, first_step)
        val_loss = val_accuracy = None
        if len(self.val_set):
            logits = logits_of(
                self.model, self.val_set, self.batch_size, self.workers, self.device, self.precision
            )
            targets = torch.from_numpy(self.val_set.labels)
            val_loss = float(torch.nn.functional.cross_entropy(logits, targets))
            val_accuracy = float((logits.argmax(1) == targets).double().mean())
        row = {
            "epoch": epoch + 1,
            "loss": loss,
            "accuracy": accuracy,
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            "lr": float(self.optimizer.param_groups[0]["lr"]),
            **extra,
            "seconds": round(time.perf_counter() - started, 3),
        }
        self.progress.history.append(row)
        self.progress.epoch = epoch + 1
        self._track_best(row)
        return row

    def _train(self, loader: Any, targets: Any, step: int) -> tuple[float, float, dict]:
        """One pass over the loader (with a target batch beside each source batch when
        adapting): the mean training loss and accuracy, and the adaptation's figures."""
        total, correct, seen = 0.0, 0, 0
        adapt_total, domain_accuracy_sum, steps = 0.0, 0.0, 0
        batches = loader if targets is None else zip(loader, targets, strict=True)
        for batch in batches:
            (xb, yb), xt = (batch, None) if targets is None else (batch[0], batch[1][0])
            xb = xb.to(self.device, non_blocking=True)
            yb = yb.to(self.device, non_blocking=True)
            adapt_loss = None
            with autocast(self.device, self.precision):
                if xt is None:
                    logits = self.model(xb)
                else:
                    # One forward pass over both domains: BatchNorm normalises them together.
                    xt = xt.to(self.device, non_blocking=True)
                    embedded = self.model.embed(torch.cat([xb, xt]))
                    source, target = embedded[: len(xb)], embedded[len(xb) :]
                    logits = self.model.head(source)
            class_loss = self.loss_fn(logits.float(), yb)
            loss = class_loss
            if xt is not None:
                progress = min(1.0, (step + steps) / self.total_steps)
                adapt_loss = self.domain_loss(source.float(), target.float(), progress)
                loss = class_loss + self.adapt_weight * adapt_loss
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                loss.backward()
                self.optimizer.step()
            self.scheduler.step()
            n = len(yb)
            total += float(class_loss.detach()) * n
            correct += int((logits.detach().argmax(1) == yb).sum())
            seen += n
            steps += 1
            if adapt_loss is not None:
                adapt_total += float(adapt_loss.detach())
                domain_accuracy_sum += getattr(self.domain_loss, "accuracy", 0.0)
        extra: dict[str, Any] = {}
        if targets is not None:
            extra["adapt_loss"] = adapt_total / max(steps, 1)
            if hasattr(self.domain_loss, "accuracy"):
                extra["domain_accuracy"] = domain_accuracy_sum / max(steps, 1)
        return total / max(seen, 1), correct / max(seen, 1), extra

    def _track_best(self, row: dict[str, Any]) -> None:
        """Keep the best epoch's weights (validation accuracy, then loss); count the epochs
        without progress and stop after ``patience`` of them."""
        if row["val_accuracy"] is None:
            return
        progress = self.progress
        key = (row["val_accuracy"], -row["val_loss"])
        best = progress.best
        if best is None or key > (best["val_accuracy"], -best["val_loss"]):
            progress.best = {
                "epoch": row["epoch"],
                "val_accuracy": row["val_accuracy"],
                "val_loss": row["val_loss"],
                "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            }
            progress.bad_epochs = 0
        else:
            progress.bad_epochs += 1
            if self.patience is not None and progress.bad_epochs >= self.patience:
                progress.stopped = True

    def done(self, epochs: int) -> bool:
        return self.progress.epoch >= epochs or self.progress.stopped

    def keep_best(self) -> None:
        """Load the best epoch's weights (when there was validation)."""
        if self.progress.best is not None:
            self.model.load_state_dict(self.progress.best["model"])

    # -- resuming -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "domain_loss": None if self.domain_loss is None else self.domain_loss.state_dict(),
            # Not dataclasses.asdict, which would deep-copy the best weights once more.
            "progress": {f.name: getattr(self.progress, f.name) for f in fields(Progress)},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.domain_loss is not None and state.get("domain_loss") is not None:
            self.domain_loss.load_state_dict(state["domain_loss"])
        self.progress = Progress(**state["progress"])


def logits_of(
    model: ImageClassifier,
    rows: ImageRows,
    batch_size: int,
    workers: int,
    device: torch.device,
    precision: str,
    fn: Any = None,
) -> torch.Tensor:
    """``fn`` (the model's logits by default) of ``rows`` in eval mode, float32 on the CPU."""
    fn = model if fn is None else fn
    was_training = model.training
    model.eval()
    try:
        loader = make_loader(rows, range(len(rows)), 0, int(batch_size), workers)
        out = []
        for xb, _ in loader:
            with torch.inference_mode(), autocast(device, precision):
                out.append(fn(xb.to(device)).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.zeros((0, 0))


def autocast(device: torch.device, precision: str) -> Any:
    """torch.autocast in bf16 or fp16; nothing for fp32."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


@contextlib.contextmanager
def deterministic(device: torch.device, precision: str) -> Iterator[None]:
    """Deterministic kernels: torch's switch on the CPU (restored after); deterministic
    cuDNN without benchmark mode (and no TF32 in fp32) on a GPU."""
    if device.type == "cuda":
        with torch.backends.cudnn.flags(
            enabled=True, benchmark=False, deterministic=True, allow_tf32=precision != "fp32"
        ):
            yield
        return
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


@contextlib.contextmanager
def torch_threads(n_jobs: int | None) -> Iterator[None]:
    """Run the block with ``n_jobs`` CPU threads in torch (-1: every core; None: torch's
    setting), then restore the setting. On a busy machine fewer threads can be much faster:
    this module's tests fine-tuned 10x faster with one thread than with two on 2 cores
    shared with other jobs, torch's threads spinning while they wait for each other."""
    if n_jobs is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads((os.cpu_count() or 1) if n_jobs == -1 else int(n_jobs))
    try:
        yield
    finally:
        torch.set_num_threads(before)
