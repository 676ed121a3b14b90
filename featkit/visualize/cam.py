"""Where a CNN looks: Grad-CAM (Selvaraju et al. 2017) or the mean activation of its last
feature map, as a heat map over the crop the network sees.

Grad-CAM weighs each channel of the last feature map by the mean gradient of one class's
logit over its positions and keeps the positive part of the weighted sum. It needs a
trained classifier: the ImageNet head of pretrained weights, or the head a fine-tuned
checkpoint was trained with (``FineTuner.save`` writes it beside the backbone as
``<name>.head.safetensors``; its classes come from the record). A checkpoint without that
head, random weights, or weights without a classifier (DINOv2) get the activation map (the
channel mean of the last feature map), which shows what the network responds to, not the
evidence for a class.

Vision transformers have tokens, not a feature map: their map is the patch tokens entering
the last block, on the patch grid (the class token still reads every patch there), and
their activation map is each token's norm.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from sklearn.base import clone

from featkit.exceptions import InvalidParameterError
from featkit.extractors.backbones import Backbone, load_backbone
from featkit.extractors.cnn import CNNExtractor
from featkit.visualize.base import Picture

__all__ = ["CNN_MAPS", "activation_map", "cnn_picture", "grad_cam", "overlay_heat_map"]

#: The maps ``cnn_picture`` draws; "auto" is Grad-CAM when the weights have a trained head.
CNN_MAPS = ("auto", "gradcam", "activation")
_IMAGENET_CLASSES = 1000


def _last_feature_map(backbone: Backbone, x: Any, head: Any = None) -> tuple[Any, Any]:
    """(the last feature map as a leaf tensor that requires grad, (C, H, W) per image; the
    logits computed from it), for a normalised (n, 3, S, S) batch; with ``head`` (a linear
    layer on the pooled embedding), its logits instead of the network's own. For a vision
    transformer the map is its patch tokens entering the last block, on their grid."""
    if head is not None:
        with _replaced_classifier(backbone, head):
            return _last_feature_map(backbone, x)
    import torch

    model = backbone.model
    transformer = _last_block(model)
    if transformer is not None:
        return _token_map(model, x, *transformer)
    if backbone.library == "timm":
        features = model.forward_features(x)
        nhwc = getattr(model, "output_fmt", "NCHW") == "NHWC"
        if features.ndim != 4:
            raise InvalidParameterError(
                f"show: {backbone.architecture} gives tokens, not a feature map; "
                "class-activation maps are drawn for CNNs"
            )
        leaf = features.detach().requires_grad_(True)
        logits = model.forward_head(leaf)
        return (leaf.permute(0, 3, 1, 2) if nhwc else leaf), logits
    # torchvision: the input of the global pool is the last feature map; a pre-hook swaps
    # it for a leaf so that the gradient stops there.
    modules = dict(model.named_modules())
    pools = [n for n, m in modules.items() if isinstance(m, torch.nn.AdaptiveAvgPool2d)]
    name = "avgpool" if "avgpool" in pools else (pools[-1] if pools else None)
    if name is None:
        raise InvalidParameterError(
            f"show: {backbone.architecture} has no global pool to find its last "
            "feature map; class-activation maps are drawn for CNNs"
        )
    found: dict[str, Any] = {}

    def swap(module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        found["map"] = args[0].detach().requires_grad_(True)
        return (found["map"], *args[1:])

    hook = modules[name].register_forward_pre_hook(swap)
    try:
        logits = model(x)
    finally:
        hook.remove()
    return found["map"], logits


def _last_block(model: Any) -> tuple[Any, int] | None:
    """A vision transformer's last block and its number of prefix tokens (class,
    distillation and register tokens before the patches), or None for other networks."""
    blocks = getattr(model, "blocks", None)  # timm's VisionTransformer and its kin
    if blocks is not None and hasattr(model, "num_prefix_tokens") and len(blocks):
        return blocks[-1], int(model.num_prefix_tokens)
    layers = getattr(getattr(model, "encoder", None), "layers", None)  # torchvision's
    if layers is not None and hasattr(model, "class_token") and len(layers):
        return layers[-1], 1
    return None


def _token_map(model: Any, x: Any, block: Any, prefix: int) -> tuple[Any, Any]:
    """(the patch tokens entering ``block`` as an (n, C, h, w) leaf, the logits).

    The tokens of the final layer are no map to explain: a class-token head reads the
    class token alone, so no gradient reaches them. The last block's input is where the
    class token still gathers from every patch (the ViT recipe of pytorch-grad-cam). A
    pre-hook rebuilds that input from a leaf grid, so the gradient stops there.
    """
    import torch

    found: dict[str, Any] = {}

    def swap(module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        tokens = args[0]
        n, length, channels = tokens.shape
        side = math.isqrt(length - prefix)
        if side * side != length - prefix:
            raise InvalidParameterError(
                f"show: {length - prefix} patch tokens do not make a square grid"
            )
        patches = tokens[:, prefix:].detach().transpose(1, 2)
        grid = patches.reshape(n, channels, side, side).requires_grad_(True)
        found["map"] = grid
        rebuilt = torch.cat([tokens[:, :prefix].detach(), grid.flatten(2).transpose(1, 2)], 1)
        return (rebuilt, *args[1:])

    hook = block.register_forward_pre_hook(swap)
    try:
        logits = model(x)
    finally:
        hook.remove()
    return found["map"], logits


def _map_name(backbone: Backbone) -> str:
    """What the maps are drawn on, for captions."""
    if _last_block(backbone.model) is not None:
        return "patch tokens entering its last block"
    return "last feature map"


def _has_classifier(backbone: Backbone) -> bool:
    """False for networks built without a classifier (DINOv2's self-supervised weights):
    their "logits" are the embedding, no class to explain."""
    return backbone.library != "timm" or getattr(backbone.model, "num_classes", 1) != 0


@contextlib.contextmanager
def _replaced_classifier(backbone: Backbone, head: Any) -> Iterator[None]:
    """The network's own classifier answers with ``head``'s logits of its input (the pooled
    embedding) while the block runs."""
    from featkit.finetune.model import backbone_classifier

    name = backbone_classifier(backbone.model, backbone.library)
    module = dict(backbone.model.named_modules())[name]
    hook = module.register_forward_hook(lambda m, args, output: head(args[0]))
    try:
        yield
    finally:
        hook.remove()


def grad_cam(
    backbone: Backbone, crop: np.ndarray, class_index: int | None = None, head: Any = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Grad-CAM of a uint8 (S, S, 3) crop for ``class_index`` (None: the top class), with
    the network's own classifier or ``head`` (a linear layer on its pooled embedding).

    Returns the map over the last feature map's (H, W) positions (float64, >= 0), the
    class probabilities (softmax of the logits) and the class explained.
    """
    import torch

    with torch.enable_grad():
        features, logits = _last_feature_map(backbone, _batch(backbone, crop), head)
        n_classes = int(logits.shape[1])
        if class_index is None:
            class_index = int(logits[0].argmax())
        elif not 0 <= class_index < n_classes:
            raise InvalidParameterError(
                f"show: class {class_index} is not one of the classifier's 0..{n_classes - 1}"
            )
        (grad,) = torch.autograd.grad(logits[0, class_index], features)
    weights = grad[0].mean(dim=(1, 2))  # one per channel: the mean gradient over positions
    cam = torch.relu(torch.einsum("c,chw->hw", weights, features[0].detach()))
    probs = torch.softmax(logits[0].detach().double(), dim=0)
    return cam.double().numpy(), probs.numpy(), class_index


def activation_map(backbone: Backbone, crop: np.ndarray) -> np.ndarray:
    """The channel mean of the last feature map of a uint8 (S, S, 3) crop, or for a vision
    transformer the norm of each patch token entering its last block: (H, W) float64."""
    import torch

    with torch.no_grad():
        features, _ = _last_feature_map(backbone, _batch(backbone, crop))
    features = features[0].detach().double()
    if _last_block(backbone.model) is not None:
        # Tokens are centred by LayerNorm: their channel mean says little, their size
        # shows where the network stores information (high-norm tokens included).
        return torch.linalg.vector_norm(features, dim=0).numpy()
    return features.mean(dim=0).numpy()


def _batch(backbone: Backbone, crop: np.ndarray) -> Any:
    """A float32 (1, 3, S, S) batch normalised with the weights' mean and std."""
    import torch

    prep = backbone.preprocessing
    x = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)[None].float() / 255.0
    mean = torch.tensor(prep.mean).view(1, 3, 1, 1)
    std = torch.tensor(prep.std).view(1, 3, 1, 1)
    return (x - mean) / std


def overlay_heat_map(rgb: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``heat`` (any (h, w) map) stretched over ``rgb`` (bilinear), its minimum blue and its
    maximum red (OpenCV's jet colour map), blended with weight ``alpha``: uint8 RGB."""
    height, width = rgb.shape[:2]
    heat = cv2.resize(heat.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    low, high = float(heat.min()), float(heat.max())
    scaled = (heat - low) / (high - low) if high > low else np.zeros_like(heat)
    colours = cv2.applyColorMap(np.rint(scaled * 255).astype(np.uint8), cv2.COLORMAP_JET)
    colours = cv2.cvtColor(colours, cv2.COLOR_BGR2RGB)
    blend = (1 - alpha) * rgb.astype(np.float32) + alpha * colours.astype(np.float32)
    return np.clip(np.rint(blend), 0, 255).astype(np.uint8)


def cnn_picture(
    extractor: CNNExtractor,
    image: object,
    class_index: int | None = None,
    cnn_map: str = "auto",
) -> Picture:
    """Grad-CAM (``cnn_map="gradcam"``) or the activation map (``"activation"``) of
    ``extractor``'s network over the crop it sees; ``"auto"``: Grad-CAM with pretrained
    weights, the activation map for a checkpoint or random weights. Runs on the CPU in
    float32 (one image)."""
    if cnn_map not in CNN_MAPS:
        raise InvalidParameterError(
            f"show: the cnn map must be one of {', '.join(CNN_MAPS)}; got {cnn_map!r}"
        )
    extractor.validate_params()
    if extractor.get_params().get("tta") not in (None, "none"):
        # The map is of one crop, the network's view of the image: not of its TTA views.
        extractor = clone(extractor).set_params(tta="none")
    crop = extractor.prepare(image)
    backbone = load_backbone(
        extractor.model, pretrained=extractor.pretrained, checkpoint=extractor.checkpoint
    )
    # A checkpoint is a fine-tuned backbone whose ImageNet head was left untrained: its own
    # head, saved beside it, explains its classes; random weights have no trained head.
    head, class_names = _fine_tuned_head(extractor.checkpoint)
    if head is not None:
        weights = f"fine-tuned, {Path(str(extractor.checkpoint)).name} and its head"
    elif backbone.weights.startswith("checkpoint:"):
        weights = "a checkpoint, a fine-tuned backbone without its head"
    elif backbone.weights == "random":
        weights = "random weights"
    elif not _has_classifier(backbone):
        weights = f"{backbone.weights}, without a classifier"
    else:
        weights = backbone.weights
    headless = head is None and weights != backbone.weights
    if cnn_map == "auto":
        cnn_map = "activation" if headless else "gradcam"
    if cnn_map == "gradcam" and headless:
        raise InvalidParameterError(
            f"show: Grad-CAM needs a trained classifier and {extractor.model} has "
            f"{weights}; draw the activation map instead (--map activation)"
        )
    if cnn_map == "activation" and class_index is not None:
        raise InvalidParameterError(
            "show: a class is explained by Grad-CAM only; the activation map has none"
        )
    size = f"{crop.shape[0]}x{crop.shape[1]}"
    on = _map_name(backbone)
    if cnn_map == "activation":
        heat = activation_map(backbone, crop)
        measure = "the norm of the" if _last_block(backbone.model) else "the channel mean of its"
        caption = (
            f"cnn: activation map of {extractor.model} ({weights}), {measure} {on} "
            f"({heat.shape[0]}x{heat.shape[1]}) over the {size} crop it sees; red = strongest"
        )
        return Picture(overlay_heat_map(crop, heat), caption)
    cam, probs, index = grad_cam(backbone, crop, class_index, head)
    predicted = int(probs.argmax())
    which = "the predicted class" if index == predicted else f"predicted: {predicted}"
    label = f" {class_names[index]!r}" if class_names else _class_name(index, len(probs))
    caption = (
        f"cnn: Grad-CAM of {extractor.model} ({weights}) for class {index}"
        f"{label} (p = {probs[index]:.2f}, {which}) on its {on} "
        f"({cam.shape[0]}x{cam.shape[1]}) over the {size} crop it sees; "
        "red = most evidence"
    )
    return Picture(overlay_heat_map(crop, cam), caption)


def _fine_tuned_head(checkpoint: Any) -> tuple[Any, list[str]]:
    """The linear head saved beside a fine-tuned checkpoint and its class names, or (None,
    []) when there is none."""
    if checkpoint is None:
        return None, []
    from featkit.finetune import checkpoint as saved

    if not saved.head_path(checkpoint).is_file():
        return None, []
    import torch

    state = saved.load_head(checkpoint)
    head = torch.nn.Linear(state["weight"].shape[1], state["weight"].shape[0])
    head.load_state_dict(state)
    try:
        names = [str(c) for c in saved.read_record(checkpoint).get("classes", [])]
    except Exception:  # a head without a readable record: indices only
        names = []
    return head.eval(), names


def _class_name(index: int, n_classes: int) -> str:
    """`` 'tabby, tabby cat'`` for an ImageNet class, else nothing."""
    if n_classes != _IMAGENET_CLASSES:
        return ""
    try:
        from timm.data import ImageNetInfo

        return f" {ImageNetInfo().index_to_description(index)!r}"
    except Exception:  # an older timm without the class names: the index alone
        return ""
