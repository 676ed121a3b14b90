"""CORAL and Subspace Alignment: featkit against SKADA, ADAPT and a plain numpy reference.

For n rows per domain and each feature dimension d, times fit + transform of source and
target, in one process, for:

- CORAL: a numpy float64 eigh reference of the paper's CORAL (np.cov + I, eigh powers);
  SKADA's ``CORALAdapter()`` (Ledoit-Wolf); featkit's ``CORAL(covariance="ledoit-wolf",
  reg=0)`` (SKADA's definition) and ``CORAL()`` (the paper's) in float32 and float64;
  ADAPT's ``CORAL`` when the ``adapt`` package is installed (it needs TensorFlow).
- SA (80 components): SKADA's ``SubspaceAlignmentAdapter``; ADAPT's ``SA`` when installed
  (else its recipe: two scikit-learn PCA fits, as ``adapt.feature_based.SA`` does);
  featkit's ``SubspaceAlignment`` in float64 and float32.

Each row prints the time, the ratio to the same-definition reference, the largest
difference of the aligned target-side scores, and the accuracy of a nearest-centroid
classifier trained on the aligned source and scored on the aligned target (identical
accuracy is the requirement). Targets (issue 5): featkit's CORAL at least 2x faster than
SKADA's, and featkit's SA no slower than ADAPT's, with the same accuracy::

    python benchmarks/align.py                  # n = 10,000, d = 800, 1280, 2048
    python benchmarks/align.py --n 2000 --dims 256
"""

from __future__ import annotations

import argparse
import importlib.util
import time
import warnings
from collections.abc import Callable
from functools import partial

import numpy as np
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestCentroid

from featkit.align import CORAL, SubspaceAlignment, stack_domains

#: Each method runs this many times; the best time counts (the others absorb warm-up and
#: other processes' noise on a shared machine).
REPEATS = 3
Aligned = tuple[np.ndarray, np.ndarray]
#: A method under test: (source, target) -> (aligned source, aligned target).
Runner = Callable[[np.ndarray, np.ndarray], Aligned]


def make_domains(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Two shifted, correlated domains with 10 classes (float32): the target is the source
    under a random linear map, a per-feature scaling and a shift."""
    rng = np.random.default_rng(seed)
    k = 10
    means = rng.standard_normal((k, d)) * 0.15
    mix = rng.standard_normal((d, d)) / np.sqrt(d)

    def domain(m: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, k, m)
        X = means[y] + rng.standard_normal((m, d)) @ mix + 0.3 * rng.standard_normal((m, d))
        return X, y

    Xs, ys = domain(n)
    Xt, yt = domain(n)
    warp = np.eye(d) + 0.3 * rng.standard_normal((d, d)) / np.sqrt(d)
    Xt = (Xt @ warp) * rng.uniform(0.5, 2.0, d) + rng.standard_normal(d)
    return Xs.astype(np.float32), ys, Xt.astype(np.float32), yt


def numpy_coral(Xs: np.ndarray, Xt: np.ndarray, dtype: type = np.float64) -> Aligned:
    """The paper's CORAL in plain numpy: (Cs + I)^(-1/2) (Ct + I)^(1/2) by eigh."""

    def power(C: np.ndarray, p: float) -> np.ndarray:
        w, V = np.linalg.eigh(C)
        return (V * w**p) @ V.T

    Xs, Xt = Xs.astype(dtype), Xt.astype(dtype)
    eye = np.eye(Xs.shape[1], dtype=dtype)
    cs, ct = (np.cov(X, rowvar=False).astype(dtype) for X in (Xs, Xt))  # np.cov is float64
    A = power(cs + eye, -0.5) @ power(ct + eye, 0.5)
    return Xs @ A, Xt


def skada_coral(Xs: np.ndarray, Xt: np.ndarray) -> Aligned:
    from skada import CORALAdapter

    X, _, sd = stack_domains(Xs, Xt)
    Z = CORALAdapter().fit(X, sample_domain=sd).transform(X, sample_domain=sd, allow_source=True)
    return Z[: len(Xs)], Z[len(Xs) :]


def adapt_coral(Xs: np.ndarray, Xt: np.ndarray) -> Aligned:
    from adapt.feature_based import CORAL as AdaptCORAL

    model = AdaptCORAL(lambda_=1.0, verbose=0)
    return model.fit_transform(Xs, Xt), Xt


def featkit_aligner(aligner: CORAL | SubspaceAlignment) -> Runner:
    def run(Xs: np.ndarray, Xt: np.ndarray) -> Aligned:
        aligner.fit_domains(Xs, Xt)
        return aligner.transform_source(Xs), aligner.transform_target(Xt)

    return run


def skada_sa(Xs: np.ndarray, Xt: np.ndarray, k: int) -> Aligned:
    from skada import SubspaceAlignmentAdapter

    X, _, sd = stack_domains(Xs, Xt)
    adapter = SubspaceAlignmentAdapter(n_components=k, random_state=0).fit(X, sample_domain=sd)
    Z = adapter.transform(X, sample_domain=sd, allow_source=True)
    return Z[: len(Xs)], Z[len(Xs) :]


def adapt_sa(Xs: np.ndarray, Xt: np.ndarray, k: int) -> Aligned:
    """ADAPT's SA when installed, else its recipe (adapt/feature_based/_sa.py, 0.4.5)."""
    try:
        from adapt.feature_based import SA
    except ImportError:
        pca_s, pca_t = PCA(k).fit(Xs), PCA(k).fit(Xt)
        M = pca_s.components_ @ pca_t.components_.T
        return pca_s.transform(Xs) @ M, pca_t.transform(Xt)
    model = SA(n_components=k, verbose=0, random_state=0)
    return model.fit_transform(Xs, Xt), model.transform(Xt, domain="tgt")


def measure(run: Runner, Xs: np.ndarray, ys: np.ndarray, Xt: np.ndarray, yt: np.ndarray) -> tuple:
    """(best seconds of REPEATS runs, aligned source, aligned target, nearest-centroid
    accuracy)."""
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(REPEATS):
            started = time.perf_counter()
            Zs, Zt = run(Xs, Xt)
            times.append(time.perf_counter() - started)
    seconds = min(times)
    accuracy = NearestCentroid().fit(Zs, ys).score(Zt, yt)
    return seconds, np.asarray(Zs, np.float64), np.asarray(Zt, np.float64), accuracy


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (SKADA and ADAPT are optional here)."""
    return importlib.util.find_spec(module) is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="rows per domain")
    parser.add_argument("--dims", default="800,1280,2048", help="feature dimensions")
    parser.add_argument("--k", type=int, default=80, help="SA components")
    parser.add_argument(
        "--device", default=None, help="also time featkit's torch backend there (cpu, cuda)"
    )
    args = parser.parse_args()
    has_adapt = installed("adapt")
    has_skada = installed("skada")
    print(f"n = {args.n} per domain; ADAPT {'installed' if has_adapt else 'not installed'}")
    header = f"{'d':>5}  {'method':<38} {'seconds':>8} {'speed-up':>7} {'max diff':>9} {'acc':>7}"
    for d in (int(x) for x in args.dims.split(",")):
        Xs, ys, Xt, yt = make_domains(args.n, d)
        print()
        print(header)
        print("-" * len(header))
        np64, skada_lw = "numpy eigh float64 (paper)", "SKADA CORALAdapter() (Ledoit-Wolf)"
        coral: dict[str, tuple[Runner, str | None]] = {
            np64: (numpy_coral, None),
            "numpy eigh float32 (paper)": (partial(numpy_coral, dtype=np.float32), np64),
            "featkit CORAL(center=False) float32": (featkit_aligner(CORAL(center=False)), np64),
            "featkit CORAL(center=False) float64": (
                featkit_aligner(CORAL(center=False, dtype="float64")),
                np64,
            ),
            skada_lw: (skada_coral, None),
            "featkit CORAL(ledoit-wolf) float32": (
                featkit_aligner(CORAL(reg=0.0, covariance="ledoit-wolf")),
                skada_lw if has_skada else None,
            ),
        }
        if not has_skada:
            del coral[skada_lw]
        if has_adapt:
            coral["ADAPT CORAL (paper)"] = (adapt_coral, np64)
        if args.device:
            coral[f"featkit CORAL(center=False) torch {args.device}"] = (
                featkit_aligner(CORAL(center=False, backend="torch", device=args.device)),
                np64,
            )
        _table(d, coral, Xs, ys, Xt, yt)
        k = args.k
        adapt_name = f"ADAPT SA({k})" + ("" if has_adapt else " recipe")
        sa: dict[str, tuple[Runner, str | None]] = {
            adapt_name: (partial(adapt_sa, k=k), None),
            f"SKADA SubspaceAlignmentAdapter({k})": (partial(skada_sa, k=k), adapt_name),
            f"featkit SubspaceAlignment({k})": (
                featkit_aligner(SubspaceAlignment(k)),
                adapt_name,
            ),
            f"featkit SA({k}) float32": (
                featkit_aligner(SubspaceAlignment(k, dtype="float32")),
                adapt_name,
            ),
        }
        if not has_skada:
            del sa[f"SKADA SubspaceAlignmentAdapter({k})"]
        if args.device:
            sa[f"featkit SA({k}) float32 torch {args.device}"] = (
                featkit_aligner(
                    SubspaceAlignment(k, dtype="float32", backend="torch", device=args.device)
                ),
                adapt_name,
            )
        _table(d, sa, Xs, ys, Xt, yt)


def _table(
    d: int,
    methods: dict[str, tuple[Runner, str | None]],
    Xs: np.ndarray,
    ys: np.ndarray,
    Xt: np.ndarray,
    yt: np.ndarray,
) -> None:
    """Run each method; its speed-up and output difference against its reference (a method
    of the same definition run earlier in the table), and its accuracy."""
    results: dict[str, tuple] = {}
    for name, (run, ref) in methods.items():
        results[name] = seconds, Zs, _, accuracy = measure(run, Xs, ys, Xt, yt)
        ratio, diff = "-", "-"
        if ref is not None:
            ref_s, ref_Zs, _, _ = results[ref]
            ratio = f"{ref_s / seconds:.2f}x"
            # Principal directions have no intrinsic sign: match each column's first.
            sign = np.sign(np.sum(Zs * ref_Zs, axis=0))
            diff = f"{np.abs(Zs * sign - ref_Zs).max() / np.abs(ref_Zs).max():.1e}"
        print(f"{d:>5}  {name:<38} {seconds:>8.3f} {ratio:>7} {diff:>9} {accuracy:>7.4f}")


if __name__ == "__main__":
    main()
