"""Pictures of features (``featkit.show``, ``featkit show``), each checked against an
independent reference: skimage's HOG visualisation and LBP codes, OpenCV's keypoint
drawing, the dense grid the descriptors come from, and CAM from the classifier weights."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
from click.testing import CliRunner
from PIL import Image
from skimage.feature import hog as skimage_hog
from skimage.feature import local_binary_pattern

import featkit
from featkit.cli import cli
from featkit.exceptions import ExtractorNotFoundError, ImageReadError, InvalidParameterError
from featkit.extractors.cnn import CNN_ALIASES
from featkit.visualize import grad_cam, hog_glyphs, picture, show
from featkit.visualize.hog import WHITE_PERCENTILE
from featkit.visualize.keypoints import CENTRE_COLOR, KEYPOINT_COLOR, PATCH_COLORS
from featkit.visualize.lbp import SEPARATOR


@pytest.fixture(scope="module")
def cat_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("show") / "chelsea.png"
    Image.fromarray(skimage.data.chelsea()).save(path)
    return path


# -- hog ----------------------------------------------------------------------------------
HOG_CASES = [
    {},
    {"pixels_per_cell": (6, 10), "orientations": 12, "cells_per_block": (1, 1)},
    {"color": "rgb", "transform_sqrt": True, "pixels_per_cell": (5, 5), "size": (97, 131)},
    {"pixels_per_cell": (1, 3), "orientations": 4, "size": (20, 24)},  # lines leave the cells
]


@pytest.mark.parametrize("params", HOG_CASES)
def test_hog_glyphs_equal_skimage_visualize(cat_png: Path, params: dict) -> None:
    extractor = featkit.create_extractor("hog", **params)
    prepared = extractor.prepare(cat_png)
    ours = hog_glyphs(
        extractor.cell_histograms(prepared), extractor.pixels_per_cell, prepared.shape[:2]
    )
    _, reference = skimage_hog(
        prepared,
        orientations=extractor.orientations,
        pixels_per_cell=extractor.pixels_per_cell,
        cells_per_block=extractor.cells_per_block,
        block_norm=extractor.block_norm,
        transform_sqrt=extractor.transform_sqrt,
        visualize=True,
        channel_axis=-1 if prepared.ndim == 3 else None,
    )
    assert ours.shape == reference.shape
    # skimage sums its histograms in float32, featkit in float64
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6 * reference.max())
    assert np.array_equal(ours > 0, reference > 0)


def test_hog_picture_is_skimage_visualize_in_gray_levels(cat_png: Path) -> None:
    image = show(cat_png, "hog", orientations=8, pixels_per_cell=(8, 8))
    prepared = featkit.create_extractor("hog").prepare(cat_png)
    _, reference = skimage_hog(
        prepared, orientations=8, pixels_per_cell=(8, 8), cells_per_block=(2, 2), visualize=True
    )
    top = np.percentile(reference[reference > 0], WHITE_PERCENTILE)
    expected = np.clip(np.rint(reference * (255 / top)), 0, 255)
    assert image.shape == (128, 128, 3) and image.dtype == np.uint8
    assert (image[..., 0] == image[..., 2]).all()
    assert np.abs(image[..., 1].astype(int) - expected).max() <= 1  # float32 vs float64


# -- lbp ----------------------------------------------------------------------------------
def _ror_bins(n_points: int, codes: np.ndarray) -> np.ndarray:
    """skimage's "ror" codes numbered by rank among the rotation classes of P bits."""
    classes = sorted(
        {
            min(((c >> k) | (c << (n_points - k))) & (2**n_points - 1) for k in range(n_points))
            for c in range(2**n_points)
        }
    )
    return np.searchsorted(classes, codes)


@pytest.mark.parametrize(
    ("method", "radii", "bins"),
    [("uniform", (1, 2.5), (10, 22)), ("ror", (1,), (36,)), ("nri_uniform", (2,), (243,))],
)
def test_lbp_picture_is_skimage_codes(
    cat_png: Path, method: str, radii: tuple, bins: tuple
) -> None:
    extractor = featkit.create_extractor("lbp", radii=radii, method=method)
    image = show(cat_png, extractor)
    prepared = extractor.prepare(cat_png)
    height, width = prepared.shape
    assert image.shape == (height, len(radii) * width + 2 * (len(radii) - 1), 3)
    edge = math.ceil(max(radii)) + 1  # skimage reads zeros past the border, featkit reflects
    for i, (radius, n_bins) in enumerate(zip(radii, bins, strict=True)):
        panel = image[:, i * (width + 2) : i * (width + 2) + width, 0].astype(float)
        if i:
            assert (image[:, i * (width + 2) - 2 : i * (width + 2)] == SEPARATOR).all()
        n_points = round(8 * radius)
        codes = local_binary_pattern(prepared, n_points, radius, method).astype(np.intp)
        if method == "ror":
            codes = _ror_bins(n_points, codes)
        expected = np.rint(codes * 255 / (n_bins - 1))
        np.testing.assert_array_equal(
            panel[edge:-edge, edge:-edge], expected[edge:-edge, edge:-edge]
        )


def test_lbp_picture_codes_give_the_features(cat_png: Path) -> None:
    extractor = featkit.create_extractor("lbp", radii=1, grid=(2, 3))  # 10 bins: exact levels
    panel = show(cat_png, extractor)[..., 0]
    codes = np.rint(panel.astype(float) * 9 / 255).astype(int)
    cells = np.array_split(np.arange(128), 2), np.array_split(np.arange(128), 3)
    hists = [
        np.bincount(codes[np.ix_(rows, cols)].ravel(), minlength=10) / (len(rows) * len(cols))
        for rows in cells[0]
        for cols in cells[1]
    ]
    np.testing.assert_allclose(np.concatenate(hists), extractor.transform([cat_png])[0], atol=1e-7)


# -- sift and dsift -----------------------------------------------------------------------
def test_sift_picture_draws_the_strongest_keypoints_as_opencv(cat_png: Path) -> None:
    image = show(cat_png, "sift", max_keypoints=40, contrast_threshold=0.03)
    gray = featkit.read_image(cat_png, mode="gray")
    found = cv2.SIFT_create(contrastThreshold=0.03).detect(gray, None)
    # the 40 strongest, in OpenCV's order: antialiased circles blend in drawing order
    keep = set(sorted(range(len(found)), key=lambda i: -found[i].response)[:40])
    strongest = [kp for i, kp in enumerate(found) if i in keep]
    expected = cv2.drawKeypoints(
        np.repeat(gray[..., None], 3, axis=2),
        strongest,
        None,
        color=KEYPOINT_COLOR,
        flags=cv2.DRAW_MATCHES_FLAGS_DRAW_RICH_KEYPOINTS,
    )
    np.testing.assert_array_equal(image, expected)


def test_sift_picture_is_of_the_described_image(cat_png: Path) -> None:
    image = show(cat_png, "sift", max_side=200)
    assert image.shape == (133, 200, 3)  # 300x451 shrunk as the extractor shrinks it


def test_dsift_picture_marks_every_descriptor_centre(cat_png: Path) -> None:
    extractor = featkit.create_extractor("dsift", step=11, bin_sizes=(4, 7))
    image = show(cat_png, extractor)
    (features,) = extractor.describe([cat_png])
    assert image.shape == (224, 224, 3)
    # the descriptors' own centres, per bin size the same grid
    xy = np.unique(np.rint(features.xy * 224).astype(int), axis=0)
    expected = np.zeros((224, 224), dtype=bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            expected[xy[:, 1] + dy, xy[:, 0] + dx] = True
    np.testing.assert_array_equal((image == CENTRE_COLOR).all(axis=2), expected)
    # at the centre nearest the middle, each bin size's 4 x 4 bins: edges at centre + k * bin
    cx, cy = xy[np.argmin(np.hypot(xy[:, 0] - 112, xy[:, 1] - 112))]
    covered = expected.copy()  # dots are drawn last, then later bin sizes over earlier ones
    for bin_size, color in reversed(list(zip((4, 7), PATCH_COLORS, strict=False))):
        lattice = np.zeros((224, 224), dtype=bool)
        reach = 2 * bin_size
        for k in range(-2, 3):
            lattice[cy - reach : cy + reach + 1, cx + k * bin_size] = True
            lattice[cy + k * bin_size, cx - reach : cx + reach + 1] = True
        drawn = (image == color).all(axis=2)
        np.testing.assert_array_equal(drawn, lattice & ~covered)
        covered |= lattice


# -- cnn ----------------------------------------------------------------------------------
def _cat_in_a_corner(corner: str) -> np.ndarray:
    cat = cv2.resize(skimage.data.chelsea(), (224, 224), interpolation=cv2.INTER_AREA)
    canvas = np.full((448, 448, 3), 128, dtype=np.uint8)
    if corner == "top-left":
        canvas[:224, :224] = cat
    else:
        canvas[224:, 224:] = cat
    return canvas


@pytest.mark.parametrize("corner", ["top-left", "bottom-right"])
def test_grad_cam_finds_the_cat(corner: str) -> None:
    from featkit.extractors.backbones import load_backbone

    crop = featkit.create_extractor("cnn").prepare(_cat_in_a_corner(corner))
    cam, probs, index = grad_cam(load_backbone("efficientnet_lite0"), crop)
    assert 281 <= index <= 285  # ImageNet's domestic cats
    assert index == int(probs.argmax())
    # the cat fills 112 of the crop's 224 px each way: 4 of the 7x7 map's cells
    near = cam[:4, :4] if corner == "top-left" else cam[3:, 3:]
    assert near.sum() > 0.8 * cam.sum()


@pytest.mark.parametrize("model", ["efficientnet_lite0", "torchvision:resnet18"])
def test_grad_cam_equals_cam_from_the_classifier_weights(cat_png: Path, model: str) -> None:
    """After global average pooling and a linear layer, a logit's gradient at every position
    is the class's weight / positions: Grad-CAM is CAM (Zhou et al. 2016) scaled."""
    import torch

    from featkit.extractors.backbones import load_backbone

    pretrained = model == "efficientnet_lite0"  # no torchvision download offline
    backbone = load_backbone(model, pretrained=pretrained)
    crop = featkit.create_extractor("cnn", model=model, pretrained=pretrained).prepare(cat_png)
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255
    prep = backbone.preprocessing
    x = (x - torch.tensor(prep.mean).view(1, 3, 1, 1)) / torch.tensor(prep.std).view(1, 3, 1, 1)
    net = backbone.model
    with torch.no_grad():
        if backbone.library == "timm":
            maps, linear = net.forward_features(x)[0], net.get_classifier()
        else:
            body = torch.nn.Sequential(*list(net.children())[:-2])  # up to avgpool and fc
            maps, linear = body(x)[0], net.fc
        logits = net(x)[0]
    for index in (int(logits.argmax()), 7):
        expected = torch.relu(torch.einsum("c,chw->hw", linear.weight[index], maps))
        expected = expected / (maps.shape[1] * maps.shape[2])
        cam, probs, explained = grad_cam(backbone, crop, class_index=index)
        assert explained == index
        np.testing.assert_allclose(cam, expected.double().numpy(), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(probs, torch.softmax(logits.double(), 0).numpy(), rtol=1e-4)


def test_a_checkpoint_gets_the_activation_map(cat_png: Path, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from featkit.extractors.backbones import load_backbone

    state = load_backbone("efficientnet_lite0").model.state_dict()
    path = tmp_path / "backbone.safetensors"
    save_file({k: v.contiguous().clone() for k, v in state.items()}, str(path))
    drawn = picture(cat_png, "cnn", checkpoint=str(path))
    assert "activation map" in drawn.caption and "checkpoint" in drawn.caption
    # the same weights: the same map as the pretrained network's
    np.testing.assert_array_equal(drawn.image, show(cat_png, "cnn", cnn_map="activation"))
    assert not np.array_equal(drawn.image, show(cat_png, "cnn"))  # Grad-CAM differs
    with pytest.raises(InvalidParameterError, match="--map activation"):
        picture(cat_png, "cnn", checkpoint=str(path), cnn_map="gradcam")


def test_a_fine_tuned_head_beside_its_checkpoint_gets_grad_cam(cat_png: Path, tmp_path: Path):
    """FineTuner.save writes the head beside the backbone: Grad-CAM explains its classes,
    and equals CAM from that head's weights (computed here without featkit's hooks)."""
    import json

    import torch
    from safetensors.torch import save_file

    from featkit.extractors.backbones import load_backbone
    from featkit.finetune.checkpoint import export_head

    backbone = load_backbone("efficientnet_lite0")
    path = tmp_path / "tuned.safetensors"
    state = backbone.model.state_dict()
    save_file({k: v.contiguous().clone() for k, v in state.items()}, str(path))
    torch.manual_seed(0)
    head = torch.nn.Linear(1280, 3)
    export_head(head, path)
    path.with_suffix(".json").write_text(json.dumps({"classes": ["cat", "dog", "house"]}))

    drawn = picture(cat_png, "cnn", checkpoint=str(path), class_index=2)
    assert "Grad-CAM" in drawn.caption and "class 2 'house'" in drawn.caption
    crop = featkit.create_extractor("cnn").prepare(cat_png)
    prep = backbone.preprocessing
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255
    x = (x - torch.tensor(prep.mean).view(1, 3, 1, 1)) / torch.tensor(prep.std).view(1, 3, 1, 1)
    with torch.no_grad():
        maps = backbone.model.forward_features(x)[0]
        logits = head(maps.mean(dim=(1, 2)))
    for index in range(3):
        expected = torch.relu(torch.einsum("c,chw->hw", head.weight[index].detach(), maps))
        expected = expected / (maps.shape[1] * maps.shape[2])
        cam, probs, _ = grad_cam(backbone, crop, class_index=index, head=head)
        np.testing.assert_allclose(cam, expected.double().numpy(), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(probs, torch.softmax(logits.double(), 0).numpy(), rtol=1e-4)
    # The network's own classifier is back after the picture.
    with torch.no_grad():
        assert backbone.model(x).shape == (1, 1000)


def test_grad_cam_caption_names_the_class(cat_png: Path) -> None:
    drawn = picture(cat_png, "cnn", class_index=285)
    assert "class 285 'Egyptian cat'" in drawn.caption
    assert drawn.image.shape == (224, 224, 3) and drawn.image.dtype == np.uint8
    with pytest.raises(InvalidParameterError, match=r"0\.\.999"):
        picture(cat_png, "cnn", class_index=1000)
    with pytest.raises(InvalidParameterError, match="Grad-CAM only"):
        picture(cat_png, "cnn", class_index=3, cnn_map="activation")


def test_tta_draws_the_map_of_the_single_crop(cat_png: Path) -> None:
    np.testing.assert_array_equal(show(cat_png, "cnn", tta="flip"), show(cat_png, "cnn"))


def _vit_tokens_and_grad(backbone, x, head):
    """The tokens entering the ViT's last block and the gradient of each class's logit
    (``head`` on the pooled embedding) there, by ``retain_grad`` on the plain forward
    pass: no grid, no leaf swapping."""

    net = backbone.model
    seen = {}

    def keep(module, args):
        args[0].retain_grad()
        seen["tokens"] = args[0]

    hook = net.blocks[-1].register_forward_pre_hook(keep)
    try:
        pooled = net.forward_head(net.forward_features(x.requires_grad_(True)), pre_logits=True)
    finally:
        hook.remove()
    logits = head(pooled)[0]
    grads = []
    for index in range(len(logits)):
        seen["tokens"].grad = None
        logits[index].backward(retain_graph=True)
        grads.append(seen["tokens"].grad[0].clone())
    return seen["tokens"][0].detach(), grads, logits.detach()


def test_vit_grad_cam_is_on_the_patch_grid_of_the_last_blocks_input(cat_png: Path) -> None:
    """For a ViT, Grad-CAM weighs the patch tokens entering the last block by their mean
    gradient, each drawn at its patch: checked against gradients taken on the plain
    forward pass, token k at row k // 14 and column k % 14."""
    import torch

    from featkit.extractors.backbones import load_backbone

    backbone = load_backbone(CNN_ALIASES["vit_small"][0], pretrained=False)
    crop = featkit.create_extractor("cnn/vit_small", pretrained=False).prepare(cat_png)
    torch.manual_seed(0)
    head = torch.nn.Linear(backbone.model.embed_dim, 3)
    prefix = backbone.model.num_prefix_tokens
    prep = backbone.preprocessing
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255
    x = (x - torch.tensor(prep.mean).view(1, 3, 1, 1)) / torch.tensor(prep.std).view(1, 3, 1, 1)
    tokens, grads, logits = _vit_tokens_and_grad(backbone, x, head)
    patches = tokens[prefix:]  # (196, C)
    for index in range(3):
        weights = grads[index][prefix:].mean(dim=0)
        expected = torch.relu(patches @ weights).reshape(14, 14)
        cam, probs, explained = grad_cam(backbone, crop, class_index=index, head=head)
        assert explained == index and cam.shape == (14, 14)
        np.testing.assert_allclose(cam, expected.double().numpy(), rtol=1e-3, atol=1e-6)
        np.testing.assert_allclose(probs, torch.softmax(logits.double(), 0).numpy(), rtol=1e-4)
    # The activation map: each patch token's norm, at its patch.
    from featkit.visualize.cam import activation_map

    norms = torch.linalg.vector_norm(patches.double(), dim=1).reshape(14, 14)
    np.testing.assert_allclose(activation_map(backbone, crop), norms.numpy(), rtol=1e-5)


def test_vit_pictures_name_the_tokens(cat_png: Path) -> None:
    drawn = picture(cat_png, "cnn/vit_small", pretrained=False)
    assert "activation map" in drawn.caption and "random weights" in drawn.caption
    assert "norm of the patch tokens entering its last block (14x14)" in drawn.caption
    assert drawn.image.shape == (224, 224, 3)
    with pytest.raises(InvalidParameterError, match="Grad-CAM needs a trained classifier"):
        picture(cat_png, "cnn/vit_small", pretrained=False, cnn_map="gradcam")


def test_weights_without_a_classifier_have_no_class_to_explain() -> None:
    """DINOv2's self-supervised weights come without a classifier (timm num_classes=0):
    what they output is the embedding, so show draws the activation map."""
    from featkit.extractors.backbones import load_backbone
    from featkit.visualize.cam import _has_classifier

    assert _has_classifier(load_backbone(CNN_ALIASES["vit_small"][0], pretrained=False))
    assert not _has_classifier(load_backbone(CNN_ALIASES["dinov2_small"][0], pretrained=False))
    assert _has_classifier(load_backbone("torchvision:resnet18", pretrained=False))


# -- the API and the command line ---------------------------------------------------------
def test_what_show_does_not_draw(cat_png: Path) -> None:
    with pytest.raises(
        InvalidParameterError, match=r"'pixels': featkit show draws cnn, dsift, dsift-phow, hog"
    ):
        show(cat_png, "pixels")
    with pytest.raises(ExtractorNotFoundError, match="featkit show draws"):
        show(cat_png, "hogg")
    with pytest.raises(InvalidParameterError, match="cnn extractors only"):
        show(cat_png, "hog", class_index=3)
    with pytest.raises(InvalidParameterError, match="zoom"):
        show(cat_png, "hog", zoom=0)
    with pytest.raises(ImageReadError):
        show(cat_png.parent / "missing.png", "hog")


def test_an_extractor_instance_is_drawn_with_its_parameters(cat_png: Path) -> None:
    extractor = featkit.create_extractor("hog")
    image = show(cat_png, extractor, pixels_per_cell=(16, 16))
    assert extractor.pixels_per_cell == (8, 8)  # drawn with a copy
    np.testing.assert_array_equal(image, show(cat_png, "hog", pixels_per_cell=(16, 16)))
    assert not np.array_equal(image, show(cat_png, extractor))


def test_zoom_repeats_pixels(cat_png: Path) -> None:
    one = show(cat_png, "lbp", radii=1)
    three = featkit.show(cat_png, "lbp", radii=1, zoom=3)
    np.testing.assert_array_equal(three, one.repeat(3, axis=0).repeat(3, axis=1))


def test_cli_writes_the_picture(cat_png: Path, tmp_path: Path) -> None:
    out = tmp_path / "hog.png"
    args = ["show", str(cat_png), "-e", "hog", "-p", "pixels_per_cell=16,16", "-o", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"wrote {out}: hog: cell histograms")
    written = np.asarray(Image.open(out).convert("RGB"))
    np.testing.assert_array_equal(written, show(cat_png, "hog", pixels_per_cell=(16, 16)))


def test_cli_errors_are_one_line(cat_png: Path) -> None:
    for args, message in [
        (["-e", "color-hist"], "no picture for extractor 'color-hist'"),
        (["-e", "hog", "-p", "size=4,4"], "smaller than one block"),
        (["-e", "hog", "-o", "picture.nope"], "cannot write picture.nope"),
    ]:
        result = CliRunner().invoke(cli, ["show", str(cat_png), *args])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("featkit: error:") and message in lines[0]
