"""Handcrafted extractors against their references, in one run, as ratios.

- featkit ``hog`` vs ``skimage.feature.hog`` at 64x128 and 224x224 (target >= 10x);
- featkit dense SIFT vs OpenCV's ``SIFT.compute`` on the same grids (targets: >= 3x for
  16-px patches at step 8, >= 5x for PHOW bin sizes 4, 6, 8, 10 at step 4);
- codebook training, faiss k-means vs scikit-learn's MiniBatchKMeans (k=1024, 1M x 128).

Run: ``python benchmarks/handcrafted.py [--quick]`` (``--quick``: fewer images and 200k
descriptors). Accuracy on real data is ``benchmarks/handcrafted_accuracy.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import handcrafted_codebook
import handcrafted_dsift
import handcrafted_hog


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs")
    args = parser.parse_args()
    print("== HOG ==")
    handcrafted_hog.run(n=50 if args.quick else 200)
    print("\n== dense SIFT ==")
    handcrafted_dsift.run(n=10 if args.quick else 40)
    print("\n== codebook training ==")
    handcrafted_codebook.run(n=200_000 if args.quick else 1_000_000)


if __name__ == "__main__":
    main()
