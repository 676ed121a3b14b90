"""USPS <-> MNIST with 1-NN: the JDA paper's digits benchmark, and what alignment adds.

Reproduces the 1-nearest-neighbour baselines of Long et al. (ICCV 2013, "Transfer Feature
Learning with Joint Distribution Adaptation", Table 2) on their 16x16 digits pair
(USPS 1,800 + MNIST 2,000 images, every row L2-normalised), then aligns the features with
featkit's SA, CORAL, TCA and JDA before the same 1-NN classifier::

    python examples/adapt_usps_mnist.py PATH/usps_mnist_jda

``PATH`` holds ``USPS_vs_MNIST.mat`` and ``MNIST_vs_USPS.mat`` (MATLAB v7.3, read with
h5py). Prints accuracy (%) per method and shift, with the paper's numbers beside.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import h5py
import numpy as np
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import normalize

from featkit.align import CORAL, JDA, TCA, SubspaceAlignment, align_domains

SHIFTS = {"USPS→MNIST": "USPS_vs_MNIST.mat", "MNIST→USPS": "MNIST_vs_USPS.mat"}
#: Long et al. 2013, Table 2: 1-NN on raw pixels and JDA (k=100, lambda=0.1, T=10).
PUBLISHED = {"1-NN": (44.70, 65.94), "JDA": (59.65, 67.28)}
METHODS = {
    "1-NN": None,
    "SA": lambda: SubspaceAlignment(80),
    "CORAL": lambda: CORAL(),
    "TCA": lambda: TCA(100, mu=1.0),
    "JDA": lambda: JDA(100, lam=0.1, n_iter=10),
}


def load_pair(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``Xs, ys, Xt, yt`` of one shift, rows L2-normalised, labels 0..9."""
    with h5py.File(path, "r") as mat:
        Xs, Xt = np.asarray(mat["Xs"]), np.asarray(mat["Xt"])
        ys, yt = np.asarray(mat["Ys"]).ravel() - 1, np.asarray(mat["Yt"]).ravel() - 1
    return normalize(Xs), ys.astype(int), normalize(Xt), yt.astype(int)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="folder with the two .mat files")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    results: dict[str, list[float]] = {m: [] for m in METHODS}
    seconds: dict[str, float] = dict.fromkeys(METHODS, 0.0)
    for filename in SHIFTS.values():
        Xs, ys, Xt, yt = load_pair(args.path / filename)
        for method, make in METHODS.items():
            started = time.perf_counter()
            Zs, Zt = (Xs, Xt) if make is None else align_domains(make(), Xs, Xt, ys)
            accuracy = KNeighborsClassifier(1).fit(Zs, ys).score(Zt, yt)
            seconds[method] += time.perf_counter() - started
            results[method].append(round(100 * accuracy, 2))
    if args.json:
        print(json.dumps({"accuracy": results, "published": PUBLISHED}))
        return
    head = f"{'method':<8}" + "".join(f"{s:>13}" for s in SHIFTS) + f"{'average':>10}{'time':>8}"
    print(head)
    print("-" * len(head))
    for method, accs in results.items():
        line = f"{method:<8}" + "".join(f"{a:>13.2f}" for a in accs)
        print(f"{line}{np.mean(accs):>10.2f}{seconds[method]:>7.1f}s")
    print()
    for method, accs in PUBLISHED.items():
        line = f"{method + ' *':<8}" + "".join(f"{a:>13.2f}" for a in accs)
        print(f"{line}{np.mean(accs):>10.2f}")
    print("* published (Long et al., ICCV 2013, Table 2)")


if __name__ == "__main__":
    main()
