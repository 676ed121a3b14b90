"""Domain adaptation on PACS: train on photos, test on art paintings, with and without alignment.

Extracts EfficientNet-Lite0 ImageNet embeddings (``cnn``, offline weights) of the photo
and art_painting domains of PACS (PACS_ROOT/<domain>/<class>/<image>), then trains each
classifier on the labelled photos and scores it on the paintings: as they are (``none``),
after CORAL (Sun et al., AAAI 2016) and after Subspace Alignment (Fernando et al., ICCV
2013), both fitted on the labelled photos and the *unlabelled* paintings::

    python examples/adapt_pacs_photo_to_art.py PACS_ROOT [--per-class 40]
        [--source photo] [--target art_painting] [--aligners none,coral,sa]
        [--classifiers knn,svm] [--out adapt-photo-art] [--cache-dir .cache]

Prints target accuracy (%) per aligner and classifier, each aligner's gain over ``none``,
and featkit's numbers for this shift on the whole PACS subset (docs/benchmarks.md) for
reference; writes the report folder (results.json, report.md, charts) to ``--out``.
CORAL helps both classifiers; SA helps k-NN but hurts the linear SVM (it maps the two
domains to different scales, which cosine k-NN ignores: see docs/benchmarks.md).
``--per-class N`` keeps N seeded random images per class and domain, for a quick run.
"""

from __future__ import annotations

import argparse

import numpy as np

import featkit
from featkit.evaluate import adapt

#: featkit adapt on all of pacs150, photo → art_painting (docs/benchmarks.md), accuracy %.
FULL_PACS150 = {
    ("none", "knn"): 72.5,
    ("none", "svm"): 72.8,
    ("coral", "knn"): 80.6,
    ("coral", "svm"): 80.2,
    ("sa", "knn"): 80.1,
    ("sa", "svm"): 58.3,
}


def print_table(
    title: str, acc: dict[tuple[str, str], float], aligners: list[str], classifiers: list[str]
) -> None:
    """One row per aligner, one column per classifier; each aligner's gain over none."""
    print(f"{title:<20}" + "".join(f"{c:>8}" for c in classifiers))
    for aligner in aligners:
        cells = "".join(f"{acc.get((aligner, c), np.nan):8.1f}" for c in classifiers)
        gains = [acc.get((aligner, c), np.nan) - acc.get(("none", c), np.nan) for c in classifiers]
        gain = "" if aligner == "none" else "   gain " + " ".join(f"{g:+5.1f}" for g in gains)
        print(f"{aligner:<20}{cells}{gain}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="PACS folder: ROOT/<domain>/<class>/<image>")
    parser.add_argument("--source", default="photo")
    parser.add_argument("--target", default="art_painting")
    parser.add_argument("--per-class", type=int, help="keep N random images per class and domain")
    parser.add_argument("--extractor", default="cnn")
    parser.add_argument("--aligners", default="none,coral,sa")
    parser.add_argument("--classifiers", default="knn,svm")
    parser.add_argument("--out", default="adapt-photo-art", help="report folder")
    parser.add_argument("--cache-dir", help="feature and score cache (re-runs are quick)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = featkit.load_dataset(args.root, domain=[args.source, args.target])
    if args.per_class:
        data = data.sample_per_class(args.per_class, args.seed)
    sizes = {d: int((data.domains == d).sum()) for d in (args.source, args.target)}
    print(
        f"{args.source} ({sizes[args.source]} images) → {args.target} ({sizes[args.target]}), "
        f"{data.n_classes} classes, {args.extractor} features"
    )
    aligners, classifiers = args.aligners.split(","), args.classifiers.split(",")
    result = adapt(
        data,
        pairs=[(args.source, args.target)],
        extractor=args.extractor,
        aligners=aligners,
        classifiers=classifiers,
        seed=args.seed,
        cache_dir=args.cache_dir,
        progress=False,
    )
    acc = {(r["aligner"], r["classifier"]): 100 * r["accuracy"] for r in result.summary()}
    print_table("target accuracy (%)", acc, aligners, classifiers)
    if args.extractor == "cnn" and (args.source, args.target) == ("photo", "art_painting"):
        print("\nthe same on all of pacs150, for reference (docs/benchmarks.md):")
        print_table("", FULL_PACS150, aligners, classifiers)
    print(f"report: {result.save(args.out) / 'report.md'}")


if __name__ == "__main__":
    main()
