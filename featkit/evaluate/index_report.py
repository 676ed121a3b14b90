"""The report of a FAISS index's k-NN evaluation: what ``featkit index evaluate --out`` saves.

Labelled test features vote among the labelled rows of an index (:func:`knn_scores`,
streamed shard by shard), and the one search per test row gives both the report's numbers
and its galleries: the per-image predictions (test ids, true and predicted labels: O(n)
ids and ints) for the error gallery, and the voting neighbours of a few seeded test queries
per class for the retrieval gallery. The features themselves are never all in memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from featkit._faiss import import_faiss
from featkit._version import __version__, dependency_versions
from featkit.evaluate.out_of_core import knn_scores
from featkit.evaluate.results import EvaluationResult
from featkit.evaluate.retrieval import RETRIEVAL_K, RETRIEVAL_PER_CLASS, pick_queries
from featkit.evaluate.rows import ScoreRow
from featkit.features import FeatureSet
from featkit.hardware import describe_machine
from featkit.index import FeatureIndex
from featkit.store import ShardStore, open_features

__all__ = ["index_knn_evaluation"]


def index_knn_evaluation(
    index: FeatureIndex | str | os.PathLike,
    test: ShardStore | FeatureSet | str | os.PathLike,
    *,
    n_neighbors: int = 20,
    weights: str | None = None,
    temperature: float = 0.07,
    seed: int = 0,
    per_class: int = RETRIEVAL_PER_CLASS,
    retrieval_k: int = RETRIEVAL_K,
    nprobe: int | None = None,
    ef_search: int | None = None,
    device: str = "auto",
) -> tuple[dict[str, Any], EvaluationResult]:
    """The k-NN scores of the labelled ``test`` rows voting among the rows of ``index``
    (:func:`~featkit.evaluate.out_of_core.knn_scores`, as ``featkit index evaluate``
    prints them) and the :class:`EvaluationResult` of the same predictions, whose
    :meth:`~EvaluationResult.save` writes the report folder.

    The result has one row (the index's extractor, classifier ``"<k>-nn@index"``) with the
    test ids and the true and predicted labels, and, per test class, ``per_class`` test
    queries drawn with ``seed`` with their ``retrieval_k`` nearest indexed rows (the first
    of the neighbours that voted: no second search; cosine similarities, or l2 distances
    under ``"distance"``). Its ``images`` map the ids the galleries show to their files
    where the data sets' roots are known (an indexed id that names another file than the
    same test id is left out: its thumbnail would show the wrong image). ``index``: a
    FeatureIndex or its saved path (loaded on ``device``), searched with ``nprobe`` /
    ``ef_search`` when given; ``test``: a feature store or a FeatureSet, or their folders,
    read one shard at a time.
    """
    path = None if isinstance(index, FeatureIndex) else Path(index)
    idx = index if isinstance(index, FeatureIndex) else FeatureIndex.load(index, device=device)
    if nprobe is not None:
        idx.nprobe = nprobe
    if ef_search is not None:
        idx.ef_search = ef_search
    data = test if isinstance(test, (ShardStore, FeatureSet)) else open_features(test)
    labels = data.labels if isinstance(data, ShardStore) else np.asarray(data.y)
    queries = pick_queries(labels, seed=seed, per_class=per_class)
    scores = knn_scores(
        idx,
        data,
        n_neighbors=n_neighbors,
        weights=weights,
        temperature=temperature,
        return_predictions=True,
        neighbours_of=queries,
    )
    test_ids, y_true, y_pred = (scores.pop(key) for key in ("test_ids", "y_true", "y_pred"))
    neighbours = scores.pop("neighbours")
    class_names = list(scores["per_class"])
    test_provenance = _provenance_of(data)
    extractor = _extractor_name(idx, test_provenance)
    classifier = f"{scores['n_neighbors']}-nn@index"
    failed = len(data.failed)
    row = ScoreRow(
        extractor=extractor,
        aligner="none",
        classifier=classifier,
        protocol="index",
        split="test",
        accuracy=scores["accuracy"],
        balanced_accuracy=scores["balanced_accuracy"],
        macro_f1=scores["macro_f1"],
        n_train=scores["n_train"],
        n_test=scores["n_test"],
        dim=idx.dim,
        fit_s=0.0,
        predict_s=scores["seconds"],
        per_class=scores["per_class"],
        confusion_matrix=scores["confusion_matrix"],
        extract_s=float((test_provenance.get("timing") or {}).get("seconds", 0.0)),
        n_failed=failed or None,
        test_ids=test_ids,
        y_true=y_true,
        y_pred=y_pred,
    )
    retrieval = _retrieval(idx, queries, neighbours, test_ids, y_true, retrieval_k)
    knobs = {"nprobe": idx.nprobe, "ef_search": idx.ef_search}
    params = {
        "index": None if path is None else str(path),
        "factory": idx.factory,
        "metric": idx.metric,
        "n_rows": idx.ntotal,
        "n_neighbors": scores["n_neighbors"],
        "weights": scores["weights"],
        "temperature": temperature,
        **{name: value for name, value in knobs.items() if value is not None},
        "device": idx.device,
    }
    dataset = dict(test_provenance.get("dataset") or {})
    dataset.setdefault("name", "features")
    dataset.update(class_names=class_names, n_images=scores["n_test"])
    provenance = {
        "job": "index evaluate",
        "featkit": __version__,
        "versions": {**dependency_versions(), "faiss": _faiss_version()},
        "machine": describe_machine(),
        "dataset": dataset,
        "protocol": {
            "name": "index",
            "description": _describe(idx, path, scores),
            "params": params,
            "n_splits": 1,
        },
        "extractors": {extractor: idx.extractor},
        "classifiers": {classifier: _describe_vote(scores, temperature)},
        "seed": seed,
        "index": {
            **params,
            "dim": idx.dim,
            "dataset": idx.dataset,
            "store": None if idx.store is None else str(idx.store.path),
            "stats": idx.stats,
        },
        "test": {
            "features": None if isinstance(test, (ShardStore, FeatureSet)) else str(test),
            "extractor": test_provenance.get("extractor"),
            "failed": failed,
        },
    }
    if test_provenance.get("machine"):
        provenance["machines"] = {extractor: test_provenance["machine"]}
    result = EvaluationResult(
        rows=[row],
        provenance=provenance,
        retrieval={extractor: retrieval},
        images=_image_paths(idx, test_provenance, row, retrieval),
    )
    return scores, result


def _retrieval(
    idx: FeatureIndex,
    queries: list[int],
    neighbours: dict[int, dict[str, list[Any]]],
    test_ids: list[str],
    y_true: list[int],
    k: int,
) -> dict[str, Any]:
    """The retrieval gallery's record (the shape of
    :func:`featkit.evaluate.retrieval.retrieval_examples`) from the neighbours the vote
    found; one read of the ids of all the neighbours shown."""
    shown = [neighbours[q]["rows"][:k] for q in queries]
    flat = np.asarray([r for rows in shown for r in rows], dtype=np.int64)
    ids = iter(idx.id_of(flat).tolist())
    labels = iter(idx.labels[flat].tolist())
    key = "similarity" if idx.metric == "cosine" else "distance"
    records = []
    for q, rows in zip(queries, shown, strict=True):
        scores = neighbours[q]["scores"]
        records.append(
            {
                "id": str(test_ids[q]),
                "label": int(y_true[q]),
                "neighbours": [
                    {"id": str(next(ids)), "label": int(next(labels)), key: round(s, 4)}
                    for s in scores[: len(rows)]
                ],
            }
        )
    return {"split": "test", "k": k, "metric": idx.metric, "queries": records}


def _image_paths(
    idx: FeatureIndex,
    test_provenance: dict[str, Any],
    row: ScoreRow,
    retrieval: dict[str, Any],
) -> dict[str, str]:
    """``{id: file}`` of the images the galleries show: the misclassified test images, the
    queries (under the test data set's root) and their neighbours (the index's)."""
    root = (test_provenance.get("dataset") or {}).get("root")
    wrong = (i for i, t, p in zip(row.test_ids, row.y_true, row.y_pred, strict=True) if t != p)
    queries = (q["id"] for q in retrieval["queries"])
    images = _resolved(_chain(wrong, queries), lambda i: _path_under(root, i))
    indexed = {n["id"] for q in retrieval["queries"] for n in q["neighbours"]}
    for image_id, file in _resolved(indexed, idx.path_of_id).items():
        if images.setdefault(image_id, file) != file:
            del images[image_id]  # two images by one id: neither thumbnail is certain
    return images


def _resolved(ids: Iterable[str], where: Any) -> dict[str, str]:
    out = {}
    for image_id in ids:
        file = where(image_id)
        if file is not None:
            out[image_id] = file
    return out


def _chain(*parts: Iterable[str]) -> Iterable[str]:
    for part in parts:
        yield from part


def _path_under(root: str | None, image_id: str) -> str | None:
    """A test row's file: its data set's root joined with its id, or the id when it is a
    file (what :meth:`FeatureIndex.path_of_id` does for an indexed row)."""
    if root:
        return os.fspath(Path(root) / image_id)
    return image_id if os.path.isfile(image_id) else None


def _provenance_of(data: ShardStore | FeatureSet) -> dict[str, Any]:
    if isinstance(data, ShardStore):
        return dict(data.metadata.get("provenance") or {})
    return dict(data.provenance or {})


def _extractor_name(idx: FeatureIndex, test_provenance: dict[str, Any]) -> str:
    for config in (idx.extractor, test_provenance.get("extractor")):
        if isinstance(config, dict) and config.get("name"):
            return str(config["name"])
    return "features"


def _describe(idx: FeatureIndex, path: Path | None, scores: dict[str, Any]) -> str:
    where = f" {path.name}" if path is not None else ""
    knobs = "".join(
        f", {name} {value}"
        for name, value in (("nprobe", idx.nprobe), ("ef_search", idx.ef_search))
        if value is not None
    )
    return (
        f"the test rows vote among the {scores['n_train']} rows of the index{where} "
        f"({idx.factory!r}, {idx.metric}{knobs})"
    )


def _describe_vote(scores: dict[str, Any], temperature: float) -> str:
    how = {
        "uniform": "one vote each",
        "distance": "weighted by 1 / distance",
        "similarity": f"weighted by exp(similarity / {temperature:g}) as in DINO",
    }.get(scores["weights"], scores["weights"])
    return (
        f"the {scores['n_neighbors']} nearest rows of the index {scores['factory']!r} "
        f"({scores['metric']}) vote, {how} (FaissKNNClassifier)"
    )


def _faiss_version() -> str | None:
    return getattr(import_faiss(), "__version__", None)
