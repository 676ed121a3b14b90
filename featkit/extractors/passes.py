"""Forward passes at one fixed shape, and on a GPU, passes that never wait for their data.

A batched extractor's network sees its images in passes of exactly ``size`` images, the
last one padded with black images (:func:`pad`): kernels choose their blocking, hence in
reduced precision their rounding, by the batch shape, so at one shape a row depends only
on its image.

On a CUDA device :func:`launch_passes` overlaps the copies with the work (timm's
``PrefetchLoader`` pattern): each pass's uint8 images are staged in pinned memory and
copied up on a side stream while the previous pass runs (normalising happens on the
device, so a quarter of float32's bytes travel), and its rows are copied back into pinned
memory asynchronously. The host waits once, when it needs the rows, not once per pass.
Elsewhere the passes run one after the other, with the same shapes and rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["PendingRows", "launch_passes", "pad"]

#: Pinned staging buffers on a CUDA device: one being copied up while the next is filled.
STAGING_BUFFERS = 2


def pad(batch: np.ndarray, size: int) -> np.ndarray:
    """``batch`` followed by black images up to ``size`` images.

    Kernels choose their blocking (hence, in bf16, their rounding) by the batch shape: on
    an AMX CPU a ViT's row moved by 0.0125 between a batch of 1 and one of 8. At one
    fixed shape every image gets the same arithmetic wherever it sits in the batch.
    """
    if len(batch) == size:
        return batch
    padding = np.zeros((size - len(batch), *batch.shape[1:]), dtype=batch.dtype)
    return np.concatenate([batch, padding])


@dataclass
class PendingRows:
    """The rows of one pass: ``rows`` (a host tensor) is complete once ``ready`` (a CUDA
    event, or None on other devices) has happened; the first ``n`` rows are real images."""

    rows: Any
    ready: Any
    n: int

    def wait(self) -> np.ndarray:
        """The pass's real rows as float32, once they are there."""
        if self.ready is not None:
            self.ready.synchronize()
        return self.rows[: self.n].numpy().astype(np.float32, copy=False)


def launch_passes(
    batch: Any,
    size: int,
    device: Any,
    forward: Callable[[Any], Any],
    launched: list[PendingRows],
) -> None:
    """Start passes of ``size`` images over ``batch`` ((n, ...) uint8, an array or a
    tensor already on ``device``; the last pass padded) through ``forward`` (a (size, ...)
    uint8 tensor on ``device`` to its rows on ``device``), appending each to ``launched``
    as it starts.

    On a CUDA device the call returns as soon as the last pass is queued; the rows are
    there after :meth:`PendingRows.wait`. ``launched`` holds the passes started before an
    error (a GPU out of memory): their rows stay good, and the caller goes on from there.
    """
    import torch

    starts = range(0, len(batch), size)
    if isinstance(batch, torch.Tensor):  # already on the device (decoded there)
        for start in starts:
            part = batch[start : start + size]
            if len(part) < size:  # the black images of pad(), made on the device
                part = torch.cat([part, part.new_zeros((size - len(part), *part.shape[1:]))])
            launched.append(_rows_back(forward(part), min(size, len(batch) - start), device))
        return
    if device.type != "cuda":
        for start in starts:
            part = batch[start : start + size]
            x = torch.from_numpy(np.ascontiguousarray(pad(part, size)))
            if device.type != "cpu":
                x = x.to(device)
            launched.append(_rows_back(forward(x), len(part), device))
        return
    compute = torch.cuda.current_stream(device)
    side = torch.cuda.Stream(device)
    staging = [
        torch.empty((size, *batch.shape[1:]), dtype=torch.uint8, pin_memory=True)
        for _ in range(min(STAGING_BUFFERS, len(starts)))
    ]
    uploaded: list[Any] = [None] * len(staging)  # each buffer's last copy up, as an event

    def upload(k: int) -> tuple[Any, Any, int]:
        slot = k % len(staging)
        if uploaded[slot] is not None:
            uploaded[slot].synchronize()  # its previous images have left the buffer
        part = batch[starts[k] : starts[k] + size]
        staging[slot].copy_(torch.from_numpy(np.ascontiguousarray(pad(part, size))))
        with torch.cuda.stream(side):
            x = staging[slot].to(device, non_blocking=True)
            done = torch.cuda.Event()
            done.record(side)
        uploaded[slot] = done
        return x, done, len(part)

    following = upload(0)
    for k in range(len(starts)):
        x, copied, n = following
        compute.wait_event(copied)
        x.record_stream(compute)  # allocated on the side stream, used on this one
        launched.append(_rows_back(forward(x), n, device))
        if k + 1 < len(starts):
            # Filled and sent while the GPU runs the pass just queued.
            following = upload(k + 1)


def _rows_back(out: Any, n: int, device: Any) -> PendingRows:
    """A pass's rows on their way to the host: on a CUDA device copied asynchronously into
    pinned memory (the host waits only when it needs them), elsewhere at once."""
    import torch

    if device.type != "cuda":
        return PendingRows(out.cpu(), None, n)
    rows = torch.empty(out.shape, dtype=out.dtype, pin_memory=True)
    rows.copy_(out, non_blocking=True)
    ready = torch.cuda.Event()
    ready.record(torch.cuda.current_stream(device))
    return PendingRows(rows, ready, n)
