"""Data set loaders: class folders, multi-domain folders, CSV manifests, npz, dispatch, splits."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import featkit
from featkit.data import load_dataset
from tests.conftest import PACS, requires_pacs, write_image_folder


def test_class_folder(digit_folder):
    ds = load_dataset(digit_folder)
    assert len(ds) == 200
    assert ds.class_names == [f"class_{d}" for d in range(10)]
    assert ds.domains is None
    # ids are paths relative to the root, labels follow the folder names.
    for ident, label in zip(ds.ids[:20], ds.labels[:20], strict=True):
        assert ident.split("/")[0] == ds.class_names[label]
    assert ds.ids.tolist() == sorted(ds.ids.tolist())


def test_multi_domain_folder_pacs():
    requires_pacs()
    ds = load_dataset(PACS)
    assert ds.domain_names == ["art_painting", "cartoon", "photo", "sketch"]
    assert ds.class_names == ["dog", "elephant", "giraffe", "guitar", "horse", "house", "person"]
    assert len(ds) == 4115  # documented in the shared data README
    counts = {d: int((ds.domains == d).sum()) for d in ds.domain_names}
    assert counts["photo"] == 7 * 150
    assert counts["cartoon"] == 6 * 150 + 135
    assert counts["sketch"] == 6 * 150 + 80
    photo = load_dataset(PACS, domain="photo")
    assert len(photo) == 1050 and set(photo.domains.tolist()) == {"photo"}
    with pytest.raises(featkit.DatasetError, match="no domain 'painting'"):
        load_dataset(PACS, domain="painting")


def test_multi_domain_folder_made_here(tmp_path, digit_images):
    images, labels = digit_images
    write_image_folder(tmp_path / "d" / "source", images[:30], labels[:30])
    write_image_folder(tmp_path / "d" / "target", images[30:50], labels[30:50])
    ds = load_dataset(tmp_path / "d")
    assert ds.domain_names == ["source", "target"]
    assert (ds.domains == "source").sum() == 30
    assert ds.ids[0].startswith("source/class_")


def test_mixed_layout_is_an_error(tmp_path, digit_images):
    images, labels = digit_images
    write_image_folder(tmp_path / "m" / "dom", images[:4], labels[:4])
    (tmp_path / "m" / "flat").mkdir()
    Image.fromarray(images[0]).save(tmp_path / "m" / "flat" / "a.png")
    with pytest.raises(featkit.DatasetError, match="mixes layouts"):
        load_dataset(tmp_path / "m")


def test_csv_manifest_with_relative_paths(tmp_path, digit_images):
    images, labels = digit_images
    img_dir = tmp_path / "imgs"
    img_dir.mkdir()
    lines = ["path,label,domain,split"]
    for i in range(12):
        Image.fromarray(images[i]).save(img_dir / f"{i}.png")
        lines.append(
            f"imgs/{i}.png,{labels[i]},{'a' if i < 6 else 'b'},{'train' if i % 3 else 'test'}"
        )
    lines.append("imgs/missing.png,3,a,train")  # kept: extraction reports it
    manifest = tmp_path / "list.csv"
    manifest.write_text("\n".join(lines) + "\n")
    ds = load_dataset(manifest)
    assert len(ds) == 13
    assert ds.ids[0] == "imgs/0.png"
    assert ds.class_names == sorted({str(v) for v in labels[:12]} | {"3"}, key=int)
    assert [ds.class_names[i] for i in ds.labels[:12]] == [str(v) for v in labels[:12]]
    assert ds.domain_names == ["a", "b"]
    train, test = ds.train_test_split()
    assert len(test) == 4 and len(train) == 9
    fs = featkit.extract("pixels", ds, n_jobs=1, progress=False)
    assert len(fs) == 12
    assert fs.failed[0]["id"] == "imgs/missing.png"
    assert "no such file" in fs.failed[0]["reason"].lower()


def test_manifest_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("file,label\na.png,1\n")
    with pytest.raises(featkit.DatasetError, match="needs a 'path' column"):
        load_dataset(bad)
    empty = tmp_path / "empty.csv"
    empty.write_text("path,label\n")
    with pytest.raises(featkit.DatasetError, match="lists no images"):
        load_dataset(empty)


def test_npz_images(tmp_path, digit_images):
    images, labels = digit_images
    path = tmp_path / "digits.npz"
    np.savez(path, X=images[:50], y=labels[:50])
    ds = load_dataset(path)
    assert len(ds) == 50
    np.testing.assert_array_equal(np.asarray(ds.class_names, dtype=int)[ds.labels], labels[:50])
    fs = featkit.extract(featkit.create_extractor("pixels", size=8), ds, n_jobs=1, progress=False)
    np.testing.assert_allclose(fs.X, images[:50].reshape(50, -1) / 255.0, atol=1e-6)

    flat = tmp_path / "flat.npz"
    np.savez(flat, X=images[:5].reshape(5, -1), y=labels[:5])
    with pytest.raises(featkit.DatasetError, match="image_shape"):
        load_dataset(flat)
    assert load_dataset(flat, image_shape=(8, 8)).items.shape == (5, 8, 8)


def test_digits_builtin_is_the_default(digit_images):
    ds = load_dataset("digits")
    assert len(ds) == 1797 and ds.n_classes == 10
    train, test = ds.train_test_split(test_size=0.25, seed=0)
    assert len(train) + len(test) == 1797
    # Stratified: every class keeps its share within one image.
    full = np.bincount(ds.labels) * 0.25
    assert np.all(np.abs(np.bincount(test.labels) - full) <= 1)
    again, _ = ds.train_test_split(test_size=0.25, seed=0)
    np.testing.assert_array_equal(train.ids, again.ids)  # seeded
    other, _ = ds.train_test_split(test_size=0.25, seed=1)
    assert not np.array_equal(train.ids, other.ids)


def test_unknown_spec_names_the_built_ins(tmp_path):
    with pytest.raises(featkit.DatasetError, match=r"not a built-in.*digits"):
        load_dataset(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(featkit.DatasetError, match="neither a folder"):
        load_dataset(tmp_path / "notes.txt")
    with pytest.raises(featkit.DatasetError, match="does not exist"):
        featkit.data.load_image_folder(tmp_path / "nowhere")


def test_subset_and_select_keep_columns_aligned(tmp_path, digit_images):
    images, labels = digit_images
    ds = featkit.Dataset.from_items(images[:10], labels[:10], domains=["a"] * 5 + ["b"] * 5)
    sub = ds.select(domain="b")
    assert len(sub) == 5
    np.testing.assert_array_equal(sub.items, images[5:10])
    assert [sub.class_names[i] for i in sub.labels] == [str(v) for v in labels[5:10]]
    with pytest.raises(featkit.DatasetError, match="no split"):
        ds.select(split="train")


def test_sample_per_class_counts_order_and_seed():
    ds = featkit.load_dataset("digits")
    counts = np.bincount(ds.labels)
    sample = ds.sample_per_class(20, seed=3)
    assert np.bincount(sample.labels).tolist() == [20] * ds.n_classes
    positions = {i: p for p, i in enumerate(ds.ids.tolist())}
    picked = [positions[i] for i in sample.ids.tolist()]
    assert picked == sorted(picked)  # original order, no duplicates
    assert sample.ids.tolist() == ds.sample_per_class(20, seed=3).ids.tolist()
    assert sample.ids.tolist() != ds.sample_per_class(20, seed=4).ids.tolist()
    assert len(ds.sample_per_class(10_000)) == len(ds)  # fewer than n: all of the class
    assert counts.min() < 10_000
    with pytest.raises(featkit.InvalidParameterError, match="n must be an int >= 1"):
        ds.sample_per_class(0)


def test_sample_per_class_draws_in_each_domain(digit_images):
    images, labels = digit_images
    domains = np.where(np.arange(len(labels)) % 3 == 0, "a", "b")
    ds = featkit.Dataset.from_items(images, labels, domains=domains.tolist())
    sample = ds.sample_per_class(4, seed=0)
    for domain in ("a", "b"):
        in_domain = sample.labels[sample.domains == domain]
        assert np.bincount(in_domain, minlength=ds.n_classes).tolist() == [4] * ds.n_classes


def test_npz_layout_scale_and_unlabelled_rows(tmp_path, digit_images, caplog):
    images, labels = digit_images
    chw = np.repeat(images[:4, None], 3, axis=1)  # (n, 3, 8, 8)
    np.savez(tmp_path / "chw.npz", X=chw, y=labels[:4])
    with pytest.raises(featkit.DatasetError, match="channels-first"):
        load_dataset(tmp_path / "chw.npz")

    scaled = images[:6].astype(np.float32)  # floats on a 0..255 scale
    y = labels[:6].copy()
    y[0] = -1
    np.savez(tmp_path / "f255.npz", X=scaled, y=y)
    ds = load_dataset(tmp_path / "f255.npz")
    assert ds.labels[0] == -1 and "-1" not in ds.class_names
    X = featkit.create_extractor("pixels", size=8).transform(ds)
    np.testing.assert_allclose(X, images[:6].reshape(6, -1) / 255.0, atol=1e-6)  # one scale
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_broken_symlinks_are_reported_not_lost(digit_folder):
    (digit_folder / "class_1" / "dangling.png").symlink_to(digit_folder / "nowhere.png")
    fs = featkit.extract("pixels", digit_folder, n_jobs=1, progress=False)
    assert [f["id"] for f in fs.failed] == ["class_1/dangling.png"]
    assert "no such file" in fs.failed[0]["reason"]


def test_compare_leaves_out_unlabelled_images(tmp_path, digit_images):
    from featkit.evaluate import compare

    images, labels = digit_images
    lines = ["path,label"]
    for i in range(60):
        Image.fromarray(images[i]).save(tmp_path / f"{i}.png")
        lines.append(f"{i}.png,{labels[i] if i % 10 else ''}")
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    result = compare(tmp_path / "m.csv", extractors=["pixels"], classifiers=["knn"])
    protocol = result.provenance["protocol"]
    assert protocol["unlabelled_left_out"] == 6
    (row,) = result.rows
    assert row["n_train"] + row["n_test"] == 54
    assert "random" in protocol["description"] or "stratified" in protocol["description"]
