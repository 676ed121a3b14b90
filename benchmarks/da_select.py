"""Label-free selection of aligner parameters: how close each scorer's choice comes to the oracle's.

For every ordered pair of domains, every aligner and every point of its default grid
(``featkit.align.selection.DEFAULT_GRIDS``), the selection pipeline (the aligner, then a
logistic regression on standardised features) is fitted on :class:`DomainHoldout`'s split
(two thirds of the labelled source rows and every unlabelled target row). Each scorer
scores it on the held-out source rows and the target rows without their labels; the
target accuracy (all target rows, with their labels) is what the oracle maximises.

For each scorer: the target accuracy of its choice, the oracle's, and the loss (oracle minus
choice), averaged over pairs; per aligner (choosing among its parameters) and over all the
candidates together (choosing the aligner too). Two baselines: ``source-acc`` (plain
accuracy on the held-out source rows) and ``preset`` (featkit's default parameters).

* Office-Caltech10 SURF: the 12 pairs, each domain normalised as in benchmarks/gfk.py.
* PACS (pacs150, 4 domains, 12 pairs): frozen ``cnn`` features (EfficientNet-Lite0, 224 px,
  1,280-d) read from featkit's feature cache (``--cache-dir``; computed there if absent).

::

    python benchmarks/da_select.py --data ../shared/data --cache-dir .cache
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import ParameterGrid

from featkit.align import make_aligner, stack_domains
from featkit.align.domains import TARGET_ID
from featkit.align.selection import DEFAULT_GRIDS, SCORERS, DomainHoldout, selection_pipeline

ALIGNERS = ("coral", "sa", "tca")
#: featkit's preset parameters, the ``preset`` baseline.
PRESETS = {"coral": {"reg": 1.0}, "sa": {"n_components": 80}, "tca": {"n_components": 30}}
SURF = {"C": "Caltech10", "A": "amazon", "W": "webcam", "D": "dslr"}
PACS = {"A": "art_painting", "C": "cartoon", "P": "photo", "S": "sketch"}


def load_surf(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from scipy.io import loadmat

    out = {}
    for key, name in SURF.items():
        mat = loadmat(folder / "office_caltech10_surf" / f"{name}_SURF_L10.mat")
        X = mat["fts"].astype(np.float64)
        X /= X.sum(1, keepdims=True)
        std = X.std(0)
        out[key] = ((X - X.mean(0)) / np.where(std > 0, std, 1.0), mat["labels"].ravel() - 1)
    return out


def load_pacs(folder: Path, cache: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    import featkit
    from featkit.data import load_dataset

    data = load_dataset(folder / "pacs150")
    fs = featkit.extract(featkit.create_extractor("cnn"), data, cache_dir=cache, progress=False)
    print(f"PACS cnn features: {fs.X.shape}, cache {fs.provenance['cache']['cached_images']} hit")
    domains = np.asarray(fs.domains)
    return {k: (fs.X[domains == v].astype(np.float64), fs.y[domains == v]) for k, v in PACS.items()}


def candidates() -> list[tuple[str, dict[str, Any]]]:
    return [(a, dict(p)) for a in ALIGNERS for p in ParameterGrid(DEFAULT_GRIDS[a])]


def run_pair(Xs, ys, Xt, yt, seed: int) -> list[dict[str, Any]]:
    """Every candidate: its target accuracy and every scorer's score."""
    X, y, _ = stack_domains(Xs, Xt, ys)
    ((train, test),) = DomainHoldout(random_state=seed).split(X, y)
    held = test[y[test] != -1]
    out = []
    for aligner, params in candidates():
        est = selection_pipeline(make_aligner(aligner, **params)).fit(X[train], y[train])
        target = np.full(len(Xt), TARGET_ID)
        row = {
            "aligner": aligner,
            "params": params,
            "accuracy": float(np.mean(est.predict(Xt, sample_domain=target) == yt)),
            "scores": {
                "source-acc": float(np.mean(est.predict(X[held], sample_domain=1) == y[held]))
            },
        }
        for name, make in SCORERS.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    row["scores"][name] = float(make(seed)(est, X[test], y[test]))
                except Exception as error:  # a failure is a result here
                    print(f"  {aligner} {params} {name}: {error}")
                    row["scores"][name] = float("nan")
        out.append(row)
    return out


def choose(rows: list[dict[str, Any]], scorer: str) -> dict[str, Any]:
    scores = np.array([r["scores"][scorer] for r in rows])
    scores = np.where(np.isfinite(scores), scores, -np.inf)
    return rows[int(np.argmax(scores))]


def summary(pairs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Per scorer: mean chosen / oracle accuracy and loss, per aligner and over all."""
    names = ["source-acc", *SCORERS]
    out: dict[str, dict[str, float]] = {}
    for name in [*names, "preset"]:
        per_aligner, overall = [], []
        for rows in pairs.values():
            for aligner in ALIGNERS:
                mine = [r for r in rows if r["aligner"] == aligner]
                if name == "preset":
                    pick = next(r for r in mine if _is_preset(r))
                else:
                    pick = choose(mine, name)
                best = max(r["accuracy"] for r in mine)
                per_aligner.append((pick["accuracy"], best))
            if name != "preset":
                overall.append((choose(rows, name)["accuracy"], max(r["accuracy"] for r in rows)))
        a = np.array(per_aligner) * 100
        entry = {
            "aligner_chosen": float(a[:, 0].mean()),
            "aligner_oracle": float(a[:, 1].mean()),
            "aligner_loss": float((a[:, 1] - a[:, 0]).mean()),
            "aligner_worst_loss": float((a[:, 1] - a[:, 0]).max()),
        }
        if overall:
            o = np.array(overall) * 100
            entry |= {
                "all_chosen": float(o[:, 0].mean()),
                "all_oracle": float(o[:, 1].mean()),
                "all_loss": float((o[:, 1] - o[:, 0]).mean()),
                "all_worst_loss": float((o[:, 1] - o[:, 0]).max()),
            }
        out[name] = entry
    return out


def _is_preset(row: dict[str, Any]) -> bool:
    wanted = PRESETS[row["aligner"]]
    return all(row["params"].get(k) == v for k, v in wanted.items()) and (
        row["aligner"] != "tca" or row["params"]["mu"] == 1.0
    )


def print_table(title: str, table: dict[str, dict[str, float]]) -> None:
    print(f"\n{title}: target accuracy (%) of each scorer's choice, oracle, loss")
    print(
        f"{'scorer':<20}{'per aligner':>12}{'oracle':>8}{'loss':>7}{'worst':>7}"
        f"{'all':>9}{'oracle':>8}{'loss':>7}{'worst':>7}"
    )
    for name, e in table.items():
        line = (
            f"{name:<20}{e['aligner_chosen']:>12.1f}{e['aligner_oracle']:>8.1f}"
            f"{e['aligner_loss']:>7.1f}{e['aligner_worst_loss']:>7.1f}"
        )
        if "all_chosen" in e:
            line += (
                f"{e['all_chosen']:>9.1f}{e['all_oracle']:>8.1f}{e['all_loss']:>7.1f}"
                f"{e['all_worst_loss']:>7.1f}"
            )
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache"))
    parser.add_argument("--datasets", default="office-caltech,pacs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("da_select.json"))
    args = parser.parse_args()
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for dataset in args.datasets.split(","):
        started = time.perf_counter()
        domains = load_surf(args.data) if dataset == "office-caltech" else None
        if domains is None:
            domains = load_pacs(args.data, args.cache_dir)
        pairs = {}
        for s in domains:
            for t in domains:
                if s == t:
                    continue
                (Xs, ys), (Xt, yt) = domains[s], domains[t]
                pairs[f"{s}→{t}"] = run_pair(Xs, ys, Xt, yt, args.seed)
                print(f"{dataset} {s}→{t}: {time.perf_counter() - started:.0f} s", flush=True)
        table = summary(pairs)
        results[dataset] = {
            "pairs": pairs,
            "summary": table,
            "seconds": round(time.perf_counter() - started, 1),
        }
        args.out.write_text(json.dumps(results, indent=1))
        print_table(dataset, table)


if __name__ == "__main__":
    main()
