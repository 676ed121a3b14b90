"""Conformance checks for extractors, in the spirit of ``sklearn.utils.estimator_checks``.

``check_extractor("pixels")`` runs every check and raises one AssertionError that names
each check that failed and why. Plugin authors call it in one line from their own tests,
or spread the checks over test cases with :func:`parametrize_with_checks`. Global
extractors are checked through ``transform``; local ones (``kind == "local"``) through
``describe``.
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from featkit.data.dataset import Dataset
from featkit.exceptions import InvalidParameterError
from featkit.extractors.base import Extractor

__all__ = [
    "check_extractor",
    "edge_case_images",
    "extractor_checks",
    "parametrize_with_checks",
    "sample_images",
]

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


def edge_case_images() -> list[np.ndarray]:
    """Images at the edges of what extractors meet: 8x8 gray and RGB, and a large RGB one."""
    rng = np.random.default_rng(7)
    large = sample_images(1, seed=7)[0]
    large = np.kron(large, np.ones((16, 16, 1), dtype=np.uint8))[:768, :1024]  # 768 x 1024
    return [
        rng.integers(0, 256, (8, 8), dtype=np.uint8),
        rng.integers(0, 256, (8, 8, 3), dtype=np.uint8),
        np.ascontiguousarray(large),
    ]


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


def check_feature_names_out(extractor: Extractor, images: list[np.ndarray]) -> None:
    """get_feature_names_out gives feature_dim unique strings."""
    est = _fitted(extractor, images)
    names = list(est.get_feature_names_out())
    assert len(names) == est.feature_dim, (
        f"get_feature_names_out gave {len(names)} names for {est.feature_dim} features"
    )
    assert all(isinstance(n, str) for n in names), "feature names must be strings"
    assert len(set(names)) == len(names), "feature names are not unique"


def check_image_sizes(extractor: Extractor, images: list[np.ndarray]) -> None:
    """Fit and transform work on tiny (8x8) gray and RGB images and on a large one."""
    edge = edge_case_images()
    est = _fitted(extractor, images + edge)
    for label, image in zip(_EDGE_LABELS, edge, strict=True):
        X = _call(est.transform, [image], f"transform of a {label} image")
        assert X.dtype == np.float32 and X.shape == (1, est.feature_dim), (
            f"a {label} image gave {X.dtype} {X.shape}, expected float32 (1, {est.feature_dim})"
        )
        assert np.isfinite(X).all(), f"a {label} image gave NaN or inf"


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


def check_config_across_processes(extractor: Extractor, images: list[np.ndarray]) -> None:
    """config, the cache key, is the same in a fresh interpreter, before and after fit: no
    object addresses, ``hash()`` values or set order in it."""
    pair = (clone(extractor), _fitted(extractor, images))
    here = [json.dumps(e.config, sort_keys=True) for e in pair]
    assert_same_configs(here, configs_in_fresh_process(pair))


def configs_in_fresh_process(extractors: Sequence[Extractor]) -> list[str]:
    """Each extractor's config (sorted JSON) as a fresh interpreter, with another string-hash
    seed, sees it after unpickling: one interpreter for the whole sequence."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "extractors.pkl"
        # cloudpickle, as joblib's workers use: it also carries classes defined in a script.
        path.write_bytes(cloudpickle.dumps(list(extractors)))
        code = (
            "import json, pickle, sys\n"
            "for e in pickle.loads(open(sys.argv[1], 'rb').read()):\n"
            "    print(json.dumps(e.config, sort_keys=True))\n"
        )
        # Another string-hash seed than this process's: configs built on hash() differ.
        seed = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"
        env = {
            **os.environ,
            "PYTHONHASHSEED": seed,
            "PYTHONPATH": os.pathsep.join(p or os.getcwd() for p in sys.path),
        }
        proc = subprocess.run(
            [sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env
        )
    assert proc.returncode == 0, f"a fresh interpreter could not load it: {proc.stderr[-800:]}"
    return proc.stdout.splitlines()


def assert_same_configs(here: Sequence[str], there: Sequence[str]) -> None:
    """The unfitted and fitted configs of one extractor agree between two processes."""
    for label, a, b in zip(("unfitted", "fitted"), here, there, strict=True):
        assert a == b, (
            f"the {label} config differs in another process (a repr with an address, "
            f"a hash()?):\n  here:  {a}\n  there: {b}"
        )


def check_bad_params(extractor: Extractor, images: list[np.ndarray]) -> None:
    """A parameter of a nonsensical type raises InvalidParameterError naming it, from fit or
    transform, before any native code can crash on it."""
    local = getattr(extractor, "kind", "global") == "local"
    for param in extractor.get_params(deep=False):
        est = clone(extractor).set_params(**{param: _NotAValue()})
        try:
            est.fit(images[:2])
            est.describe(images[:2]) if local else est.transform(images[:2])
        except InvalidParameterError as exc:
            assert param in str(exc), f"the error for a bad {param!r} does not name it: {exc}"
        except Exception as exc:
            raise AssertionError(
                f"a bad {param!r} raised {type(exc).__name__} ({exc}), not "
                "InvalidParameterError: check it in validate_params"
            ) from exc
        else:
            raise AssertionError(f"a bad {param!r} was accepted: check it in validate_params")


def check_not_fitted(extractor: Extractor, images: list[np.ndarray]) -> None:
    """An extractor that learns from images refuses to transform before fit."""
    est = clone(extractor)
    if not getattr(est, "requires_fit", False):
        return
    method = est.describe if getattr(est, "kind", "global") == "local" else est.transform
    try:
        method(images[:1])
    except NotFittedError:
        return
    except Exception as exc:
        raise AssertionError(
            f"before fit it raised {type(exc).__name__} ({exc}), not NotFittedError"
        ) from exc
    raise AssertionError("it transformed images before fit")


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


def check_local_image_sizes(extractor: Extractor, images: list[np.ndarray]) -> None:
    """describe() works on tiny (8x8) gray and RGB images and on a large one (an image may
    have no descriptors: then an empty (0, D) set)."""
    edge = edge_case_images()
    est = _fitted(extractor, images + edge)
    dim = est.descriptor_dim()
    for label, image in zip(_EDGE_LABELS, edge, strict=True):
        (lf,) = _call(est.describe, [image], f"describe of a {label} image")
        assert lf.descriptors.dtype == np.float32 and lf.descriptors.shape[1:] == (dim,), (
            f"a {label} image gave descriptors {lf.descriptors.dtype} {lf.descriptors.shape}"
        )
        assert np.isfinite(lf.descriptors).all(), f"a {label} image gave NaN or inf"


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


class _NotAValue:
    """A parameter value no extractor can accept."""

    def __repr__(self) -> str:
        return "<not a value>"


_EDGE_LABELS = ("8x8 gray", "8x8 RGB", "768x1024 RGB")


def _call(method: Callable[[Any], Any], arg: Any, what: str) -> Any:
    """``method(arg)``, with any exception turned into a failure that says what was done."""
    try:
        return method(arg)
    except Exception as exc:
        raise AssertionError(f"{what} raised {type(exc).__name__}: {exc}") from exc


LOCAL_CHECKS: tuple[Check, ...] = (
    check_get_set_params,
    check_bad_params,
    check_fit_returns_self,
    check_not_fitted,
    check_local_output,
    check_local_image_sizes,
    check_local_batch_invariance,
    check_local_picklable,
    check_config,
    check_config_across_processes,
)

CHECKS: tuple[Check, ...] = (
    check_get_set_params,
    check_bad_params,
    check_fit_returns_self,
    check_not_fitted,
    check_transform_output,
    check_feature_names_out,
    check_image_sizes,
    check_batch_invariance,
    check_deterministic,
    check_picklable,
    check_config,
    check_config_across_processes,
    check_input_kinds,
)


def _checks_for(est: Extractor) -> tuple[Check, ...]:
    return LOCAL_CHECKS if getattr(est, "kind", "global") == "local" else CHECKS


def extractor_checks(extractor: Extractor | str) -> Iterator[tuple[str, Callable[[], None]]]:
    """(check name, zero-argument callable) pairs, one per check that applies."""
    est = _resolve(extractor)
    images = sample_images()
    for check in _checks_for(est):
        yield check.__name__, functools.partial(_run_check, check, est, images)


def parametrize_with_checks(extractors: Iterable[Extractor | str]) -> Any:
    """A ``pytest.mark.parametrize`` decorator over (extractor, check) pairs, as in
    scikit-learn: the test takes ``extractor`` and ``check`` and calls ``check(extractor)``.

    >>> @parametrize_with_checks([MyExtractor(), "hog"])          # doctest: +SKIP
    ... def test_conforms(extractor, check):
    ...     check(extractor)
    """
    import pytest

    images = sample_images()
    cases = []
    for extractor in extractors:
        est = _resolve(extractor)
        for check in _checks_for(est):
            run = functools.partial(_run_check, check, images=images)
            cases.append(pytest.param(est, run, id=f"{_label(extractor)}-{check.__name__}"))
    return pytest.mark.parametrize(("extractor", "check"), cases)


def _run_check(check: Check, extractor: Extractor, images: list[np.ndarray]) -> None:
    """Run one check; an exception from the extractor is a failure of that check."""
    try:
        check(extractor, images)
    except AssertionError:
        raise
    except Exception as exc:
        raise AssertionError(f"{type(exc).__name__}: {exc}") from exc


def check_extractor(extractor: Extractor | str) -> None:
    """Run every conformance check; raise one AssertionError naming each that failed."""
    failures = []
    for name, run in extractor_checks(extractor):
        try:
            run()
        except AssertionError as exc:
            failures.append(f"- {name}: {exc}")
    if failures:
        raise AssertionError(
            f"{_label(extractor)} fails {len(failures)} conformance check(s):\n"
            + "\n".join(failures)
        )


def _label(extractor: Any) -> str:
    if isinstance(extractor, str):
        return extractor
    return getattr(extractor, "name", "") or type(extractor).__name__
