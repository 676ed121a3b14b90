"""The learning-rate schedule of fine-tuning: a linear warm-up, then a cosine decay to zero.

Built from torch's own schedulers (``LinearLR`` then ``CosineAnnealingLR`` in a
``SequentialLR``), stepped once per batch; every parameter group keeps its ratio to the
others (the layer-wise rates of :mod:`featkit.finetune.strategy`). Its ``state_dict`` goes
into the resumable checkpoint.
"""

from __future__ import annotations

from typing import Any

from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

__all__ = ["WARMUP_START", "warmup_cosine"]

#: The first step's learning rate, as a fraction of the peak.
WARMUP_START = 0.01


def warmup_cosine(optimizer: Any, warmup_steps: int, total_steps: int) -> Any:
    """A per-step schedule: ``warmup_steps`` linear steps from 1% of each group's rate to
    all of it, then a cosine decay that reaches zero after ``total_steps`` steps."""
    warmup_steps = max(0, min(int(warmup_steps), int(total_steps) - 1))
    decay = CosineAnnealingLR(optimizer, T_max=max(1, int(total_steps) - warmup_steps))
    if warmup_steps == 0:
        return decay
    warmup = LinearLR(
        optimizer, start_factor=WARMUP_START, end_factor=1.0, total_iters=warmup_steps
    )
    return SequentialLR(optimizer, [warmup, decay], milestones=[warmup_steps])
