"""featkit adapt: the domain-pair matrix before and after alignment, from Python and the CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import uniform_filter
from sklearn.neighbors import KNeighborsClassifier

from featkit import create_extractor, extract, load_dataset
from featkit.align import CORAL, SubspaceAlignment
from featkit.evaluate import adapt
from featkit.exceptions import InvalidParameterError
from tests.conftest import featkit_command, write_image_folder


@pytest.fixture
def two_domain_folder(tmp_path: Path, digit_images) -> Path:
    """root/domain/class/*: 300 sharp digits and 300 other digits, blurred and darkened."""
    images, labels = digit_images
    write_image_folder(tmp_path / "shift" / "sharp", images[:300], labels[:300])
    soft = np.stack([uniform_filter(im.astype(float), 2) * 0.6 for im in images[300:600]])
    write_image_folder(tmp_path / "shift" / "soft", soft.astype(np.uint8), labels[300:600])
    return tmp_path / "shift"


def test_adapt_matches_a_hand_written_pipeline(two_domain_folder):
    """Each cell of the matrix is: align source and target, fit on the source, score the
    target, done here by hand with featkit's CORAL/SA and scikit-learn's 1-NN."""
    one_nn = {"1nn": KNeighborsClassifier(1)}
    result = adapt(
        two_domain_folder,
        extractor="pixels",
        aligners=("none", "coral", "sa"),
        classifiers=one_nn,
        view="pca",
    )
    assert len(result.rows) == 2 * 3  # 2 shifts x 3 aligners x 1 classifier
    features = extract(create_extractor("pixels"), load_dataset(two_domain_folder))
    for row in result.rows:
        src, tgt = features.select(domain=row["source"]), features.select(domain=row["target"])
        aligner = {"none": None, "coral": CORAL(), "sa": SubspaceAlignment()}[row["aligner"]]
        Zs, Zt = src.X, tgt.X
        if aligner is not None:
            aligner.fit_domains(src.X, tgt.X)
            Zs, Zt = aligner.transform_source(src.X), aligner.transform_target(tgt.X)
        expected = KNeighborsClassifier(1).fit(Zs, src.y).score(Zt, tgt.y)
        assert row["accuracy"] == pytest.approx(expected, abs=1e-9), row["split"]
        assert row["n_train"] == len(src) and row["n_test"] == len(tgt)
    shifts, table = result.pair_matrix()
    assert shifts == ["sharp→soft", "soft→sharp"]
    # One name per method everywhere: no aligner, no middle term (as in the ranked table).
    assert [m for m, _ in table] == ["pixels + 1nn", "pixels + coral + 1nn", "pixels + sa + 1nn"]
    for _, values in table:
        assert values[-1] == pytest.approx(np.mean(values[:-1]))
    # The 2-D views: the first shift, before and after each aligner, with the domains.
    assert list(result.views) == ["none", "coral", "sa"]
    for view in result.views.values():
        assert set(view["domain"].tolist()) == {"source", "target"}
        assert view["shift"] == "sharp→soft"


def test_coral_helps_on_this_shift(two_domain_folder):
    result = adapt(
        two_domain_folder,
        extractor="pixels",
        aligners=("none", "coral"),
        classifiers=("knn",),
        view=None,
    )
    means = {r["aligner"]: r["accuracy"] for r in result.summary()}
    assert means["coral"] > means["none"]


def test_source_and_target_data_sets(two_domain_folder):
    result = adapt(
        source=two_domain_folder / "sharp",
        target=two_domain_folder / "soft",
        extractor="pixels",
        aligners=("none",),
        classifiers={"1nn": KNeighborsClassifier(1)},
        view=None,
    )
    assert [r["split"] for r in result.rows] == ["sharp→soft"]  # named after the folders


def test_source_and_target_need_the_same_classes(two_domain_folder, tmp_path, digit_images):
    images, labels = digit_images
    keep = labels < 5
    write_image_folder(tmp_path / "few", images[keep][:50], labels[keep][:50])
    with pytest.raises(InvalidParameterError, match="different classes"):
        adapt(source=two_domain_folder / "sharp", target=tmp_path / "few", extractor="pixels")


def test_data_without_domains_is_refused(digit_folder):
    with pytest.raises(InvalidParameterError, match="has no domains"):
        adapt(digit_folder, extractor="pixels")


def test_unknown_aligner_fails_before_extraction(two_domain_folder):
    with pytest.raises(InvalidParameterError, match="unknown aligner 'no-such-aligner'"):
        adapt(two_domain_folder, extractor="pixels", aligners=("none", "no-such-aligner"))


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*featkit_command(), "adapt", *args], capture_output=True, text=True, cwd=cwd
    )


def test_cli_adapt_writes_the_report(two_domain_folder, tmp_path):
    out = tmp_path / "report"
    proc = _cli(
        "-d",
        str(two_domain_folder),
        "-e",
        "pixels",
        "-a",
        "none,coral,sa",
        "-A",
        "sa.n_components=20",
        "--classifier",
        "knn",
        "--pairs",
        "sharp:soft",
        "--disagree",
        "pixels + sa + knn,pixels + knn",
        "-o",
        str(out),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "accuracy (%) per domain shift" in proc.stdout
    assert "pixels + coral + knn" in proc.stdout
    for name in ("results.json", "results.csv", "report.md", "alignment_2d.png", "accuracy.png"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    sa = [r for r in results["results"] if r["aligner"] == "sa"]
    assert sa and all(r["dim"] == 20 for r in sa)  # -A reached the aligner
    assert "Source and target in 2-D" in (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    assert "<p>pixels + sa + knn against pixels + knn, on the " in page  # --disagree


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give --data"),
        (("-d", "x", "--source", "y", "--target", "z"), "not both"),
        (("-d", "{data}", "-a", "none", "-A", "sa.n_components=2"), "not in --align"),
        (("-d", "{data}", "-a", "none,no-such-aligner"), "unknown aligner"),
        (("-d", "{data}", "--pairs", "sharp-soft"), "SOURCE:TARGET"),
    ],
)
def test_cli_adapt_errors(two_domain_folder, tmp_path, args, message):
    args = [a.replace("{data}", str(two_domain_folder)) for a in args]
    proc = _cli(*args, "-e", "pixels", cwd=tmp_path)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_pair_table_uses_initials_when_they_are_distinct():
    from featkit.evaluate.results import EvaluationResult

    def row(source, target, accuracy):
        return {
            "extractor": "cnn",
            "aligner": "coral",
            "classifier": "svm",
            "split": f"{source}→{target}",
            "source": source,
            "target": target,
            "accuracy": accuracy,
        }

    rows = [row("photo", "sketch", 0.5), row("sketch", "photo", 0.25)]
    lines = EvaluationResult(rows=rows, provenance={}).pair_table().splitlines()
    assert lines[0].split() == ["method", "P→S", "S→P", "avg"]
    assert lines[2].split()[-3:] == ["50.0", "25.0", "37.5"]
    assert lines[-1] == "P = photo, S = sketch"
    rows = [row("sharp", "soft", 0.5), row("soft", "sharp", 0.25)]  # same initial: full names
    table = EvaluationResult(rows=rows, provenance={}).pair_table()
    assert table.splitlines()[0].split()[1:3] == ["sharp→soft", "soft→sharp"]
