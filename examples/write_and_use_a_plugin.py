"""Write a new extractor in 20 lines, check it, and use it like a built-in.

Defines an edge-orientation histogram (gradient orientations weighted by their magnitude,
per cell of a grid: a HOG without blocks), registers it as ``edge-hist`` with
``@featkit.register_extractor``, runs featkit's conformance kit on it, then extracts it
from a data set and scores a k-NN on it next to the built-in ``pixels`` extractor::

    python examples/write_and_use_a_plugin.py [DATA]   (default: digits; or an image folder)

Prints each conformance check with ``ok``, ``conformance: OK``, and the held-out k-NN
accuracy of ``edge-hist`` and ``pixels``.

To share the extractor as an installable package, so that ``featkit list``,
``featkit extract -e edge-hist`` and ``featkit compare`` find it with no import::

    featkit new-plugin edge-hist       # writes featkit-edge-hist/ (entry point, tests, README)
    # paste the class below into featkit-edge-hist/featkit_edge_hist/__init__.py, drop the
    # decorator (the pyproject entry point registers it), then:
    pip install -e "featkit-edge-hist[test]" && python -m pytest -q featkit-edge-hist

See docs/plugins.md.
"""

from __future__ import annotations

import sys

import numpy as np

import featkit
from featkit.classify import make_classifier
from featkit.testing import extractor_checks


@featkit.register_extractor("edge-hist")
class EdgeHistogram(featkit.Extractor):
    """Edge-orientation histogram: unsigned gradient orientations, weighted by magnitude,
    in ``bins`` bins per cell of a ``grid`` x ``grid`` grid, L2-normalised."""

    version = "1"  # bump when the output changes: it keys featkit's feature cache

    def __init__(self, bins: int = 9, grid: int = 4, size: int = 32) -> None:
        self.bins, self.grid, self.size = bins, grid, size  # stored unchanged (sklearn rule)

    def validate_params(self) -> None:  # bad values fail here, with their name
        for key, value in self.get_params().items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise featkit.InvalidParameterError(f"{key} must be an int >= 1, got {value!r}")
        if self.grid > self.size:
            raise featkit.InvalidParameterError(f"grid={self.grid} exceeds size={self.size}")

    def input_spec(self) -> featkit.InputSpec:  # featkit reads and resizes every image
        return featkit.InputSpec(color="gray", size=(self.size, self.size), dtype=np.float32)

    def _feature_dim(self) -> int:
        return self.bins * self.grid**2

    def _transform_one(self, image: np.ndarray) -> np.ndarray:
        gy, gx = np.gradient(image)
        bin_of = (np.arctan2(gy, gx) % np.pi * self.bins / np.pi).astype(int) % self.bins
        edge = np.arange(self.size) * self.grid // self.size  # cell row / column of a pixel
        cell_of = edge[:, None] * self.grid + edge[None, :]
        hist = np.bincount(
            (cell_of * self.bins + bin_of).ravel(),
            weights=np.hypot(gx, gy).ravel(),
            minlength=self._feature_dim(),
        )
        return (hist / max(np.linalg.norm(hist), 1e-12)).astype(np.float32)


def main() -> None:
    for check, run in extractor_checks(EdgeHistogram()):
        run()  # raises AssertionError saying what is wrong
        print(f"ok  {check}")
    print("conformance: OK")

    data = featkit.load_dataset(sys.argv[1] if len(sys.argv) > 1 else "digits")
    train, test = data.train_test_split(test_size=0.25, seed=0)
    for name, params in (("edge-hist", {}), ("pixels", {"size": 16})):
        extractor = featkit.create_extractor(name, **params)  # by name, like any built-in
        train_features = featkit.extract(extractor, train, progress=False)
        test_features = featkit.extract(extractor, test, progress=False)
        knn = make_classifier("knn").fit(train_features.X, train_features.y)
        accuracy = knn.score(test_features.X, test_features.y)
        dim = train_features.X.shape[1]
        print(f"{name:<10} {dim:>5}-d  k-NN accuracy {accuracy:.4f} on {len(test_features)} images")


if __name__ == "__main__":
    main()
