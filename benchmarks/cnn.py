"""Deep extractor throughput: the bare network on pre-loaded tensors vs featkit end to end.

Run: ``python benchmarks/cnn.py [--model efficientnet_lite0] [--n 500] [--device cpu]``.

1. Bare forward, images/s, on tensors already decoded, resized and normalised in memory
   (``batch`` images per pass, ``torch.inference_mode``): fp32 NCHW, fp32 channels_last,
   bf16 autocast NCHW, bf16 autocast channels_last (fp16 too on a GPU).
2. featkit end to end, images/s: ``featkit.extract(cnn, paths)`` on ``n`` JPEG files of
   ``../shared/data/pacs150`` (files on disk to float32 embeddings: decoding, resizing,
   DataLoader workers, normalisation, forward, pooling, engine), with n_jobs=None (auto),
   1 and 2.
3. The ratio of (2) to the best bare configuration. Target: >= 0.85.

The bare network is timed again right before the featkit runs of each of ``--rounds``
rounds; ratios are medians of same-round ratios (the machine may be shared).

Also prints the precision "auto" resolves to, torch's thread count, and how far bf16
embeddings are from fp32 ones (cosine) on the same files.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

import numpy as np
import torch

import featkit
from featkit.extractors.backbones import load_backbone

PACS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pacs150"


def _paths(n: int, root: Path = PACS) -> list[str]:
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    if not files:
        raise SystemExit(f"no images under {root}")
    spread = files[:: max(1, len(files) // n)]  # every domain and class
    return [str(p) for p in (spread * (n // len(spread) + 1))[:n]]


def _bare(
    model: str,
    device: torch.device,
    batch: torch.Tensor,
    n: int,
    only: str | None = None,
    pretrained: bool = True,
) -> dict[str, float]:
    """images/s of the network's own forward pass (pre-logits), in several configurations."""
    # Loaded directly, not through the extractor: this is the network alone.
    backbone = load_backbone(model, pretrained=pretrained)
    net = backbone.model.to(device)
    if backbone.library == "timm":
        forward = lambda x: net.forward_head(net.forward_features(x), pre_logits=True)  # noqa: E731
    else:
        forward = net
    x = batch.to(device)
    configs = [("fp32", "nchw"), ("fp32", "channels_last"), ("bf16", "nchw")]
    configs.append(("bf16", "channels_last"))
    if device.type == "cuda":
        configs += [("fp16", "nchw"), ("fp16", "channels_last")]
    out = {}
    for precision, layout in configs:
        if only is not None and only != f"{precision} {layout}":
            continue
        fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        net = net.to(memory_format=fmt)
        xx = x.contiguous(memory_format=fmt)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            forward(xx)  # warm-up
            _sync(device)
            done, start = 0, time.perf_counter()
            while done < n:
                forward(xx)
                done += len(xx)
            _sync(device)
        out[f"{precision} {layout}"] = done / (time.perf_counter() - start)
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--n", type=int, default=500, help="images for each timed run")
    parser.add_argument(
        "--batch",
        type=int,
        default=None,
        help="images per forward pass (default: the extractor's, 8 on the CPU, 32 on a GPU)",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--images", type=Path, default=PACS, help="folder of JPEG/PNG files")
    parser.add_argument("--jobs", default="auto,1,2", help="n_jobs values to time (auto: None)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--random-weights", action="store_true", help="seeded random weights (offline)"
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="threads of the model (default: torch's, one per core); fewer leaves cores idle "
        "for data workers, as a GPU model does",
    )
    args = parser.parse_args()
    if args.torch_threads is not None:
        torch.set_num_threads(args.torch_threads)

    pretrained = not args.random_weights
    jobs = [None if j == "auto" else int(j) for j in args.jobs.split(",")]
    extractor = featkit.create_extractor(
        "cnn", model=args.model, device=args.device, batch_size=args.batch, pretrained=pretrained
    )
    device = extractor._device()
    args.batch = extractor.resolved_batch_size()  # the bare network runs the same passes
    paths = _paths(args.n, args.images)
    prep = extractor.preprocessing()
    print(
        f"model {args.model}, device {device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads, input {prep.crop_size}px, "
        f"precision auto -> {extractor.resolved_precision()}, passes of {args.batch} images"
    )

    # Real images, prepared once: the bare network sees what featkit would feed it.
    uint8 = np.stack([extractor.prepare(p) for p in paths[: args.batch]])
    mean = torch.tensor(prep.mean).view(1, 3, 1, 1)
    std = torch.tensor(prep.std).view(1, 3, 1, 1)
    batch = (torch.from_numpy(uint8).permute(0, 3, 1, 2).float() / 255 - mean) / std
    # Round 0 finds the fastest bare configuration; every round then times it right before
    # the featkit runs, so each ratio compares two figures taken under the same load.
    bare = _bare(args.model, device, batch, args.n, pretrained=pretrained)
    best_name = max(bare, key=bare.get)
    print("\n| bare forward (pre-loaded tensors), first round | images/s |\n|---|---:|")
    for name, ips in bare.items():
        print(f"| {name} | {ips:.1f} |")

    _ = extractor.feature_dim  # the network is loaded before timing, as in a long run
    rows: dict[str, list[tuple[float, float]]] = {}
    notes: dict[str, list[str]] = {}
    results = {}
    for _ in range(args.rounds):
        reference = _bare(args.model, device, batch, args.n, best_name, pretrained)[best_name]
        for n_jobs in jobs:
            start = time.perf_counter()
            fs = featkit.extract(extractor, paths, n_jobs=n_jobs, progress=False)
            ips = len(paths) / (time.perf_counter() - start)
            results[n_jobs] = fs.X
            engine = fs.provenance["engine"]
            label = f"extract(n_jobs={n_jobs})"
            rows.setdefault(label, []).append((ips, ips / reference))
            notes.setdefault(label, []).append(
                f"{engine['n_workers']} workers"
                + (
                    f" (reading {engine['read_share']:.2f}x the model)"
                    if "read_share" in engine
                    else ""
                )
            )
    print(
        f"\n| featkit end to end (files -> embeddings), {args.rounds} rounds | images/s (best) "
        f"| ratio to bare {best_name} in the same round (median) |\n|---|---:|---:|"
    )
    for label, runs in rows.items():
        best = max(ips for ips, _ in runs)
        ratio = float(np.median([r for _, r in runs]))
        print(f"| {label}: {'; '.join(sorted(set(notes[label])))} | {best:.1f} | {ratio:.2f} |")
    for n_jobs, X in results.items():
        np.testing.assert_allclose(X, results[jobs[0]], rtol=1e-5, atol=1e-5, err_msg=str(n_jobs))

    if device.type in ("cpu", "cuda"):
        kw = {"model": args.model, "pretrained": pretrained, "device": str(device)}
        fp32 = featkit.create_extractor("cnn", precision="fp32", **kw)
        bf16 = featkit.create_extractor("cnn", precision="bf16", **kw)
        a = featkit.extract(fp32, paths[:200], progress=False).X.astype(np.float64)
        b = featkit.extract(bf16, paths[:200], progress=False).X.astype(np.float64)
        cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        rel = np.linalg.norm(a - b, axis=1) / np.linalg.norm(a, axis=1)
        print(
            f"\nbf16 vs fp32 embeddings (200 images): cosine mean {cos.mean():.5f}, "
            f"min {cos.min():.5f}; relative L2 difference mean {rel.mean():.4f}"
        )


if __name__ == "__main__":
    main()
