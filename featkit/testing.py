"""Conformance checks for extractors, in the spirit of ``sklearn.utils.estimator_checks``.

``check_extractor("pixels")`` runs every check and raises AssertionError naming the first
that fails. Plugin authors call it in one line from their own tests. Global extractors are
checked through ``transform``; local ones (``kind == "local"``) through ``describe``.
"""

from __future__ import annotations

import json
import pickle
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone

from featkit.data.dataset import Dataset
from featkit.extractors.base import Extractor

__all__ = ["check_extractor", "extractor_checks", "sample_images"]

Check = Callable[[Extractor, list[np.ndarray]], None]


def sample_images(n: int = 6, seed: int = 0) -> list[np.ndarray]:
    """Small, varied test images: RGB and gray, several sizes, smooth shapes plus noise."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n):
        h, w = (48, 64) if i % 2 else (64, 48)
        yy, xx = np.mgrid[0:h, 0:w]
        cy, cx, r = rng.uniform(10, 38), rng.uniform(10, 38), rng.uniform(6, 18)
        disk = ((yy - cy) ** 2 + (xx - cx) ** 2 < r**2) * 150.0
        base = disk + 40 * np.sin(xx / rng.uniform(3, 9)) + rng.normal(0, 12, (h, w)) + 60
        gray = np.clip(base, 0, 255).astype(np.uint8)
        if i % 3 == 2:
            images.append(gray)
        else:
            tint = rng.uniform(0.5, 1.0, 3)
            images.append(np.clip(gray[..., None] * tint, 0, 255).astype(np.uint8))
    return images


def _resolve(extractor: Extractor | str) -> Extractor:
    if isinstance(extractor, str):
        from featkit.registry import create_extractor

        return create_extractor(extractor)
    return extractor


def _fitted(extractor: Extractor, images: list[np.ndarray]) -> Extractor:
    return clone(extractor).fit(images)


def check_get_set_params(extractor: Extractor, images: list[np.ndarray]) -> None:
    """get_params/set_params round-trip and clone keeps every parameter."""
    # Compared through config: clone copies estimator-valued parameters (a local extractor),
    # which then differ by identity but not by value.
    params = extractor.config["params"]
    cloned = clone(extractor)
    assert cloned.config["params"] == params, "clone() changed the parameters"
    assert cloned.set_params(**cloned.get_params(deep=False)) is cloned, (
        "set_params must return self"
    )
    assert cloned.config["params"] == params, "set_params round-trip changed parameters"


def check_fit_returns_self(extractor: Extractor, images: list[np.ndarray]) -> None:
    """fit returns the extractor itself."""
    est = clone(extractor)
    assert est.fit(images) is est, "fit must return self"


def check_transform_output(extractor: Extractor, images: list[np.ndarray]) -> None:
    """transform gives finite float32 (n, feature_dim), and feature names of that length."""
    est = _fitted(extractor, images)
    X = est.transform(images)
    assert isinstance(X, np.ndarray), f"transform returned {type(X).__name__}, not ndarray"
    assert X.dtype == np.float32, f"transform returned {X.dtype}, not float32"
    assert X.shape == (len(images), est.feature_dim), (
        f"transform returned {X.shape}, expected {(len(images), est.feature_dim)}"
    )
    assert np.isfinite(X).all(), "transform returned NaN or inf"
    names = est.get_feature_names_out()
    assert len(names) == est.feature_dim, "get_feature_names_out length != feature_dim"
    assert len(set(names)) == len(names), "feature names are not unique"


def check_batch_invariance(extractor: Extractor, images: list[np.ndarray]) -> None:
    """Each image's row does not depend on the rest of its batch."""
    est = _fitted(extractor, images)
    together = est.transform(images)
    alone = np.concatenate([est.transform([img]) for img in images])
    np.testing.assert_allclose(
        alone, together, rtol=1e-5, atol=1e-6, err_msg="batch of 1 differs from batch of n"
    )


def check_deterministic(extractor: Extractor, images: list[np.ndarray]) -> None:
    """Same images and parameters give the same features, also after a fresh fit."""
    a = _fitted(extractor, images).transform(images)
    b = _fitted(extractor, images).transform(images)
    np.testing.assert_array_equal(a, b, err_msg="two fits/transforms gave different features")


def check_picklable(extractor: Extractor, images: list[np.ndarray]) -> None:
    """A fitted extractor survives pickling (joblib workers need it) with the same output."""
    est = _fitted(extractor, images)
    copy = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(copy.transform(images), est.transform(images))
    assert json.dumps(copy.config, sort_keys=True) == json.dumps(est.config, sort_keys=True), (
        "config changed after pickling: it must be stable, it is the cache key"
    )


def check_config(extractor: Extractor, images: list[np.ndarray]) -> None:
    """config is JSON-serialisable, equal for clones, and names the extractor and version."""
    config = extractor.config
    json.dumps(config)
    assert config == clone(extractor).config, "a clone has a different config"
    for key in ("name", "version", "params"):
        assert key in config, f"config lacks {key!r}"


def check_input_kinds(extractor: Extractor, images: list[np.ndarray]) -> None:
    """Paths, arrays and a Dataset of the same images give the same features."""
    from PIL import Image

    est = _fitted(extractor, images)
    expected = est.transform(images)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, img in enumerate(images):
            paths.append(str(Path(tmp) / f"{i}.png"))
            Image.fromarray(img).save(paths[-1])
        np.testing.assert_array_equal(est.transform(paths), expected, err_msg="paths != arrays")
        np.testing.assert_array_equal(
            est.transform(Dataset.from_items(paths)), expected, err_msg="Dataset != arrays"
        )


def check_local_output(extractor: Extractor, images: list[np.ndarray]) -> None:
    """describe() gives, per image, float32 (m, D) descriptors with xy in [0, 1)."""
    est = _fitted(extractor, images)
    sets = est.describe(images)
    assert len(sets) == len(images), f"describe returned {len(sets)} sets for {len(images)} images"
    dim = est.descriptor_dim()
    for i, lf in enumerate(sets):
        assert lf.descriptors.dtype == np.float32, f"image {i}: {lf.descriptors.dtype} descriptors"
        assert lf.descriptors.ndim == 2 and lf.descriptors.shape[1] == dim, (
            f"image {i}: descriptors of shape {lf.descriptors.shape}, expected (m, {dim})"
        )
        assert np.isfinite(lf.descriptors).all(), f"image {i}: NaN or inf descriptors"
        assert ((lf.xy >= 0) & (lf.xy < 1)).all(), f"image {i}: xy outside [0, 1)"


def check_local_batch_invariance(extractor: Extractor, images: list[np.ndarray]) -> None:
    """Each image's descriptors do not depend on the rest of its batch, and repeat exactly."""
    est = _fitted(extractor, images)
    together = est.describe(images)
    again = _fitted(extractor, images).describe(images)
    for i, img in enumerate(images):
        (alone,) = est.describe([img])
        np.testing.assert_allclose(alone.descriptors, together[i].descriptors, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(alone.xy, together[i].xy)
        np.testing.assert_array_equal(again[i].descriptors, together[i].descriptors)


def check_local_picklable(extractor: Extractor, images: list[np.ndarray]) -> None:
    """A local extractor survives pickling with the same descriptors and config."""
    est = _fitted(extractor, images)
    copy = pickle.loads(pickle.dumps(est))
    for a, b in zip(copy.describe(images), est.describe(images), strict=True):
        np.testing.assert_array_equal(a.descriptors, b.descriptors)
    assert copy.config == est.config, "config changed after pickling"


LOCAL_CHECKS: tuple[Check, ...] = (
    check_get_set_params,
    check_fit_returns_self,
    check_local_output,
    check_local_batch_invariance,
    check_local_picklable,
    check_config,
)

CHECKS: tuple[Check, ...] = (
    check_get_set_params,
    check_fit_returns_self,
    check_transform_output,
    check_batch_invariance,
    check_deterministic,
    check_picklable,
    check_config,
    check_input_kinds,
)


def extractor_checks(extractor: Extractor | str) -> Iterator[tuple[str, Callable[[], None]]]:
    """(check name, zero-argument callable) pairs, for ``pytest.mark.parametrize``."""
    est = _resolve(extractor)
    images = sample_images()
    for check in LOCAL_CHECKS if getattr(est, "kind", "global") == "local" else CHECKS:
        yield check.__name__, (lambda c=check: c(est, images))


def check_extractor(extractor: Extractor | str) -> None:
    """Run every conformance check; raise AssertionError naming the first that fails."""
    for name, run in extractor_checks(extractor):
        try:
            run()
        except AssertionError as exc:
            raise AssertionError(f"{name} failed for {_label(extractor)}: {exc}") from exc


def _label(extractor: Any) -> str:
    return extractor if isinstance(extractor, str) else type(extractor).__name__
