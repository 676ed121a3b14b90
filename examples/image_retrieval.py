"""Content-based image retrieval with a FAISS index: find the images most like a query.

Holds out a share of FOLDER/<class>/<image> as queries, indexes the features of the rest
(the gallery) in a FAISS index (``Flat``: exact cosine search; ``--factory HNSW32`` or
``IVF64,Flat`` for approximate ones), and ranks the whole gallery for every query: an
image "is relevant" when it has the query's class::

    python examples/image_retrieval.py FOLDER [-e cnn] [--per-class 30] [-k 5]
        [--queries 0.2] [--factory Flat] [--out retrieval] [--cache-dir .cache]

Prints precision@1, precision@k and the mean average precision over all queries (mAP:
scikit-learn's ``average_precision_score`` of each query's ranking of the whole gallery),
next to a random ranking's precision. Writes to ``--out``: ``retrieval.png`` (the first
query of each class, searched from its image file with ``featkit.search_images``, and its
top-k neighbours; green frame: same class), ``gallery.faiss`` (search it again with
``featkit index search -i gallery.faiss --image Q.jpg``) and the features of the gallery
and the queries (``features/``: featkit FeatureSets). ``--json`` prints the metrics and
each query's top-k gallery ids as JSON instead.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import average_precision_score

import featkit


def draw_grid(
    results: list[dict], queries: featkit.Dataset, gallery: featkit.Dataset, out: Path
) -> None:
    """One row per query: the query, then its neighbours with their cosine similarity."""
    items = dict(zip(gallery.ids.tolist(), gallery.items, strict=True))
    shown = list(dict.fromkeys(r["query"] for r in results))
    k = max(r["rank"] for r in results)
    fig, axes = plt.subplots(len(shown), k + 1, figsize=(1.6 * (k + 1), 1.7 * len(shown)))
    for i, (ax_row, query) in enumerate(zip(np.atleast_2d(axes), shown, strict=True)):
        label = queries.class_names[queries.labels[i]]
        ax_row[0].imshow(featkit.read_image(queries.items[i]))
        ax_row[0].set_title(f"query: {label}", fontsize=8)
        for r in (r for r in results if r["query"] == query):
            ax = ax_row[r["rank"]]
            ax.imshow(featkit.read_image(items[r["id"]]))
            ax.set_title(f"{r['rank']}: {r['score']:.2f}", fontsize=8)
            for spine in ax.spines.values():
                spine.set(color="green" if r["label"] == label else "red", linewidth=3)
    for ax in np.ravel(axes):
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="image folder FOLDER/<class>/<image> (or any data set)")
    parser.add_argument("-e", "--extractor", default="cnn")
    parser.add_argument("--per-class", type=int, help="keep N random images per class")
    parser.add_argument("-k", type=int, default=5, help="neighbours per query")
    parser.add_argument("--queries", type=float, default=0.2, help="share held out as queries")
    parser.add_argument("--factory", default="Flat", help="FAISS index factory string")
    parser.add_argument("--out", type=Path, default=Path("retrieval"))
    parser.add_argument("--cache-dir", help="feature cache (re-runs are quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    data = featkit.load_dataset(args.folder)
    if args.per_class:
        data = data.sample_per_class(args.per_class, args.seed)
    gallery, queries = data.train_test_split(test_size=args.queries, seed=args.seed)
    extractor = featkit.create_extractor(args.extractor)
    found = {}
    for part, images in (("gallery", gallery), ("queries", queries)):
        found[part] = featkit.extract(extractor, images, cache_dir=args.cache_dir, progress=False)
        found[part].save(args.out / "features" / part)
    index = featkit.build_index(found["gallery"], args.factory, args.out / "gallery.faiss")

    # Rank the whole gallery for each query (an approximate index may leave slots at -1).
    scores, rows = index.search(found["queries"].X, k=index.ntotal)
    y_query, ok = found["queries"].y, rows >= 0
    relevant = (index.labels[rows] == y_query[:, None]) & ok
    ap = [average_precision_score(r[o], s[o]) for r, s, o in zip(relevant, scores, ok, strict=True)]
    metrics = {
        "precision@1": relevant[:, 0].mean(),
        f"precision@{args.k}": relevant[:, : args.k].mean(),
        "mAP": np.mean(ap),
        # A random ranking's precision: the share of the query's class in the gallery.
        "chance": np.mean(np.bincount(index.labels)[y_query] / index.ntotal),
    }
    if args.json:
        top = [index.ids[r[: args.k]].tolist() for r in rows]
        print(json.dumps({**metrics, "queries": found["queries"].ids.tolist(), "top": top}))
    else:
        print(f"{data.name}: {len(y_query)} queries, {index!r}, {args.extractor} features")
        print("  ".join(f"{name} {value:.3f}" for name, value in metrics.items()))

    # The picture: the first query of each of up to 8 classes, searched from its image file
    # (search_images embeds query images the way the gallery was embedded).
    shown = np.unique(queries.labels, return_index=True)[1][:8]
    results = featkit.search_images(
        index, [queries.items[i] for i in shown], k=args.k, extractor=extractor
    )
    draw_grid(results, queries.subset(shown), gallery, args.out / "retrieval.png")
    if not args.json:
        print(f"wrote {args.out / 'retrieval.png'}, {args.out / 'gallery.faiss'}")


if __name__ == "__main__":
    main()
