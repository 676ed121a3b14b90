"""The compare job and `featkit evaluate`: scores equal independent scikit-learn runs, the
protocols are honest (upstream fitting never sees test rows), and the report is complete."""

from __future__ import annotations

import csv
import json
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer, normalize

import featkit
from featkit.classify import FaissKNNClassifier
from featkit.data import Dataset
from featkit.evaluate import compare, default_extractors, evaluate_features, resolve_extractors
from featkit.exceptions import ExtractorNotFoundError, InvalidParameterError
from featkit.extractors.pixels import PixelsExtractor
from tests.test_cli import run

SKLEARN_KNN = {"knn5": make_pipeline(Normalizer(), KNeighborsClassifier(5, algorithm="brute"))}


def test_compare_scores_match_a_direct_sklearn_run(digit_images):
    images, labels = digit_images
    result = compare("digits", extractors=["pixels"], classifiers=SKLEARN_KNN, view=None)
    (row,) = result.rows
    # Independent: same split rule, features computed directly, sklearn's k-NN.
    X = featkit.create_extractor("pixels").transform(images)
    idx_train, idx_test = train_test_split(
        np.arange(len(labels)), test_size=0.25, random_state=0, stratify=labels
    )
    knn = KNeighborsClassifier(n_neighbors=5, algorithm="brute")
    knn.fit(normalize(X[idx_train]), labels[idx_train])
    expected = knn.score(normalize(X[idx_test]), labels[idx_test])
    assert row["accuracy"] == expected
    assert row["n_test"] == len(idx_test) and row["dim"] == 256
    assert np.asarray(row["confusion_matrix"]).sum() == len(idx_test)


def test_test_rows_are_predicted_in_chunks_with_the_same_result(monkeypatch):
    from featkit.evaluate import scoring

    whole = compare("digits", extractors=["pixels"], classifiers=SKLEARN_KNN, view=None)
    seen = []
    predict = KNeighborsClassifier.predict
    monkeypatch.setattr(
        KNeighborsClassifier, "predict", lambda self, X: seen.append(len(X)) or predict(self, X)
    )
    monkeypatch.setattr(scoring, "PREDICT_BYTES", 256 * 4 * 100)  # 100 rows of 256 floats
    chunked = compare("digits", extractors=["pixels"], classifiers=SKLEARN_KNN, view=None)
    assert seen[:-1] == [100] * (len(seen) - 1) and 0 < seen[-1] <= 100
    assert sum(seen) == chunked.rows[0]["n_test"] > 100
    assert chunked.rows[0]["y_pred"] == whole.rows[0]["y_pred"]


def test_knn_preset_is_dinos_weighted_faiss_knn(digit_images):
    images, labels = digit_images
    result = compare("digits", extractors=["pixels"], classifiers=["knn"], view=None)
    X = featkit.create_extractor("pixels").transform(images)
    tr, te = train_test_split(
        np.arange(len(labels)), test_size=0.25, random_state=0, stratify=labels
    )
    knn = FaissKNNClassifier(20, metric="cosine", weights="similarity").fit(X[tr], labels[tr])
    assert result.rows[0]["accuracy"] == knn.score(X[te], labels[te])


def test_kfold_rows_and_summary(digit_images):
    images, labels = digit_images
    result = compare(
        "digits", extractors=["pixels"], classifiers=SKLEARN_KNN, protocol="kfold:3", view=None
    )
    assert [r["split"] for r in result.rows] == ["fold 1/3", "fold 2/3", "fold 3/3"]
    X = normalize(featkit.create_extractor("pixels").transform(images))
    folds = StratifiedKFold(3, shuffle=True, random_state=0).split(X, labels)
    expected = [
        KNeighborsClassifier(5, algorithm="brute").fit(X[tr], labels[tr]).score(X[te], labels[te])
        for tr, te in folds
    ]
    np.testing.assert_allclose([r["accuracy"] for r in result.rows], expected)
    (summary,) = result.summary()
    assert summary["n_splits"] == 3
    assert summary["accuracy"] == pytest.approx(np.mean(expected))
    assert summary["accuracy_std"] == pytest.approx(np.std(expected))


def test_fewshot_reports_mean_and_std_over_repeats():
    result = compare(
        "digits", extractors=["pixels"], classifiers=SKLEARN_KNN, protocol="fewshot:5x4", view=None
    )
    accs = [r["accuracy"] for r in result.rows]
    assert len(accs) == 4 and len(set(accs)) > 1  # the draws differ
    assert all(r["n_train"] == 50 for r in result.rows)
    (summary,) = result.summary()
    assert summary["accuracy"] == pytest.approx(np.mean(accs))
    assert summary["accuracy_std"] == pytest.approx(np.std(accs))
    assert "± std" in result.table()


def test_perclass_scores_the_rest_like_a_direct_sklearn_run(digit_images):
    images, labels = digit_images
    result = compare(
        "digits",
        extractors=["pixels"],
        classifiers=SKLEARN_KNN,
        protocol="perclass:20x2",
        view=None,
    )
    assert [r["split"] for r in result.rows] == ["20-per-class #1", "20-per-class #2"]
    X = featkit.create_extractor("pixels").transform(images)
    for repeat, row in enumerate(result.rows):
        rng = np.random.default_rng(repeat)  # PerClass's draw, written out
        train = np.sort(
            np.concatenate(
                [rng.permutation(np.flatnonzero(labels == c))[:20] for c in np.unique(labels)]
            )
        )
        test = np.setdiff1d(np.arange(len(labels)), train)
        knn = KNeighborsClassifier(n_neighbors=5, algorithm="brute")
        knn.fit(normalize(X[train]), labels[train])
        assert row["n_train"] == 200 and row["n_test"] == len(labels) - 200
        assert row["accuracy"] == knn.score(normalize(X[test]), labels[test])
        assert row["shots"] == 20 and row["repeat"] == repeat + 1


class CentredPixels(PixelsExtractor):
    """Pixels minus the mean training image: learns from images, and logs what it saw."""

    requires_fit = True
    seen: ClassVar[list[float]] = []

    def _fit(self, images, y):
        stack = np.stack(images)
        CentredPixels.seen.append(float(stack.sum()))
        self.mean_ = stack.mean(axis=0).ravel()

    def _transform(self, images):
        return super()._transform(images) - self.mean_


def test_extractors_that_learn_are_fitted_on_training_rows_only(digit_images):
    images, labels = digit_images
    CentredPixels.seen = []
    compare(
        "digits",
        extractors={"centred": CentredPixels()},
        classifiers=SKLEARN_KNN,
        protocol="kfold:3",
        view=None,
    )
    prepared = np.stack(CentredPixels().prepare_many(images))
    folds = StratifiedKFold(3, shuffle=True, random_state=0).split(images, labels)
    expected = [float(prepared[tr].sum()) for tr, _ in folds]
    np.testing.assert_allclose(CentredPixels.seen, expected, rtol=1e-6)


class CountingPixels(PixelsExtractor):
    """Pixels, counting the images it is asked to describe."""

    described: ClassVar[list[int]] = []

    def _transform(self, images):
        CountingPixels.described.append(len(images))
        return super()._transform(images)


def test_only_the_images_the_splits_use_are_extracted():
    CountingPixels.described = []
    result = compare(
        "digits",
        extractors={"pixels": CountingPixels()},
        classifiers=SKLEARN_KNN,
        protocol="perclass:20/10",  # 20 to train and 10 to test per class: 300 of 1,797
        view=None,
        n_jobs=1,
    )
    assert sum(CountingPixels.described) == 300
    assert result.rows[0]["n_train"] == 200 and result.rows[0]["n_test"] == 100


def test_domain_pairs_train_on_one_domain_and_test_on_the_other(digit_images):
    images, labels = digit_images
    items = np.concatenate([images[:300], 255 - images[300:600]])
    domains = ["plain"] * 300 + ["inverted"] * 300
    data = Dataset.from_items(items, labels[:600], domains=domains, name="two-domains")
    result = compare(data, extractors=["pixels"], classifiers=SKLEARN_KNN, protocol="domains")
    assert [r["split"] for r in result.rows] == ["inverted→plain", "plain→inverted"]
    X = normalize(featkit.create_extractor("pixels").transform(items))
    knn = KNeighborsClassifier(5, algorithm="brute").fit(X[:300], labels[:300])
    assert result.rows[1]["accuracy"] == knn.score(X[300:], labels[300:600])
    shifts, table = result.pair_matrix()
    assert shifts == ["inverted→plain", "plain→inverted"]
    (_method, values) = table[0]
    assert values[-1] == pytest.approx(np.mean(values[:2]))


def test_missing_extractors_are_skipped_not_fatal():
    result = compare(
        "digits", extractors=["pixels", "no-such-extractor"], classifiers=SKLEARN_KNN, view=None
    )
    assert [r["extractor"] for r in result.rows] == ["pixels"]
    assert "no-such-extractor" in result.skipped


def test_local_extractors_are_skipped_with_a_hint():
    result = compare("digits", extractors=["pixels", "dsift"], classifiers=SKLEARN_KNN, view=None)
    assert "dsift-bovw" in result.skipped["dsift"]
    assert [r["extractor"] for r in result.rows] == ["pixels"]


def test_resolve_extractors_builds_named_ones_with_their_params_and_skips_missing_ones():
    with pytest.raises(ExtractorNotFoundError) as missing:
        featkit.create_extractor("no-such-extractor")
    said: list[str] = []
    chosen, skipped = resolve_extractors(
        ["pixels", "no-such-extractor", "dsift"],
        {"pixels": {"size": 8}, "no-such-extractor": {"x": 1}},
        say=said.append,
    )
    assert list(chosen) == ["pixels", "dsift"]  # local ones are compare()'s to leave out
    assert chosen["pixels"].get_params() == {"size": 8, "color": "gray", "decode": "reduced"}
    assert skipped == {"no-such-extractor": str(missing.value)}
    assert said == [f"skipping no-such-extractor: {missing.value}"]


def test_resolve_extractors_sets_params_on_the_defaults_and_on_given_extractors():
    chosen, skipped = resolve_extractors(
        None, {"hog": {"orientations": 6}}, featkit.load_dataset("digits"), say=print
    )
    assert list(chosen) == ["pixels", "hog", "dsift-bovw", "cnn"] and skipped == {}
    hog = chosen["hog"].get_params()  # sized for 8 px digits, then the parameter
    assert (hog["size"], hog["pixels_per_cell"], hog["orientations"]) == ((32, 32), (4, 4), 6)
    mine = PixelsExtractor()
    chosen, skipped = resolve_extractors({"mine": mine}, {"mine": {"size": 4}})
    assert chosen == {"mine": mine} and mine.size == 4 and skipped == {}


def test_resolve_extractors_refuses_params_of_an_extractor_not_compared():
    with pytest.raises(InvalidParameterError, match=r"-p hog\.KEY: 'hog' is not compared"):
        resolve_extractors(["pixels"], {"hog": {"orientations": 6}})
    with pytest.raises(InvalidParameterError, match="is not compared"):
        resolve_extractors({"mine": PixelsExtractor()}, {"pixels": {"size": 4}})


def test_resolve_extractors_says_what_it_skipped_before_a_later_bad_parameter():
    said: list[str] = []
    with pytest.raises(InvalidParameterError, match="size must be an integer"):
        resolve_extractors(
            ["no-such-extractor", "pixels"], {"pixels": {"size": "big"}}, say=said.append
        )
    assert [line.split(":")[0] for line in said] == ["skipping no-such-extractor"]


def test_cli_refuses_params_of_an_extractor_not_compared():
    proc = run("compare", "--extractors", "pixels", "-p", "hog.size=8", "-q", check_code=2)
    assert proc.stderr == "featkit: error: -p hog.KEY: 'hog' is not compared\n"


def test_default_extractors_are_sized_for_tiny_images():
    tiny = featkit.load_dataset("digits")
    chosen = default_extractors(tiny)
    assert list(chosen)[:2] == ["pixels", "hog"]
    assert chosen["hog"].size == (32, 32)
    if "cnn" in chosen:
        assert chosen["cnn"].image_size == 96
    assert default_extractors(None)["hog"].size == (128, 128)


def test_cli_compare_writes_the_report(tmp_path):
    out = tmp_path / "report"
    proc = run(
        "compare", "--extractors", "pixels,hog", "-p", "hog.size=32,32",
        "--classifiers", "knn,logreg", "--out", str(out), "-q",
    )  # fmt: skip
    assert "pixels" in proc.stdout and "rank" in proc.stdout
    names = {p.name for p in out.iterdir()}
    assert names >= {"results.json", "results.csv", "report.md"}
    for png in ("accuracy.png", "confusion_matrix.png", "features_2d.png"):
        with Image.open(out / png) as im:
            im.verify()
            assert im.format == "PNG" and im.size[0] > 200
    doc = json.loads((out / "results.json").read_text())
    assert len(doc["summary"]) == 4 and all(0.9 < r["accuracy"] <= 1 for r in doc["summary"])
    assert doc["provenance"]["extractors"]["hog"]["params"]["size"] == [32, 32]
    with open(out / "results.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 4
    report = (out / "report.md").read_text()
    assert "![confusion matrix](confusion_matrix.png)" in report
    assert "logreg: C=" in report  # the chosen hyper-parameter is reported


def test_cli_evaluate_scores_saved_features(tmp_path):
    run("extract", "-e", "pixels", "-d", "digits", "-o", str(tmp_path / "pix"), "-q")
    out = tmp_path / "eval"
    proc = run(
        "evaluate", "-f", str(tmp_path / "pix"), "--classifiers", "knn",
        "--protocol", "kfold:3", "--out", str(out), "--no-plots", "--json", "-q",
    )  # fmt: skip
    doc = json.loads(proc.stdout)
    saved = featkit.FeatureSet.load(tmp_path / "pix")
    direct = evaluate_features(saved, ["knn"], "kfold:3", view=None)
    assert [r["accuracy"] for r in doc["results"]] == [r["accuracy"] for r in direct.rows]
    assert not list(out.glob("*.png"))


def test_cli_rejects_a_bad_protocol():
    proc = run("compare", "--protocol", "loo", "-q", check_code=2)
    assert "unknown protocol 'loo'" in proc.stderr


def test_unreadable_images_are_skipped_by_fitting_extractors_too(tmp_path, digit_images):
    from tests.conftest import write_image_folder

    images, labels = digit_images
    paths = write_image_folder(tmp_path, images[:90], labels[:90])
    for p in paths[::15]:  # 6 corrupt files
        p.write_bytes(b"not a png")
    result = compare(
        tmp_path,
        extractors={"centred": CentredPixels(), "pixels": PixelsExtractor()},
        classifiers=SKLEARN_KNN,
        protocol="kfold:3",
        view=None,
    )
    assert len(result.rows) == 6
    for row in result.rows:
        assert row["n_failed"] == 6
    assert sum(r["n_test"] for r in result.rows if r["extractor"] == "centred") == 84


def test_cli_skips_a_missing_extractor_also_with_params(tmp_path):
    proc = run(
        "compare", "--extractors", "pixels,no-such-extractor", "-p", "pixels.size=8",
        "--classifiers", "knn", "--out", str(tmp_path), "--no-plots", "-q",
    )  # fmt: skip
    assert "skipping no-such-extractor" in proc.stderr
    doc = json.loads((tmp_path / "results.json").read_text())
    assert [r["dim"] for r in doc["summary"]] == [64]


def test_evaluate_features_compares_sets_on_the_images_they_share():
    full = featkit.extract("pixels", "digits", progress=False)
    partial = full.subset(np.arange(len(full))[5:])  # lost 5 images
    result = evaluate_features(
        {"a": full, "b": partial}, classifiers=SKLEARN_KNN, protocol="kfold:3", view=None
    )
    by_name = {n: [r for r in result.rows if r["extractor"] == n] for n in ("a", "b")}
    # The same images, the same splits: identical features give identical scores.
    assert [r["accuracy"] for r in by_name["a"]] == [r["accuracy"] for r in by_name["b"]]
    assert sum(r["n_test"] for r in by_name["a"]) == len(full) - 5


class CountingKNN(KNeighborsClassifier):
    """scikit-learn's k-NN, counting its fits."""

    fits: ClassVar[list[int]] = []

    def fit(self, X, y):
        CountingKNN.fits.append(len(X))
        return super().fit(X, y)


def test_a_rerun_with_a_cache_refits_nothing(tmp_path):
    CountingKNN.fits = []
    kwargs = {"extractors": ["pixels"], "protocol": "kfold:3", "view": None}
    first = compare("digits", classifiers={"k": CountingKNN(5)}, cache_dir=tmp_path, **kwargs)
    assert len(CountingKNN.fits) == 3
    again = compare("digits", classifiers={"k": CountingKNN(5)}, cache_dir=tmp_path, **kwargs)
    assert len(CountingKNN.fits) == 3  # every score came from the cache

    def scored(rows):  # all but the extraction time, which the feature cache changes
        return [{k: v for k, v in r.items() if k != "extract_s"} for r in rows]

    assert scored(again.rows) == scored(first.rows)
    other = compare("digits", classifiers={"k": CountingKNN(7)}, cache_dir=tmp_path, **kwargs)
    assert len(CountingKNN.fits) == 6  # another parameter is another key
    assert [r["accuracy"] for r in other.rows] != [r["accuracy"] for r in first.rows]


def test_compare_says_which_precision_and_machine_computed_the_numbers(tmp_path):
    """bf16 numbers differ between CPU kinds: the header, the provenance and the report
    say how each deep extractor ran, and on what."""
    from featkit.hardware import cpu_bf16_kernels, cpu_model

    out = tmp_path / "report"
    proc = run(
        "compare", "--extractors", "pixels,cnn", "-p", "cnn.image_size=32",
        "-p", "cnn.device=cpu", "--classifiers", "knn", "--out", str(out), "--no-plots",
    )  # fmt: skip
    doc = json.loads((out / "results.json").read_text())
    runtime = doc["provenance"]["extractors"]["cnn"]["runtime"]
    precision = "bf16" if cpu_bf16_kernels() else "fp32"
    assert runtime["precision"] == precision and runtime["batch_size"] == 64  # 32 px images
    assert f"cnn runs in {precision} on the CPU ({cpu_model()}" in proc.stderr  # the log
    header = proc.stdout.splitlines()[:2]  # the data set, then how cnn ran
    assert header[1].startswith(f"cnn ran in {precision} on the CPU ({cpu_model()}")
    assert "pixels ran" not in proc.stdout  # no device, no precision: nothing to say
    machine = doc["provenance"]["machine"]
    assert machine["cpu"] == cpu_model() and machine["cpu_bf16"] == cpu_bf16_kernels()
    report = (out / "report.md").read_text()
    assert f"Computed on {cpu_model()}" in report
    assert f"`cnn` ran in {precision} on the CPU" in report
