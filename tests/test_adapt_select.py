"""featkit adapt --select: aligner parameters chosen per shift without target labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from featkit import create_extractor, extract, load_dataset
from featkit.align import CORAL, TCA, SubspaceAlignment
from featkit.align.selection import DEFAULT_GRIDS, select_params
from featkit.evaluate import adapt
from featkit.exceptions import InvalidParameterError
from tests.test_adapt import _cli, two_domain_folder  # noqa: F401 - the fixture

GRIDS = {"coral": DEFAULT_GRIDS["coral"], "sa": {"n_components": [5, 10, 20]}}


@pytest.mark.parametrize("scorer", ["entropy", "importance-weighted"])
def test_select_chooses_what_the_scorer_picks_by_hand(two_domain_folder, scorer, monkeypatch):  # noqa: F811
    monkeypatch.setitem(DEFAULT_GRIDS, "sa", GRIDS["sa"])  # 64 pixels: small subspaces
    one_nn = {"1nn": KNeighborsClassifier(1)}
    result = adapt(
        two_domain_folder,
        extractor="pixels",
        aligners=("none", "coral", "sa"),
        classifiers=one_nn,
        select=scorer,
        view=None,
    )
    features = extract(create_extractor("pixels"), load_dataset(two_domain_folder))
    assert len(result.rows) == 2 * 3
    for row in result.rows:
        if row["aligner"] == "none":
            assert "chosen" not in row or not row["chosen"]
            continue
        src, tgt = features.select(domain=row["source"]), features.select(domain=row["target"])
        aligner = {"coral": CORAL(), "sa": SubspaceAlignment()}[row["aligner"]]
        best, table = select_params(
            aligner, src.X, src.y, tgt.X, scorer=scorer, grid=GRIDS[row["aligner"]], seed=0
        )
        assert len(table) == len(next(iter(GRIDS[row["aligner"]].values())))
        assert row["chosen"] == {f"{row['aligner']}.{k}": v for k, v in best.items()}
        fitted = aligner.set_params(**best).fit_domains(src.X, tgt.X)
        Zs, Zt = fitted.transform_source(src.X), fitted.transform_target(tgt.X)
        expected = KNeighborsClassifier(1).fit(Zs, src.y).score(Zt, tgt.y)
        assert row["accuracy"] == pytest.approx(expected, abs=1e-6)
    assert result.provenance["selection"]["scorer"] == scorer
    assert result.provenance["selection"]["grids"]["coral"] == DEFAULT_GRIDS["coral"]


def test_select_keeps_aligners_without_a_grid_and_refuses_unknown_scorers(two_domain_folder):  # noqa: F811
    with pytest.raises(InvalidParameterError, match="unknown selection scorer 'oracle'"):
        adapt(two_domain_folder, extractor="pixels", select="oracle")
    result = adapt(
        two_domain_folder,
        extractor="pixels",
        aligners={"mine": TCA(n_components=5), "lda": None},
        classifiers={"1nn": KNeighborsClassifier(1)},
        pairs=[("sharp", "soft")],
        select="snd",
        view=None,
    )
    mine = [r for r in result.rows if r["aligner"] == "mine"]
    assert set(mine[0]["chosen"]) == {"mine.n_components", "mine.mu"}  # TCA's grid by class
    assert mine[0]["chosen"]["mine.n_components"] in DEFAULT_GRIDS["tca"]["n_components"]


def test_cli_adapt_select(two_domain_folder, tmp_path):  # noqa: F811
    out = tmp_path / "report"
    proc = _cli(
        "-d",
        str(two_domain_folder),
        "-e",
        "pixels",
        "-a",
        "none,coral",
        "--classifier",
        "knn",
        "--pairs",
        "sharp:soft",
        "--select",
        "entropy",
        "-o",
        str(out),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    coral = [r for r in results["results"] if r["aligner"] == "coral"]
    features = extract(create_extractor("pixels"), load_dataset(two_domain_folder))
    src, tgt = features.select(domain="sharp"), features.select(domain="soft")
    best, _ = select_params(CORAL(), src.X, src.y, tgt.X, scorer="entropy", name="coral")
    assert coral and coral[0]["chosen"] == {"coral.reg": best["reg"]}
    assert "coral.reg" in (out / "results.csv").read_text()
    assert np.isfinite(coral[0]["accuracy"])


def test_cli_adapt_select_unknown_scorer(two_domain_folder, tmp_path):  # noqa: F811
    proc = _cli("-d", str(two_domain_folder), "-e", "pixels", "--select", "nope", cwd=tmp_path)
    assert proc.returncode != 0
    assert "unknown selection scorer 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr
