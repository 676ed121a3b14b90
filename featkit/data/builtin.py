"""Built-in data sets: scikit-learn's digits (embedded) and Fashion-MNIST, MNIST and USPS (files).

Every loader returns a :class:`~featkit.data.dataset.Dataset` whose ``items`` is one uint8
array ``(n, H, W)`` of grey images, train images first then test images where the source has an
official split. :data:`BUILTIN_DATASETS` maps each data set name to its loader.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from featkit.data.dataset import Dataset
from featkit.exceptions import DatasetError

__all__ = [
    "BUILTIN_DATASETS",
    "DEBIAN_FASHION_MNIST_DIR",
    "default_data_root",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "load_usps",
    "read_idx",
]

#: Where the Debian package ``dataset-fashion-mnist`` installs its IDX files.
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

#: IDX dtype codes (third byte of the magic number); multi-byte values are big-endian.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

#: The four files of MNIST and Fashion-MNIST, (images, labels) per split.
_IDX_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

_DIGIT_NAMES = [str(d) for d in range(10)]

FASHION_MNIST_CLASSES = [
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

_FASHION_INFO = {
    "license": "MIT (Zalando SE)",
    "citation": (
        "Han Xiao, Kashif Rasul, Roland Vollgraf. Fashion-MNIST: a Novel Image Dataset for "
        "Benchmarking Machine Learning Algorithms. arXiv:1708.07747, 2017."
    ),
    "url": "https://github.com/zalandoresearch/fashion-mnist",
}

_MNIST_INFO = {
    "license": "CC BY-SA 3.0 (Yann LeCun and Corinna Cortes)",
    "citation": (
        "Yann LeCun, Léon Bottou, Yoshua Bengio, Patrick Haffner. Gradient-based learning "
        "applied to document recognition. Proceedings of the IEEE 86(11), 1998."
    ),
    "url": "http://yann.lecun.com/exdb/mnist/",
}

_USPS_INFO = {
    "citation": (
        "Jonathan J. Hull. A database for handwritten text recognition research. "
        "IEEE Transactions on Pattern Analysis and Machine Intelligence 16(5), 1994."
    ),
    "url": "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass.html#usps",
}

_USPS_FILES = {"train": "usps.bz2", "test": "usps.t.bz2"}


def default_data_root() -> Path:
    """The folder for downloaded data sets: ``$FEATKIT_DATA``, else ``~/.cache/featkit/data``."""
    env = os.environ.get("FEATKIT_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "featkit" / "data"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed when its name ends in ``.gz``) as a native-order array."""
    path = Path(path)
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                data = fh.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError) as exc:  # a truncated gzip stream raises EOFError
        raise DatasetError(f"cannot read IDX file {str(path)!r}: {exc}") from exc

    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DatasetError(
            f"IDX file {str(path)!r} is malformed: bad magic number {data[:4].hex() or '(empty)'}"
        )
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise DatasetError(f"IDX file {str(path)!r} is malformed: unknown dtype code 0x{code:02x}")
    dtype = _IDX_DTYPES[code]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"IDX file {str(path)!r} is truncated: header cut short")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    count = int(np.prod(dims, dtype=np.int64))
    expected = header + count * dtype.itemsize
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "malformed (trailing bytes)"
        raise DatasetError(
            f"IDX file {str(path)!r} is {state}: {len(data)} bytes, expected {expected} "
            f"for shape {dims}"
        )
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)
    # frombuffer views immutable bytes; copy so callers get a writable, native-order array.
    return arr.astype(dtype.newbyteorder("="), copy=True)


def _ids(name: str, splits: Sequence[tuple[str, int]]) -> np.ndarray:
    """Stable ids ``name/split/00042``, zero-padded to the width of the largest split."""
    width = len(str(max(max(n for _, n in splits) - 1, 0)))
    return np.array([f"{name}/{split}/{i:0{width}d}" for split, n in splits for i in range(n)])


def _assemble(
    name: str,
    parts: dict[str, tuple[np.ndarray, np.ndarray]],
    class_names: list[str],
    root: Path,
    info: dict[str, Any],
) -> Dataset:
    """One Dataset from per-split (images, labels), train first."""
    order = [s for s in ("train", "test") if s in parts]
    images = np.concatenate([parts[s][0] for s in order]).astype(np.uint8, copy=False)
    labels = np.concatenate([np.asarray(parts[s][1], dtype=np.int64) for s in order])
    counts = [(s, len(parts[s][0])) for s in order]
    splits = np.concatenate([np.full(n, s) for s, n in counts])
    return Dataset(
        items=images,
        labels=labels,
        class_names=list(class_names),
        ids=_ids(name, counts),
        splits=splits,
        name=name,
        root=str(root),
        info=dict(info),
    )


def load_digits() -> Dataset:
    """scikit-learn's 1,797 handwritten digits, 8x8 grey images scaled from 0..16 to 0..255."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    n = len(images)
    width = len(str(n - 1))
    return Dataset(
        items=images,
        labels=np.asarray(bunch.target, dtype=np.int64),
        class_names=list(_DIGIT_NAMES),
        ids=np.array([f"digits/{i:0{width}d}" for i in range(n)]),
        splits=None,
        name="digits",
        root=None,
        info={
            "source": "scikit-learn load_digits",
            "license": "CC BY 4.0 (UCI Machine Learning Repository)",
            "citation": (
                "E. Alpaydin, C. Kaynak. Optical Recognition of Handwritten Digits. "
                "UCI Machine Learning Repository, 1998."
            ),
        },
    )


def _find_idx_files(folder: Path) -> dict[str, Path] | None:
    """The four MNIST-style files in ``folder`` (unpacked or ``.gz``), or None if any is missing."""
    found: dict[str, Path] = {}
    for stem in (f for pair in _IDX_FILES.values() for f in pair):
        # Prefer the unpacked file torchvision leaves next to the .gz: no decompression needed.
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                found[stem] = candidate
                break
        else:
            return None
    return found


def _read_idx_split(files: dict[str, Path], split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, H, W) uint8, labels (n,)) of one split, checked for matching shapes."""
    image_stem, label_stem = _IDX_FILES[split]
    images, labels = read_idx(files[image_stem]), read_idx(files[label_stem])
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DatasetError(
            f"IDX file {str(files[image_stem])!r}: expected uint8 images (n, H, W), "
            f"got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise DatasetError(
            f"IDX file {str(files[label_stem])!r}: expected {len(images)} labels, "
            f"got shape {labels.shape}"
        )
    return images, labels


def _load_idx_dataset(
    *,
    name: str,
    tv_class: str,
    root: str | os.PathLike | None,
    download: bool,
    extra_folders: Sequence[tuple[Path, str]],
    class_names: list[str],
    info: dict[str, Any],
    apt_package: str | None,
) -> Dataset:
    """Shared loader of MNIST-format data sets: search local folders, then torchvision download."""
    searched: list[tuple[Path, str]] = []
    if root is not None:
        root_path = Path(root).expanduser()
        searched += [(root_path, "user root"), (root_path / tv_class / "raw", "user root")]
    searched += list(extra_folders)
    searched.append((default_data_root() / tv_class / "raw", "featkit data folder"))

    for folder, origin in searched:
        files = _find_idx_files(folder)
        if files is not None:
            source = (
                f"Debian package {apt_package}"
                if origin == "Debian package"
                else f"local IDX files ({origin})"
            )
            parts = {s: _read_idx_split(files, s) for s in _IDX_FILES}
            return _assemble(name, parts, class_names, folder, {"source": source, **info})

    hint = (f"`apt-get install {apt_package}`, or " if apt_package else "") + (
        "allow the download (download=True, network needed), or pass root=FOLDER containing "
        "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
        f"t10k-labels-idx1-ubyte.gz (or {tv_class}/raw/ with them, torchvision's layout)"
    )
    looked = ", ".join(str(f) for f, _ in searched)
    if not download:
        raise DatasetError(f"{name} not found (looked in {looked}); {hint}")

    target = Path(root).expanduser() if root is not None else default_data_root()
    try:
        import torchvision.datasets

        getattr(torchvision.datasets, tv_class)(root=str(target), download=True)
    except Exception as exc:  # network, checksum, permission: all mean "could not download"
        raise DatasetError(
            f"{name} not found (looked in {looked}) and the download into {target} failed "
            f"({type(exc).__name__}: {exc}); {hint}"
        ) from exc
    folder = target / tv_class / "raw"
    files = _find_idx_files(folder)
    if files is None:
        raise DatasetError(f"{name}: torchvision reported a download but {folder} lacks files")
    parts = {s: _read_idx_split(files, s) for s in _IDX_FILES}
    return _assemble(name, parts, class_names, folder, {"source": "torchvision download", **info})


def load_fashion_mnist(root: str | os.PathLike | None = None, download: bool = True) -> Dataset:
    """Fashion-MNIST: 60,000 train + 10,000 test 28x28 grey images of 10 clothing classes.

    Looks in ``root``, then the Debian package ``dataset-fashion-mnist``, then
    ``default_data_root()/FashionMNIST/raw``; downloads with torchvision if allowed.
    """
    return _load_idx_dataset(
        name="fashion-mnist",
        tv_class="FashionMNIST",
        root=root,
        download=download,
        extra_folders=[(DEBIAN_FASHION_MNIST_DIR, "Debian package")],
        class_names=FASHION_MNIST_CLASSES,
        info=_FASHION_INFO,
        apt_package="dataset-fashion-mnist",
    )


def load_mnist(root: str | os.PathLike | None = None, download: bool = True) -> Dataset:
    """MNIST: 60,000 train + 10,000 test 28x28 grey handwritten digits.

    Looks in ``root`` (or its ``MNIST/raw``), then ``default_data_root()/MNIST/raw``; downloads
    with torchvision if allowed.
    """
    return _load_idx_dataset(
        name="mnist",
        tv_class="MNIST",
        root=root,
        download=download,
        extra_folders=[],
        class_names=_DIGIT_NAMES,
        info=_MNIST_INFO,
        apt_package=None,
    )


def load_usps(root: str | os.PathLike | None = None, download: bool = True) -> Dataset:
    """USPS: 7,291 train + 2,007 test 16x16 grey handwritten digits (libsvm's bz2 files).

    Looks for ``usps.bz2`` and ``usps.t.bz2`` in ``root`` (or its ``USPS/``), then
    ``default_data_root()/USPS``; downloads with torchvision if allowed.
    """
    candidates: list[Path] = []
    if root is not None:
        root_path = Path(root).expanduser()
        candidates += [root_path / "USPS", root_path]
    candidates.append(default_data_root() / "USPS")

    def complete(folder: Path) -> bool:
        return all((folder / f).is_file() for f in _USPS_FILES.values())

    folder = next((c for c in candidates if complete(c)), None)
    source = "local libsvm files"
    hint = (
        "allow the download (download=True, network needed), or pass root=FOLDER containing "
        "usps.bz2 and usps.t.bz2 (or USPS/ with them, torchvision's layout)"
    )
    looked = ", ".join(str(c) for c in candidates)
    try:
        import torchvision.datasets
    except ImportError as exc:
        raise DatasetError(f"usps needs torchvision to read its files: {exc}") from exc

    if folder is None:
        if not download:
            raise DatasetError(f"usps not found (looked in {looked}); {hint}")
        folder = (Path(root).expanduser() if root is not None else default_data_root()) / "USPS"
        try:
            for train in (True, False):
                torchvision.datasets.USPS(root=str(folder), train=train, download=True)
        except Exception as exc:  # network, checksum, permission: all mean "could not download"
            raise DatasetError(
                f"usps not found (looked in {looked}) and the download into {folder} failed "
                f"({type(exc).__name__}: {exc}); {hint}"
            ) from exc
        source = "torchvision download"

    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split, filename in _USPS_FILES.items():
        try:
            ds = torchvision.datasets.USPS(root=str(folder), train=split == "train")
        except (OSError, EOFError, ValueError, IndexError) as exc:
            raise DatasetError(f"cannot read USPS file {str(folder / filename)!r}: {exc}") from exc
        images = np.asarray(ds.data, dtype=np.uint8)
        if images.ndim != 3 or images.shape[1:] != (16, 16):
            raise DatasetError(
                f"USPS file {str(folder / filename)!r}: expected 16x16 images, got {images.shape}"
            )
        parts[split] = (images, np.asarray(ds.targets, dtype=np.int64))
    return _assemble("usps", parts, _DIGIT_NAMES, folder, {"source": source, **_USPS_INFO})


#: Loaders by data set name, for the data set dispatcher.
BUILTIN_DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": load_digits,
    "fashion-mnist": load_fashion_mnist,
    "mnist": load_mnist,
    "usps": load_usps,
}
