"""Tests of the built-in data sets: digits, Fashion-MNIST, MNIST, USPS and the IDX reader."""

from __future__ import annotations

import bz2
import gzip
import re
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from featkit.data import builtin
from featkit.data.builtin import (
    BUILTIN_DATASETS,
    default_data_root,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    load_usps,
    read_idx,
)
from featkit.exceptions import DatasetError

DEBIAN_TRAIN_IMAGES = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
USPS_NPZ = SHARED_DATA / "usps" / "usps.npz"

FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]

IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D}


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file by hand (magic, big-endian dims, big-endian data)."""
    code = IDX_CODES[array.dtype.type]
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


@pytest.fixture
def no_data_anywhere(tmp_path, monkeypatch):
    """Point FEATKIT_DATA and the Debian folder at empty places, so nothing real is found."""
    monkeypatch.setenv("FEATKIT_DATA", str(tmp_path / "featkit-data"))
    monkeypatch.setattr(builtin, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "no-debian")
    return tmp_path


# --- registry and data root -------------------------------------------------------------


def test_registry_names():
    assert set(BUILTIN_DATASETS) == {"digits", "fashion-mnist", "mnist", "usps"}
    assert BUILTIN_DATASETS["digits"] is load_digits
    assert BUILTIN_DATASETS["fashion-mnist"] is load_fashion_mnist


def test_default_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv("FEATKIT_DATA", str(tmp_path / "somewhere"))
    assert default_data_root() == tmp_path / "somewhere"
    monkeypatch.delenv("FEATKIT_DATA")
    assert default_data_root() == Path.home() / ".cache" / "featkit" / "data"
    assert not (tmp_path / "somewhere").exists()  # only named, never created


# --- digits -----------------------------------------------------------------------------


def test_digits_matches_sklearn():
    from sklearn.datasets import load_digits as sk_load_digits

    sk = sk_load_digits()
    ds = load_digits()
    assert ds.name == "digits"
    assert ds.items.shape == (1797, 8, 8)
    assert ds.items.dtype == np.uint8
    assert ds.class_names == [str(d) for d in range(10)]
    assert ds.n_classes == 10
    np.testing.assert_array_equal(ds.labels, sk.target)
    assert ds.labels.dtype == np.int64
    np.testing.assert_array_equal(ds.items, np.round(sk.images * 255 / 16).astype(np.uint8))
    assert ds.items.max() == 255 and ds.items.min() == 0
    assert ds.splits is None
    assert ds.root is None
    assert len(set(ds.ids.tolist())) == 1797
    assert ds.info["source"] == "scikit-learn load_digits"


# --- read_idx ---------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32])
def test_read_idx_round_trip(tmp_path, suffix, dtype):
    rng = np.random.default_rng(0)
    array = (rng.random((5, 3, 4)) * 200 - (0 if dtype == np.uint8 else 100)).astype(dtype)
    path = write_idx(tmp_path / f"x-idx3{suffix}", array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype)  # native byte order
    assert back.shape == (5, 3, 4)
    np.testing.assert_array_equal(back, array)


def test_read_idx_one_dimensional(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "l-idx1", labels)), labels)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_truncated(tmp_path, suffix):
    array = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    full = tmp_path / "full-idx3"
    write_idx(full, array)
    path = tmp_path / f"cut-idx3{suffix}"
    data = full.read_bytes()[:-7]
    path.write_bytes(gzip.compress(data) if suffix else data)
    with pytest.raises(DatasetError, match=f"cut-idx3{suffix}.*truncated"):
        read_idx(path)


def test_read_idx_truncated_gzip_stream(tmp_path):
    path = write_idx(tmp_path / "x-idx3.gz", np.zeros((20, 8, 8), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DatasetError, match=re.escape("x-idx3.gz")):
        read_idx(path)


def test_read_idx_bad_magic(tmp_path):
    path = tmp_path / "bad-idx1"
    path.write_bytes(struct.pack(">BBBBI", 1, 2, 0x08, 1, 3) + b"abc")
    with pytest.raises(DatasetError, match=r"bad-idx1.*magic"):
        read_idx(path)


def test_read_idx_unknown_dtype(tmp_path):
    path = tmp_path / "odd-idx1"
    path.write_bytes(struct.pack(">BBBBI", 0, 0, 0x42, 1, 3) + b"abc")
    with pytest.raises(DatasetError, match=r"odd-idx1.*dtype"):
        read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="nothing-idx1"):
        read_idx(tmp_path / "nothing-idx1")


# --- fashion-mnist from the Debian package ----------------------------------------------


@pytest.mark.skipif(
    not DEBIAN_TRAIN_IMAGES.is_file(),
    reason=f"{DEBIAN_TRAIN_IMAGES} absent (apt-get install dataset-fashion-mnist)",
)
def test_fashion_mnist_from_debian(monkeypatch, tmp_path):
    # An empty FEATKIT_DATA keeps a user's cached copy out of the way: the Debian files must win.
    monkeypatch.setenv("FEATKIT_DATA", str(tmp_path))
    ds = load_fashion_mnist(download=False)
    assert ds.name == "fashion-mnist"
    assert ds.root == str(DEBIAN_TRAIN_IMAGES.parent)
    assert "dataset-fashion-mnist" in ds.info["source"]
    assert ds.items.shape == (70000, 28, 28)
    assert ds.items.dtype == np.uint8
    assert ds.labels.dtype == np.int64
    assert ds.class_names == FASHION_CLASSES
    train, test = ds.train_test_split()
    assert len(train) == 60000 and len(test) == 10000
    assert (ds.splits[:60000] == "train").all() and (ds.splits[60000:] == "test").all()
    np.testing.assert_array_equal(np.bincount(train.labels, minlength=10), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(test.labels, minlength=10), [1000] * 10)
    assert ds.ids[42] == "fashion-mnist/train/00042"
    assert ds.ids[60000] == "fashion-mnist/test/00000"
    assert 0 < ds.items.mean() < 255  # real pictures, not a blank array


# --- mnist from a local copy in torchvision's layout ------------------------------------


def _digits_28x28() -> tuple[np.ndarray, np.ndarray]:
    """Real handwritten digits (sklearn's), resized to MNIST's 28x28."""
    from PIL import Image
    from sklearn.datasets import load_digits as sk_load_digits

    sk = sk_load_digits()
    small = np.round(sk.images * 255 / 16).astype(np.uint8)
    big = np.stack(
        [np.asarray(Image.fromarray(im).resize((28, 28), Image.BILINEAR)) for im in small]
    )
    return big, sk.target.astype(np.uint8)


def test_mnist_from_torchvision_layout(tmp_path, no_data_anywhere):
    images, labels = _digits_28x28()
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    # Mix unpacked and gzipped files: torchvision leaves both kinds around.
    write_idx(raw / "train-images-idx3-ubyte", images[:1500])
    write_idx(raw / "train-labels-idx1-ubyte.gz", labels[:1500])
    write_idx(raw / "t10k-images-idx3-ubyte.gz", images[1500:])
    write_idx(raw / "t10k-labels-idx1-ubyte", labels[1500:])

    ds = load_mnist(root=tmp_path, download=False)
    assert ds.name == "mnist"
    assert ds.root == str(raw)
    assert ds.class_names == [str(d) for d in range(10)]
    np.testing.assert_array_equal(ds.items, images)
    np.testing.assert_array_equal(ds.labels, labels)
    train, test = ds.select(split="train"), ds.select(split="test")
    np.testing.assert_array_equal(train.items, images[:1500])
    np.testing.assert_array_equal(test.labels, labels[1500:])
    assert ds.ids[1500] == "mnist/test/0000"


def test_mnist_label_count_mismatch(tmp_path, no_data_anywhere):
    images, labels = _digits_28x28()
    for stem, arr in [
        ("train-images-idx3-ubyte", images[:100]),
        ("train-labels-idx1-ubyte", labels[:99]),
        ("t10k-images-idx3-ubyte", images[100:120]),
        ("t10k-labels-idx1-ubyte", labels[100:120]),
    ]:
        write_idx(tmp_path / stem, arr)
    with pytest.raises(DatasetError, match="train-labels-idx1-ubyte"):
        load_mnist(root=tmp_path, download=False)


# --- usps from a local copy -------------------------------------------------------------


def _write_libsvm_bz2(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    """USPS in libsvm's format: ``label+1 1:v1 ... 256:v256`` with v in [-1, 1], bz2."""
    values = x.reshape(len(x), -1).astype(np.float64) * 2 - 1
    row_format = "%d " + " ".join(f"{j}:%.6f" for j in range(1, values.shape[1] + 1))
    lines = [
        row_format % (label + 1, *row)
        for label, row in zip(y.tolist(), values.tolist(), strict=True)
    ]
    path.write_bytes(bz2.compress(("\n".join(lines) + "\n").encode(), compresslevel=1))


@pytest.mark.skipif(not USPS_NPZ.is_file(), reason=f"{USPS_NPZ} absent (shared USPS copy)")
def test_usps_from_local_copy(tmp_path, no_data_anywhere):
    npz = np.load(USPS_NPZ)
    folder = tmp_path / "USPS"
    folder.mkdir()
    _write_libsvm_bz2(folder / "usps.bz2", npz["x_train"], npz["y_train"])
    _write_libsvm_bz2(folder / "usps.t.bz2", npz["x_test"], npz["y_test"])

    ds = load_usps(root=tmp_path, download=False)
    assert ds.name == "usps"
    assert ds.items.shape == (7291 + 2007, 16, 16)
    assert ds.items.dtype == np.uint8
    assert ds.class_names == [str(d) for d in range(10)]
    train, test = ds.train_test_split()
    assert len(train) == 7291 and len(test) == 2007
    np.testing.assert_array_equal(train.labels, npz["y_train"])
    np.testing.assert_array_equal(test.labels, npz["y_test"])
    for part, x in [(train, npz["x_train"]), (test, npz["x_test"])]:
        expected = np.floor(x.astype(np.float64) * 255)
        assert np.abs(part.items.astype(np.float64) - expected).max() <= 1
    assert ds.ids[7291] == "usps/test/0000"


# --- nothing found ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loader", "needles"),
    [
        (load_fashion_mnist, ["apt-get install dataset-fashion-mnist", "root=", "download"]),
        (load_mnist, ["root=", "train-images-idx3-ubyte", "download"]),
        (load_usps, ["root=", "usps.bz2", "download"]),
    ],
)
def test_missing_everything_without_download(no_data_anywhere, loader, needles):
    empty = no_data_anywhere / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError) as info:
        loader(root=empty, download=False)
    message = str(info.value)
    for needle in needles:
        assert needle in message
    assert str(empty) in message  # says where it looked


@pytest.mark.parametrize(
    ("loader", "tv_class", "needle"),
    [
        (load_fashion_mnist, "FashionMNIST", "apt-get install dataset-fashion-mnist"),
        (load_mnist, "MNIST", "train-images-idx3-ubyte"),
    ],
)
def test_download_failure_is_wrapped(no_data_anywhere, monkeypatch, loader, tv_class, needle):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(torchvision.datasets, tv_class, offline)
    with pytest.raises(DatasetError, match=needle) as info:
        loader(root=no_data_anywhere / "empty", download=True)
    assert isinstance(info.value.__cause__, urllib.error.URLError)


def test_mnist_reads_what_the_download_wrote(no_data_anywhere, monkeypatch):
    import torchvision.datasets

    images, labels = _digits_28x28()
    calls = []

    def fake_download(root, download):
        # Stands in for torchvision: writes the gz files where torchvision would.
        calls.append((root, download))
        raw = Path(root) / "MNIST" / "raw"
        raw.mkdir(parents=True)
        write_idx(raw / "train-images-idx3-ubyte.gz", images[:1000])
        write_idx(raw / "train-labels-idx1-ubyte.gz", labels[:1000])
        write_idx(raw / "t10k-images-idx3-ubyte.gz", images[1000:])
        write_idx(raw / "t10k-labels-idx1-ubyte.gz", labels[1000:])

    monkeypatch.setattr(torchvision.datasets, "MNIST", fake_download)
    ds = load_mnist()  # no root: downloads into default_data_root()
    assert calls == [(str(default_data_root()), True)]
    assert ds.info["source"] == "torchvision download"
    np.testing.assert_array_equal(ds.items, images)
    np.testing.assert_array_equal(ds.labels, labels)
    assert (ds.splits == "test").sum() == len(images) - 1000


def test_usps_download_failure_is_wrapped(no_data_anywhere, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(torchvision.datasets, "USPS", offline)
    with pytest.raises(DatasetError, match=re.escape("usps.bz2")) as info:
        load_usps(root=no_data_anywhere / "empty", download=True)
    assert isinstance(info.value.__cause__, urllib.error.URLError)


def test_fashion_mnist_pixels_equal_torchvisions_reader(tmp_path):
    """An independent IDX reader (torchvision's) agrees on the Debian files, image by image."""
    import gzip
    import shutil

    from torchvision.datasets.mnist import read_image_file, read_label_file

    src = Path("/usr/share/datasets/fashion-mnist")
    if not (src / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian package dataset-fashion-mnist is not installed")
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(src / f"{name}.gz") as fin, open(tmp_path / name, "wb") as fout:
            shutil.copyfileobj(fin, fout)
    images = read_image_file(str(tmp_path / "t10k-images-idx3-ubyte")).numpy()
    labels = read_label_file(str(tmp_path / "t10k-labels-idx1-ubyte")).numpy()
    test = builtin.load_fashion_mnist(download=False).select(split="test")
    np.testing.assert_array_equal(test.items, images)
    np.testing.assert_array_equal(test.labels, labels)
