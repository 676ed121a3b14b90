"""The conformance kit catches real faults: each deliberately broken extractor below is
reported by the check that covers its fault, and a correct one passes every check."""

from __future__ import annotations

import functools
import threading

import cv2
import numpy as np
import pytest

from featkit import Extractor, InputSpec, InvalidParameterError
from featkit.extractors.local import LocalExtractor, LocalFeatures
from featkit.testing import check_extractor, extractor_checks, parametrize_with_checks


class GridMeans(Extractor):
    """A correct extractor: mean gray level of each cell of a grid x grid layout."""

    name = "grid-means"

    def __init__(self, grid: int = 4) -> None:
        self.grid = grid

    def validate_params(self) -> None:
        if isinstance(self.grid, bool) or not isinstance(self.grid, int) or self.grid < 1:
            raise InvalidParameterError(
                f"grid-means: grid must be a positive int, got {self.grid!r}"
            )

    def input_spec(self) -> InputSpec:
        return InputSpec(color="gray", size=(32, 32), dtype=np.float32)

    def _feature_dim(self) -> int:
        return self.grid**2

    def _transform_one(self, image: np.ndarray) -> np.ndarray:
        return cv2.resize(image, (self.grid, self.grid), interpolation=cv2.INTER_AREA).ravel()


class NonDeterministic(GridMeans):
    """Adds unseeded noise."""

    def _transform_one(self, image: np.ndarray) -> np.ndarray:
        return super()._transform_one(image) + np.random.default_rng().normal(0, 1e-3)


class WrongDtype(GridMeans):
    """Bypasses the base class's float32 conversion and returns float64."""

    def transform(self, images):
        return super().transform(images).astype(np.float64)


class BatchDependent(GridMeans):
    """Standardises each feature over the batch: a row depends on its neighbours."""

    def _transform(self, images: list[np.ndarray]) -> np.ndarray:
        X = super()._transform(images)
        return (X - X.mean(axis=0)) / (X.std(axis=0) + 1.0)


class Unpicklable(GridMeans):
    """Keeps a lock after fit, which joblib cannot send to a worker."""

    def fit(self, images, y=None):
        self.lock_ = threading.Lock()
        return super().fit(images, y)


class Opaque:
    """A value with the default repr, which shows its memory address."""


class AddressInConfig(GridMeans):
    """Its fitted state holds an object whose repr is an address: the cache key changes
    from one process to the next."""

    requires_fit = True

    def _fit(self, images, y):
        self.helper_ = Opaque()


class Unvalidated(GridMeans):
    """Passes ``bins`` straight to numpy: a bad value crashes inside np.histogram."""

    def __init__(self, grid: int = 4, bins: int = 8) -> None:
        super().__init__(grid)
        self.bins = bins

    def _feature_dim(self) -> int:
        return self.grid**2 + 8

    def _transform_one(self, image: np.ndarray) -> np.ndarray:
        hist = np.histogram(image, bins=self.bins, range=(0, 1))[0][:8]
        return np.concatenate([super()._transform_one(image), np.pad(hist, (0, 8 - len(hist)))])


class CrashesOnTinyImages(GridMeans):
    """Works at its native size only: cuts 16-pixel tiles out of an image it never resizes."""

    def input_spec(self) -> InputSpec:
        return InputSpec(color="gray", size=None, dtype=np.float32)

    def _transform_one(self, image: np.ndarray) -> np.ndarray:
        tiles = image[: image.shape[0] // 16 * 16, : image.shape[1] // 16 * 16]
        tiles = tiles.reshape(image.shape[0] // 16, 16, -1, 16).mean(axis=(1, 3))
        return cv2.resize(tiles, (self.grid, self.grid), interpolation=cv2.INTER_AREA).ravel()


class TooFewNames(GridMeans):
    """Names one feature fewer than it returns."""

    def get_feature_names_out(self, input_features=None):
        return np.asarray([f"cell{i}" for i in range(self.feature_dim - 1)], dtype=object)


class TransformsUnfitted(GridMeans):
    """Learns a scale in fit but uses a default when fit was never called."""

    requires_fit = True

    def _fit(self, images, y):
        self.scale_ = 2.0

    def _check_fitted(self) -> None:  # the base class's guard, removed
        pass

    def _transform_one(self, image: np.ndarray) -> np.ndarray:
        return super()._transform_one(image) * getattr(self, "scale_", 1.0)


class PixelXY(LocalExtractor):
    """A local extractor that gives pixel coordinates instead of xy in [0, 1)."""

    name = "pixel-xy"

    def input_spec(self) -> InputSpec:
        return InputSpec(color="gray", size=(32, 32), dtype=np.float32)

    def descriptor_dim(self) -> int:
        return 4

    def _describe_one(self, image: np.ndarray) -> LocalFeatures:
        ys, xs = np.mgrid[4:32:8, 4:32:8].reshape(2, -1)
        patches = np.stack(
            [
                image[y - 2 : y + 2 : 2, x - 2 : x + 2 : 2].ravel()
                for y, x in zip(ys, xs, strict=True)
            ]
        )
        return LocalFeatures(patches.astype(np.float32), np.stack([xs, ys], 1).astype(np.float32))


BROKEN = [
    (NonDeterministic(), "check_deterministic", "different features"),
    (NonDeterministic(), "check_batch_invariance", "batch of 1 differs"),
    (WrongDtype(), "check_transform_output", "float64, not float32"),
    (BatchDependent(), "check_batch_invariance", "batch of 1 differs"),
    (Unpicklable(), "check_picklable", "pickle"),
    (AddressInConfig(), "check_config_across_processes", "differs in another process"),
    (Unvalidated(), "check_bad_params", "'bins' raised TypeError"),
    (CrashesOnTinyImages(), "check_image_sizes", "8x8 gray image raised"),
    (TooFewNames(), "check_feature_names_out", "15 names for 16 features"),
    (TransformsUnfitted(), "check_not_fitted", "before fit"),
    (PixelXY(), "check_local_output", "xy outside [0, 1)"),
]


@functools.cache
def kit_report(cls: type) -> str:
    """check_extractor's report on a default instance of ``cls`` (it must fail)."""
    with pytest.raises(AssertionError) as failed:
        check_extractor(cls())
    return str(failed.value)


@pytest.mark.parametrize(
    ("extractor", "check", "message"),
    BROKEN,
    ids=[f"{type(e).__name__}-{c}" for e, c, _ in BROKEN],
)
def test_the_kit_reports_each_fault(extractor, check, message):
    report = kit_report(type(extractor))
    # The one report names the failing check and says what went wrong.
    assert f"- {check}: " in report
    line = next(li for li in report.splitlines() if li.startswith(f"- {check}: "))
    assert message in report[report.index(line) :], report
    # ... and the same check, run alone, fails too.
    with pytest.raises(AssertionError):
        dict(extractor_checks(extractor))[check]()


def test_a_correct_extractor_passes_every_check():
    check_extractor(GridMeans())
    check_extractor(GridMeans(grid=2))


def test_each_fault_is_reported_by_its_own_checks_only():
    """A fault does not spill into unrelated checks: the report lists what is wrong."""
    report = kit_report(TooFewNames)
    failed_checks = [li.split(":")[0][2:] for li in report.splitlines() if li.startswith("- ")]
    assert failed_checks == ["check_feature_names_out"]


def test_the_address_fault_is_real():
    """The fitted state above really has an address in it: the cache key would change from
    one process (or joblib worker) to the next, and the cache would miss silently."""
    est = AddressInConfig().fit([np.zeros((8, 8), np.uint8)])
    assert "object at 0x" in repr(est.helper_)
    assert est.config == est.config  # stable within one process: only the kit's check sees it


@parametrize_with_checks([GridMeans(), "pixels"])
def test_parametrize_with_checks_form(extractor, check):
    check(extractor)


def test_parametrize_with_checks_ids_name_extractor_and_check():
    mark = parametrize_with_checks([GridMeans()])
    ids = [p.id for p in mark.args[1]]
    assert "grid-means-check_deterministic" in ids
    assert len(ids) == len(set(ids)) == sum(1 for _ in extractor_checks(GridMeans()))
