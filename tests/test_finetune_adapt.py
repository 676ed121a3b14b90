"""Deep domain adaptation in fine-tuning (featkit.finetune.domain and FineTuner(adapt=...)):
the gradient-reversal layer flips and scales the gradient, the Deep CORAL loss and the
multi-kernel MMD equal independent numpy computations, each method trains towards
unlabelled target images, the same seed gives the same weights, a crashed run resumes to
the uninterrupted run's weights, and misuse is a clear error.

Small and on the CPU: 24 PACS photos of 3 classes as the labelled source and 24 sketches
as the unlabelled target; timm's 0.36M-parameter ``test_efficientnet`` (random weights,
32 px) for determinism and resuming, the pretrained EfficientNet-Lite0 (64 px) for what
the losses do to real embeddings.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from featkit.exceptions import InvalidParameterError
from featkit.finetune import FineTuner
from featkit.finetune.domain import (
    ADAPT_METHODS,
    DomainAdversarialLoss,
    coral_loss,
    dann_coefficient,
    grad_reverse,
    mk_mmd,
)
from featkit.finetune.loop import TrainingLoop
from tests.conftest import PACS, requires_pacs

TINY = {
    "model": "test_efficientnet",
    "pretrained": False,
    "strategy": "full",
    "augment": "light",
    "image_size": 32,
    "epochs": 3,
    "batch_size": 6,
    "lr": 3e-3,
    "validation_fraction": 0.0,
    "patience": None,
    "precision": "fp32",
    "num_workers": 0,
    "n_jobs": 1,
}
#: The pretrained EfficientNet-Lite0, whose embeddings have a real scale (the random tiny
#: network's are near zero: MMD's bandwidth follows them, CORAL's loss vanishes with them).
LITE0 = {
    "strategy": "last:2",
    "image_size": 64,
    "epochs": 4,
    "batch_size": 8,
    "lr": 3e-3,
    "validation_fraction": 0.0,
    "patience": None,
    "precision": "fp32",
    "num_workers": 0,
    "n_jobs": 1,
}
METHODS = [m for m in ADAPT_METHODS if m != "none"]


def _domain(name: str, n_classes: int, per_class: int) -> tuple[list[str], list[str]]:
    requires_pacs()
    root = PACS / name
    paths, labels = [], []
    for cls in sorted(p.name for p in root.iterdir())[:n_classes]:
        files = sorted((root / cls).iterdir())[:per_class]
        paths += [str(f) for f in files]
        labels += [cls] * len(files)
    return paths, labels


@pytest.fixture(scope="module")
def shift() -> tuple[list[str], list[str], list[str]]:
    """Labelled photos (source) and unlabelled sketches (target) of the same 3 classes."""
    source, labels = _domain("photo", 3, 8)
    target, _ = _domain("sketch", 3, 8)
    return source, labels, target


def _weights(tuner: FineTuner) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in tuner.model_.state_dict().items()}


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


# -- the losses against independent computations -------------------------------------------
def test_gradient_reversal_flips_and_scales_the_gradient():
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(4, 3, dtype=torch.float64)

    def loss(inputs: torch.Tensor) -> torch.Tensor:
        return (inputs @ weights).tanh().sum()

    (plain,) = torch.autograd.grad(loss(x), x)
    for coeff in (0.0, 0.3, 1.0, 2.5):
        out = grad_reverse(x, coeff)
        torch.testing.assert_close(out, x, rtol=0, atol=0)  # the identity forward
        (reversed_,) = torch.autograd.grad(loss(out), x)
        torch.testing.assert_close(reversed_, -coeff * plain, rtol=1e-12, atol=1e-12)


def test_dann_schedule_rises_from_zero_to_one():
    values = [dann_coefficient(p) for p in np.linspace(0, 1, 11)]
    assert values[0] == 0.0
    assert values[-1] == pytest.approx(2 / (1 + np.exp(-10)) - 1)  # Ganin et al., eq. 14
    assert all(a < b for a, b in itertools.pairwise(values))


def test_deep_coral_loss_equals_numpy():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(12, 7))
    target = rng.normal(loc=0.5, scale=2.0, size=(9, 7)) @ rng.normal(size=(7, 7))
    d = source.shape[1]
    expected = np.sum((np.cov(source, rowvar=False) - np.cov(target, rowvar=False)) ** 2)
    expected /= 4 * d * d
    got = coral_loss(torch.from_numpy(source), torch.from_numpy(target))
    assert float(got) == pytest.approx(expected, rel=1e-12)
    assert float(coral_loss(torch.from_numpy(source), torch.from_numpy(source))) == 0.0


def test_multi_kernel_mmd_equals_numpy():
    rng = np.random.default_rng(1)
    source = rng.normal(size=(10, 5))
    target = rng.normal(loc=1.0, size=(7, 5))
    pooled = np.vstack([source, target])
    sq = cdist(pooled, pooled, "sqeuclidean")
    n = len(pooled)
    sigma2 = sq.sum() / (n * n - n)  # the mean over distinct pairs
    kernel = sum(np.exp(-sq / (m * sigma2)) for m in (0.25, 0.5, 1.0, 2.0, 4.0))
    k_ss, k_tt, k_st = kernel[:10, :10], kernel[10:, 10:], kernel[:10, 10:]
    expected = k_ss.mean() + k_tt.mean() - 2 * k_st.mean()
    got = mk_mmd(torch.from_numpy(source), torch.from_numpy(target))
    assert float(got) == pytest.approx(expected, rel=1e-9)
    # Larger samples: the same distribution on both sides gives far less than a shift.
    a, b, shifted = rng.normal(size=(3, 300, 5)) + np.array([0, 0, 1.0])[:, None, None]
    same = mk_mmd(torch.from_numpy(a), torch.from_numpy(b))
    apart = mk_mmd(torch.from_numpy(a), torch.from_numpy(shifted))
    assert float(same) < float(apart) / 5


def test_the_discriminator_learns_while_the_features_are_pushed_the_other_way():
    torch.manual_seed(0)
    loss = DomainAdversarialLoss(dim=4, width=16)
    source = torch.randn(8, 4, requires_grad=True)
    target = (torch.randn(8, 4) + 2.0).requires_grad_(True)
    value = loss(source, target, progress=1.0)
    value.backward()
    # The discriminator's own parameters get the plain gradient of its loss; the features
    # get the reversed one: a step along -grad on them raises the discriminator's loss.
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in loss.parameters())
    with torch.no_grad():
        step = 0.1
        moved = loss(source - step * source.grad, target - step * target.grad, 1.0)
    assert float(moved) > float(value.detach())
    assert 0.0 <= loss.accuracy <= 1.0


# -- training towards a target ---------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_each_method_trains_towards_the_target(method, shift):
    source, labels, target = shift
    tuner = FineTuner(**LITE0, adapt=method).fit(source, labels, target_images=target)
    history = tuner.history_
    assert all(np.isfinite(row["adapt_loss"]) for row in history)
    # It still learns the source labels (3 classes: chance is 1/3).
    assert min(row["loss"] for row in history[1:]) < history[0]["loss"]
    assert tuner.score(source, labels) > 0.6
    assert ("domain_accuracy" in history[0]) == (method == "dann")
    assert tuner.adapt_ == method and tuner.n_target_ == len(target)
    assert tuner.predict(target).shape == (len(target),)


def test_deep_coral_brings_the_domains_covariances_together(shift):
    source, labels, target = shift
    params = {**LITE0, "epochs": 3}
    plain = FineTuner(**params).fit(source, labels)
    aligned = FineTuner(**params, adapt="deep-coral", adapt_weight=10.0)
    aligned.fit(source, labels, target_images=target)

    def distance(tuner: FineTuner) -> float:
        # Measured independently of the training loss: numpy on the eval-mode embeddings
        # of the centre crops (training saw augmented crops, 8 + 8 at a time).
        es, et = tuner.embed(source).astype(np.float64), tuner.embed(target).astype(np.float64)
        return np.sum((np.cov(es, rowvar=False) - np.cov(et, rowvar=False)) ** 2)

    assert distance(aligned) < 0.5 * distance(plain)


def test_the_same_seed_gives_the_same_adapted_weights(shift):
    source, labels, target = shift
    params = {**TINY, "epochs": 2, "adapt": "dann"}
    a = FineTuner(**params).fit(source, labels, target_images=target)
    b = FineTuner(**params).fit(source, labels, target_images=target)
    _assert_same_weights(_weights(a), _weights(b))
    other = FineTuner(**params).fit(source, labels, target_images=target[::-1])
    assert not torch.equal(other.model_.head.weight, a.model_.head.weight)


def test_a_crashed_adapting_run_resumes_to_the_uninterrupted_weights(shift, tmp_path, monkeypatch):
    source, labels, target = shift
    params = {**TINY, "adapt": "dann"}
    reference = FineTuner(**params).fit(source, labels, target_images=target)

    folder = tmp_path / "run"
    run_epoch = TrainingLoop.run_epoch

    def crash_in_second_epoch(loop: TrainingLoop) -> dict:
        if loop.progress.epoch == 1:
            raise KeyboardInterrupt  # after epoch 1's state was written
        return run_epoch(loop)

    with monkeypatch.context() as patch:
        patch.setattr(TrainingLoop, "run_epoch", crash_in_second_epoch)
        with pytest.raises(KeyboardInterrupt):
            FineTuner(**params, checkpoint_dir=folder).fit(source, labels, target_images=target)
    resumed = FineTuner(**params, checkpoint_dir=folder)
    resumed.fit(source, labels, target_images=target)
    assert resumed.resumed_from_ == 1
    _assert_same_weights(_weights(resumed), _weights(reference))
    # The discriminator's state was saved and restored too: the history matches.
    drop = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in resumed.history_] == [
        {k: v for k, v in r.items() if k not in drop} for r in reference.history_
    ]
    # Other target images are another run, not a resume.
    with pytest.raises(InvalidParameterError, match="other parameters or other training data"):
        FineTuner(**params, checkpoint_dir=folder).fit(source, labels, target_images=target[:-1])


def test_the_saved_record_names_the_adaptation(shift, tmp_path):
    import json

    source, labels, target = shift
    tuner = FineTuner(**{**TINY, "epochs": 1}, adapt="mmd").fit(
        source, labels, target_images=target
    )
    record = json.loads(tuner.save(tmp_path / "adapted").with_suffix(".json").read_text())
    assert record["adapt"] == "mmd"
    assert record["n_target"] == len(target)
    assert record["target_hash"].startswith("blake2b:")


@pytest.mark.parametrize(
    ("params", "target", "match"),
    [
        ({"adapt": "dann", "strategy": "head"}, True, "strategy='head' freezes it"),
        ({"adapt": "coral"}, True, "adapt must be one of none, dann, deep-coral, mmd"),
        ({"adapt": "mmd"}, False, "needs unlabelled target images"),
        ({}, True, "adapt='none'"),
        ({"adapt": "dann", "adapt_weight": -1.0}, True, "adapt_weight must be"),
    ],
)
def test_misuse_is_clear(params, target, match):
    images = [np.zeros((32, 32, 3), dtype=np.uint8)] * 4
    kwargs = {"target_images": images} if target else {}
    with pytest.raises(InvalidParameterError, match=match):
        FineTuner(**{**TINY, **params}).fit(images, [0, 1, 0, 1], **kwargs)
