"""Reproduce the CORAL paper's Office-Caltech10 SURF table with featkit's CORAL and SA.

Sun, Feng and Saenko, "Return of Frustratingly Easy Domain Adaptation", AAAI 2016,
Table 3: no adaptation (NA), Subspace Alignment (SA) and CORAL on the 12 ordered shifts
between amazon (A), Caltech10 (C), dslr (D) and webcam (W), all source samples labelled.
The protocol is the authors' released code, as the shared data README describes it:

* each domain normalised on its own: rows divided by their sum, then each feature
  z-scored with the population standard deviation (MATLAB's ``zscore(X, 1)``);
* NA: an RBF SVM (gamma = 1/800, libsvm's default) trained on the source;
* CORAL and SA: an SVM on the asymmetric kernel of their code, train ``Xs A Xs'``, test
  ``Xt A' Xs'``, with ``A = Cs^(-1/2) Ct^(1/2)`` (CORAL: reg 1, covariances with the
  n - 1 divisor) or ``A = Ps Ps' Pt Pt'`` (SA, d principal directions per domain);
* C chosen by 2-fold cross-validation on the source (libsvm's ``-v 2``: one random
  stratified split), from 1e-3 .. 1e2 (NA) or 1e-3 .. 1e4 (CORAL, SA).

SA uses d = 10: that dimension reproduces all 12 published SA values to the printed
digit (d = 80, common in re-runs, gives a 47.9 average instead of 41.5).

Usage::

    python examples/reproduce_coral_office_caltech.py PATH/office_caltech10_surf
        [--seed 0] [--seeds N] [--sa-dim 10] [--json OUT.json]

Prints our rows next to the published ones, the differences, whether each method meets
the target (average within 0.5 points, every shift within 2), and why a shift differs.
``--seeds N`` repeats the CV with seeds ``seed .. seed+N-1`` and prints the spread.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.io import loadmat
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import SVC

from featkit.align import CORAL, SubspaceAlignment

DOMAINS = {"A": "amazon", "C": "Caltech10", "D": "dslr", "W": "webcam"}
SHIFTS = [(s, t) for s in DOMAINS for t in DOMAINS if s != t]
NAMES = [f"{s}→{t}" for s, t in SHIFTS]
METHODS = ("NA", "SA", "CORAL")

#: Sun, Feng, Saenko (AAAI 2016), Table 3, as quoted in the shared data README
#: (office_caltech10_surf's README.md); columns in SHIFTS order.
PUBLISHED = {
    "NA": [41.7, 44.6, 31.9, 53.1, 47.8, 41.7, 26.2, 26.4, 52.5, 27.6, 21.2, 78.3],
    "SA": [37.4, 36.3, 39.0, 44.9, 39.5, 41.0, 32.9, 34.3, 65.1, 34.4, 31.0, 62.4],
    "CORAL": [45.1, 39.5, 44.4, 52.1, 45.9, 46.4, 37.7, 33.8, 84.7, 36.0, 33.7, 86.6],
}
#: The issue's target: average within 0.5 points of the published one, each shift within 2.
AVG_TOL, SHIFT_TOL = 0.5, 2.0

C_GRID_NA = 10.0 ** np.arange(-3, 3)  # 1e-3 .. 1e2
C_GRID_KERNEL = 10.0 ** np.arange(-3, 5)  # 1e-3 .. 1e4
# libsvm stops at max(1e7, 100 n) iterations; scikit-learn's copy never stops (-1), and the
# SA kernel (rank d, not positive semi-definite) makes large-C fits run to the cap. 1e5
# costs 100x less and chooses the same C as 1e7 (checked on seeds 0 and 1; 1e4 and 1e5
# agree on seeds 0..19): those fits never win the CV.
MAX_ITER = 100_000


def load_domain(folder: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` of one domain, normalised as the authors do."""
    mat = loadmat(folder / f"{name}_SURF_L10.mat")
    return normalise(mat["fts"]), mat["labels"].ravel().astype(int)


def normalise(counts: np.ndarray) -> np.ndarray:
    """Rows divided by their sum, then features z-scored with the population std."""
    X = counts.astype(np.float64)
    X /= X.sum(axis=1, keepdims=True)
    std = X.std(axis=0)
    std[std == 0] = 1.0  # MATLAB's zscore leaves constant features at 0
    return (X - X.mean(axis=0)) / std


def kernels(method: str, Xs, Xt, sa_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The train kernel (source x source) and test kernel (target x source) of a method.

    NA: the RBF kernel, precomputed (the same predictions as ``SVC(gamma=1/800)``, 15x
    faster). CORAL and SA: the authors' ``Xs A Xs'`` and ``Xt A' Xs'``. With
    ``center=False`` both aligners map source rows to ``X A_s`` and target rows to
    ``X A_t`` with ``A = A_s A_t'`` (CORAL: ``A_s = A``, ``A_t = I``; SA:
    ``A_s = Ps Ps' Pt``, ``A_t = Pt``), so both kernels are products of the two transforms.
    """
    if method == "NA":
        return rbf_kernel(Xs, gamma=1 / 800), rbf_kernel(Xt, Xs, gamma=1 / 800)
    if method == "CORAL":
        aligner = CORAL(reg=1.0, covariance="sample", center=False, dtype="float64")
    else:
        aligner = SubspaceAlignment(n_components=sa_dim, center=False)
    aligner.fit_domains(Xs, Xt)
    source_side = aligner.transform_source(Xs)
    return source_side @ aligner.transform_target(Xs).T, aligner.transform_target(
        Xt
    ) @ source_side.T


def make_svc(C: float) -> SVC:
    return SVC(C=C, kernel="precomputed", max_iter=MAX_ITER)


def cv_accuracy(K: np.ndarray, y: np.ndarray, C: float, seed: int) -> float:
    """libsvm's ``-v 2``: accuracy over all rows of a random stratified 2-fold split."""
    correct = 0
    for train, test in StratifiedKFold(2, shuffle=True, random_state=seed).split(K, y):
        svc = make_svc(C).fit(K[np.ix_(train, train)], y[train])
        correct += int((svc.predict(K[np.ix_(test, train)]) == y[test]).sum())
    return correct / len(y)


class Shift:
    """One method on one shift: its kernels, and target accuracies cached by C."""

    def __init__(self, method: str, Xs, ys, Xt, yt, sa_dim: int) -> None:
        self.ys, self.yt = ys, yt
        self.grid = C_GRID_NA if method == "NA" else C_GRID_KERNEL
        self.K_train, self.K_test = kernels(method, Xs, Xt, sa_dim)
        self._target: dict[float, float] = {}

    def select_C(self, seed: int) -> float:
        """The C of the grid with the best 2-fold CV accuracy (the first on ties)."""
        scores = [cv_accuracy(self.K_train, self.ys, C, seed) for C in self.grid]
        return float(self.grid[int(np.argmax(scores))])

    def target_accuracy(self, C: float) -> float:
        """Accuracy (%) on the target of the SVM trained on the whole source with C."""
        if C not in self._target:
            svc = make_svc(C).fit(self.K_train, self.ys)
            self._target[C] = 100.0 * float((svc.predict(self.K_test) == self.yt).mean())
        return self._target[C]


def row(name: str, values: list[float]) -> str:
    return f"{name:<16}" + "".join(f"{v:7.1f}" for v in values) + f"{np.mean(values):8.2f}"


def compare(method: str, ours: list[float]) -> dict:
    """Print one method's averages and largest difference; return them for the JSON."""
    diff = np.subtract(ours, PUBLISHED[method])
    worst = int(np.argmax(np.abs(diff)))
    avg, published = float(np.mean(ours)), float(np.mean(PUBLISHED[method]))
    met = abs(avg - published) <= AVG_TOL and bool(np.all(np.abs(diff) <= SHIFT_TOL + 1e-9))
    print(
        f"{method:<6} average {avg:6.2f} vs {published:6.2f} ({avg - published:+.2f}); "
        f"largest shift difference {diff[worst]:+.1f} ({NAMES[worst]}); "
        f"target {'met' if met else 'MISSED'}"
    )
    return {"average": avg, "published_average": published, "shifts": ours, "target_met": met}


def explain(method: str, i: int, shift: Shift, ours: float, C: float) -> dict:
    """Print why a shift differs: its target accuracy at each C of the grid.

    A diagnostic only (C is chosen on the source): where the published value is one of
    these accuracies, the paper's CV split picked another C than ours did.
    """
    per_C = {float(c): shift.target_accuracy(c) for c in shift.grid}
    published = PUBLISHED[method][i]
    matching = [c for c, acc in per_C.items() if abs(acc - published) < 0.15]
    groups: list[list] = []  # runs of consecutive C with the same accuracy
    for c, acc in per_C.items():
        if groups and groups[-1][2] == acc:
            groups[-1][1] = c
        else:
            groups.append([c, c, acc])
    listing = ", ".join(
        f"C={lo:g}{'' if lo == hi else f'..{hi:g}'}: {acc:.1f}" for lo, hi, acc in groups
    )
    verdict = (
        f"the published value is ours at C={matching[0]:g}: the paper's CV split chose it"
        if matching
        else "not explained by the choice of C"
    )
    print(f"  {method} {NAMES[i]}: {ours:.1f} vs {published:.1f} at CV's C={C:g} ({listing})")
    print(f"    {verdict}")
    return {"per_C": per_C, "published_at_C": matching}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="folder with the four *_SURF_L10.mat files")
    parser.add_argument("--seed", type=int, default=0, help="seed of the 2-fold CV split")
    parser.add_argument("--seeds", type=int, default=1, help="also run N CV seeds from --seed")
    parser.add_argument("--sa-dim", type=int, default=10, help="SA subspace dimension d")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=ConvergenceWarning)  # see MAX_ITER

    start = time.perf_counter()
    data = {key: load_domain(args.data, name) for key, name in DOMAINS.items()}
    shifts = {m: [Shift(m, *data[s], *data[t], args.sa_dim) for s, t in SHIFTS] for m in METHODS}
    seeds = range(args.seed, args.seed + max(args.seeds, 1))
    chosen = {(m, seed): [sh.select_C(seed) for sh in shifts[m]] for m in METHODS for seed in seeds}
    ours = {
        (m, seed): [sh.target_accuracy(C) for sh, C in zip(shifts[m], chosen[m, seed], strict=True)]
        for m in METHODS
        for seed in seeds
    }

    print(f"Office-Caltech10 SURF, accuracy (%), CV seed {args.seed}, SA with d={args.sa_dim};")
    print("paper: Sun, Feng, Saenko, AAAI 2016, Table 3 (as quoted in the shared data README)")
    print(f"{'':<16}" + "".join(f"{name:>7}" for name in NAMES) + f"{'avg':>8}")
    for m in METHODS:
        print(row(f"{m} ours", ours[m, args.seed]))
        print(row(f"{m} paper", PUBLISHED[m]))
    print()
    summary = {m: compare(m, ours[m, args.seed]) for m in METHODS}

    for m in METHODS:
        summary[m]["C"] = chosen[m, args.seed]
        summary[m]["differing"] = {}
        for i, acc in enumerate(ours[m, args.seed]):
            if abs(acc - PUBLISHED[m][i]) > SHIFT_TOL:
                C = chosen[m, args.seed][i]
                summary[m]["differing"][NAMES[i]] = explain(m, i, shifts[m][i], acc, C)
    if any(summary[m]["differing"] for m in METHODS):
        print(
            "  The 2-fold CV on the source often scores two C within a point of each other;"
            "\n  the split decides, and the paper does not give its split (try --seeds 20)."
        )

    if len(seeds) > 1:
        print(f"\nSpread of the 12-shift average over CV seeds {seeds.start}..{seeds.stop - 1}:")
        for m in METHODS:
            avgs = np.array([np.mean(ours[m, seed]) for seed in seeds])
            within = int(np.sum(np.abs(avgs - np.mean(PUBLISHED[m])) <= AVG_TOL))
            print(
                f"{m:<6} mean {avgs.mean():6.2f}  min {avgs.min():6.2f}  max {avgs.max():6.2f}"
                f"  (paper {np.mean(PUBLISHED[m]):.2f}; within {AVG_TOL}: "
                f"{within}/{len(avgs)} seeds)"
            )
            summary[m]["seed_averages"] = avgs.tolist()

    elapsed = time.perf_counter() - start
    print(f"\nruntime {elapsed:.1f} s")
    if args.json:
        report = {"seed": args.seed, "sa_dim": args.sa_dim, "runtime_s": elapsed}
        args.json.write_text(json.dumps({**report, "methods": summary}, indent=1))


if __name__ == "__main__":
    main()
