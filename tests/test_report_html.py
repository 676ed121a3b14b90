"""report.html: one self-contained page with the ranking, per-method scores and confusion,
the error, disagreement and retrieval galleries, the 2-D views and the provenance; and the
per-image predictions it is drawn from, kept in every score row (and in the score cache)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from featkit.data import Dataset
from featkit.evaluate import adapt, compare
from featkit.evaluate.metrics import classification_scores
from featkit.evaluate.results import EvaluationResult
from featkit.evaluate.rows import ScoreRow
from featkit.exceptions import InvalidParameterError
from featkit.report import html
from featkit.report.html import GALLERY_LIMIT, HOVER_LIMIT, render_html
from featkit.report.thumbnails import make_thumbnail

CLASSES = ["cat", "dog", "fox"]


class Tags(HTMLParser):
    """The start tags of a page with their attributes, and whether every tag closed."""

    VOID = frozenset({"meta", "img", "br", "circle", "rect", "image", "input"})

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.open: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag not in self.VOID:
            assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
            self.open.pop()


def _row(extractor: str, truth: list[int], pred: list[int], ids: list[str]) -> ScoreRow:
    scores = classification_scores(np.array(truth), np.array(pred), CLASSES)
    return ScoreRow(
        extractor=extractor,
        aligner="none",
        classifier="k",
        protocol="holdout",
        split="holdout",
        n_train=300,
        n_test=len(truth),
        dim=8,
        fit_s=0.1,
        predict_s=0.01,
        **scores,
        test_ids=ids,
        y_true=truth,
        y_pred=pred,
    )


@pytest.fixture
def made_up() -> tuple[EvaluationResult, dict[str, object]]:
    """Two extractors on 120 test images: ``a`` is wrong on the first 60 (dog taken for
    cat, mostly), ``b`` on images 50..69; image 0 cannot be read."""
    rng = np.random.default_rng(0)
    ids = [f"img{i:03d}" for i in range(120)]
    truth = [i % 3 for i in range(120)]
    pred_a = [(t + 1) % 3 if i < 60 else t for i, t in enumerate(truth)]
    pred_a = [
        0 if t == 1 and i < 60 else p for i, (t, p) in enumerate(zip(truth, pred_a, strict=True))
    ]
    pred_b = [(t + 2) % 3 if 50 <= i < 70 else t for i, t in enumerate(truth)]
    images: dict[str, object] = {i: rng.integers(0, 255, (12, 12, 3), np.uint8) for i in ids}
    images["img000"] = "/no/such/folder/img000.png"
    provenance = {
        "job": "compare",
        "featkit": "test",
        "seed": 0,
        "dataset": {"name": "made-up", "class_names": CLASSES, "n_images": 420},
        "protocol": {"name": "holdout", "description": "a test split", "n_splits": 1},
        "classifiers": {"k": "k-NN"},
        "versions": {"numpy": np.__version__},
    }
    rows = [_row("a", truth, pred_a, ids), _row("b", truth, pred_b, ids)]
    result = EvaluationResult(rows=rows, provenance=provenance, images=images)
    return result, {"truth": truth, "a": pred_a, "b": pred_b, "ids": ids}


def _section(page: str, start: str, end: str = "</section>") -> str:
    at = page.index(start)
    return page[at : page.index(end, at)]


def _thumbs(page: str) -> dict[str, str]:
    """The page's thumbnails, ``{key: data URI}``: each one is embedded there once."""
    (text,) = re.findall(r"<script type='application/json' id='thumbs'>(.*?)</script>", page)
    return json.loads(text)


def test_the_page_is_well_formed_and_self_contained(made_up):
    result, _ = made_up
    page = render_html(result)
    tags = Tags(page)
    assert not tags.open  # every element closed
    links = [a.get("src") or a.get("href") for _, a in tags.tags if "src" in a or "href" in a]
    # Nothing to fetch: links point inside the page, images are data URIs in the thumbs
    # map, which the figures name by key.
    assert links and all(u.startswith(("data:image/", "#")) for u in links), links[:3]
    assert not re.search(r"<(link|iframe|object)\b", page)
    assert [t for t, a in tags.tags if t == "script" and "src" in a] == []
    thumbs = _thumbs(page)
    assert thumbs and all(uri.startswith("data:image/") for uri in thumbs.values())
    keys = [a["data-thumb"] for _, a in tags.tags if "data-thumb" in a]
    assert keys and set(keys) == set(thumbs)  # every key is filled, every thumbnail used
    assert page.index("id='ranking'") < page.index("id='provenance'")
    assert page.rstrip().endswith("</html>")
    assert page.index("id='provenance'") > page.index("id='retrieval'")  # last, at the bottom


def test_the_error_gallery_is_a_seeded_sample_and_names_unreadable_images(made_up):
    result, _ = made_up
    page = render_html(result)
    errors_a = _section(page, "<section class='method switched' id='m-a-none-k'>")
    assert f"Misclassified: 60 of 120 test images ({GALLERY_LIMIT} shown" in errors_a
    assert errors_a.count("<figure class='wrong'") == GALLERY_LIMIT
    errors_b = _section(page, "<section class='method switched' id='m-b-none-k'>")
    assert errors_b.count("<figure class='wrong'") == 20  # all of them: fewer than the limit
    # Images 1..59 are a's errors; the sample is seeded: the same page twice, another
    # seed another sample.
    assert render_html(result) == page
    assert render_html(result, seed=1) != page
    # The unreadable image, when sampled, is named with the reason, never a broken <img>.
    assert "img000" in page and "not shown:" in page
    tags = Tags(page).tags
    images = [a for t, a in tags if t == "img"]
    thumbs = _thumbs(page)
    assert images and all(thumbs[a["data-thumb"]].startswith("data:image/") for a in images)
    assert not any(a["alt"] == "img000" for a in images)
    # Captions: true, then predicted label.
    assert "dog → cat" in errors_a


def test_each_thumbnail_is_embedded_once_however_often_it_is_shown(made_up):
    result, _ = made_up
    page = render_html(result)
    shown = [a["alt"] for t, a in Tags(page).tags if t == "img"]
    # b's right, a's wrong (images 1..49) are in a's error gallery and the disagreements.
    twice = sorted({i for i in shown if shown.count(i) >= 2})
    assert len(twice) > 10 and "img001" in twice
    uri = make_thumbnail(result.images["img001"]).uri
    assert page.count(uri) == 1
    keys = {a["data-thumb"] for t, a in Tags(page).tags if t == "img" and a["alt"] == "img001"}
    assert len(keys) == 1 and _thumbs(page)[keys.pop()] == uri
    thumbs = _thumbs(page)
    assert len(thumbs) == len(set(shown)) == len(set(thumbs.values()))
    assert all(page.count(u) == 1 for u in thumbs.values())


def test_confusion_matrix_and_the_most_confused_pairs_for_every_method(made_up):
    result, _ = made_up
    page = render_html(result)
    for method in ("m-a-none-k", "m-b-none-k"):
        block = _section(page, f"<section class='method switched' id='{method}'>")
        assert "<table class='confusion'>" in block and "per-class" in block
    block_a = _section(page, "<section class='method switched' id='m-a-none-k'>")
    # a: 20 cats taken for dogs, 20 dogs for cats, 20 foxes for cats (of 40 each).
    listed = re.findall(r"<li>(\w+) taken for (\w+): (\d+) of (\d+)</li>", block_a)
    assert sorted(listed) == [
        ("cat", "dog", "20", "40"),
        ("dog", "cat", "20", "40"),
        ("fox", "cat", "20", "40"),
    ]
    # Per-class precision: cat is predicted for 20 dogs and 20 foxes beside its 20 cats.
    assert re.search(r"<td>cat</td><td class='num' data-v='0.333333'>0.333</td>", block_a)


def test_disagreements_both_ways_between_the_two_best_extractors(made_up):
    result, truth = made_up
    page = render_html(result)
    section = _section(page, "<h2 id='disagreements'>", "<h2 id='retrieval'>")
    a_only = sum(
        p == t != q for t, p, q in zip(truth["truth"], truth["a"], truth["b"], strict=True)
    )
    b_only = sum(
        q == t != p for t, p, q in zip(truth["truth"], truth["a"], truth["b"], strict=True)
    )
    assert (a_only, b_only) == (10, 50)
    best, other = result.summary()[0].method, result.summary()[1].method
    assert (best, other) == ("b + k", "a + k")
    assert f"Right for {best}, wrong for {other}: {b_only}</h3>" in section  # all shown
    assert f"Right for {other}, wrong for {best}: {a_only}</h3>" in section
    assert section.count("<figure") == b_only + a_only


def test_the_disagreements_between_a_chosen_pair(made_up):
    result, _ = made_up
    page = render_html(result, methods=["a+k", "b + k"])  # spaces around + do not matter
    section = _section(page, "<h2 id='disagreements'>", "<h2 id='retrieval'>")
    assert "<p>a + k against b + k, on the 120 test images both scored.</p>" in section
    assert section.index("Right for a + k, wrong for b + k") < section.index("Right for b + k")
    with pytest.raises(ValueError, match=r"no method 'nothing \+ k' .* 'b \+ k', 'a \+ k'$"):
        render_html(result, methods=["a + k", "nothing + k"])
    with pytest.raises(ValueError, match="two different methods"):
        render_html(result, methods=["a + k"])
    with pytest.raises(ValueError, match="two different methods"):
        render_html(result, methods=["a + k", "a+k"])


def test_rows_without_predictions_say_so(made_up):
    result, _ = made_up
    old = [
        {k: v for k, v in dict(r).items() if k not in ("test_ids", "y_true", "y_pred")}
        for r in result.rows
    ]  # rows of a results.json saved before featkit kept predictions
    page = render_html(EvaluationResult(rows=old, provenance=result.provenance))
    assert page.count("No per-image predictions") == 3  # two methods, the disagreements
    assert "<table class='confusion'>" in page  # the matrices do not need them


def test_without_the_images_the_galleries_name_them(made_up):
    result, _ = made_up
    page = render_html(EvaluationResult(rows=result.rows, provenance=result.provenance))
    assert "<img" not in page and "(no image at hand)" in page


def test_thumbnails_keep_small_images_and_shrink_large_ones(digit_images):
    images, _ = digit_images
    small = make_thumbnail(images[0])
    assert small.uri.startswith("data:image/png;base64,") and (small.width, small.height) == (8, 8)
    photo = np.random.default_rng(0).integers(0, 255, (300, 200, 3), np.uint8)
    large = make_thumbnail(photo, size=80)
    assert large.uri.startswith("data:image/jpeg;base64,") and large.height == 80
    assert large.width == 53


@pytest.fixture
def digits_result(digit_images):
    images, labels = digit_images
    data = Dataset.from_items(images[:300], labels[:300], name="digits-300")
    return compare(
        data,
        extractors=["pixels", "hog"],
        classifiers={"1nn": KNeighborsClassifier(1), "5nn": KNeighborsClassifier(5)},
        log=lambda line: None,
    )


def test_compare_rows_keep_the_predictions_their_scores_come_from(digits_result, tmp_path):
    for row in digits_result.rows:
        assert len(row["test_ids"]) == len(row["y_true"]) == len(row["y_pred"]) == row["n_test"]
        again = classification_scores(np.array(row["y_true"]), np.array(row["y_pred"]), range(10))
        assert again["confusion_matrix"] == row["confusion_matrix"]
        assert set(row["test_ids"]) <= set(digits_result.images)
    # Each extractor's retrieval examples: 2 queries per class, the same queries for both.
    queries = {
        name: [q["id"] for q in found["queries"]] for name, found in digits_result.retrieval.items()
    }
    assert len(queries["pixels"]) == 20 and queries["pixels"] == queries["hog"]
    for found in digits_result.retrieval.values():
        sims = [[n["similarity"] for n in q["neighbours"]] for q in found["queries"]]
        assert all(len(s) == 5 and s == sorted(s, reverse=True) for s in sims)
    out = digits_result.save(tmp_path / "report")
    doc = json.loads((out / "results.json").read_text())
    assert doc["results"][0]["y_pred"] == digits_result.rows[0]["y_pred"]
    assert doc["retrieval"]["hog"] == digits_result.retrieval["hog"]
    # A list of numbers or ids on one line, not one line per image.
    lines = (out / "results.json").read_text().splitlines()
    assert not [line for line in lines if re.fullmatch(r'\s*("[^"]*"|[-\d.]+),?', line)]
    assert any(line.strip().startswith('"y_pred": [') for line in lines)


def test_save_writes_report_html_beside_report_md(digits_result, tmp_path):
    out = digits_result.save(tmp_path / "report")
    page = (out / "report.html").read_text()
    assert (out / "report.md").is_file()
    assert "<svg" in page and "<image data-thumb='t" in page  # the 2-D views
    assert page.count("<select id=") == 2  # pick a method, pick an extractor's retrieval
    assert "Disagreements" in page and "hog + 1nn" in page
    assert (out / "report.html").stat().st_size < 400_000


def test_every_view_point_is_named_and_a_bounded_sample_has_a_hover_thumbnail(
    digits_result, monkeypatch
):
    page = render_html(digits_result)
    views = _section(page, "<h2 id='views'>", "<h2 id='classifiers'>")
    points = re.findall(r"<circle ([^>]*)>(?:<title>([^<]*)</title>)?", views)
    assert len(points) == 2 * 300  # two extractors, every image (fewer than VIEW_POINTS)
    names = [title for _, title in points]
    assert all(names) and names[0].endswith(")")  # "<id> (<class>)", also without script
    thumbs = _thumbs(page)
    tips = [re.search(r"data-tip='(t[0-9a-z]+)'", a) for a, _ in points]
    assert all(t is None or t[1] in thumbs for t in tips)
    monkeypatch.setattr(html, "HOVER_LIMIT", 0)
    without = _thumbs(render_html(digits_result))  # the galleries' and views' thumbnails
    assert 0 < len(thumbs) - len(without) <= HOVER_LIMIT  # the extra ones, bounded
    assert set(without.values()) < set(thumbs.values())
    monkeypatch.setattr(html, "HOVER_LIMIT", 10_000)
    every = render_html(digits_result)
    views = _section(every, "<h2 id='views'>", "<h2 id='classifiers'>")
    assert views.count("<circle") == views.count("data-tip='t") - views.count("<image")


def test_save_shows_the_disagreements_it_is_asked_for(digits_result, tmp_path):
    out = digits_result.save(tmp_path / "report", plots=False, disagree=["pixels+5nn", "hog + 1nn"])
    page = (out / "report.html").read_text()
    section = _section(page, "<h2 id='disagreements'>", "<h2 id='retrieval'>")
    assert "<p>pixels + 5nn against hog + 1nn, on the 75 test images both scored.</p>" in section
    with pytest.raises(InvalidParameterError, match="no method 'cnn \\+ 1nn' to compare; the"):
        digits_result.save(tmp_path / "other", disagree=["pixels + 5nn", "cnn + 1nn"])
    assert not (tmp_path / "other").exists()  # refused before anything is written


def test_a_cached_score_without_predictions_is_refitted_once(tmp_path):
    kwargs = {"extractors": ["pixels"], "classifiers": ["knn"], "view": None}
    first = compare("digits", cache_dir=tmp_path, **kwargs)
    scores = list(tmp_path.rglob("scores/*.json"))
    assert len(scores) == 1 and "y_pred" in json.loads(scores[0].read_text())
    # A cache written before rows kept their predictions.
    entry = json.loads(scores[0].read_text())
    del entry["y_pred"]
    scores[0].write_text(json.dumps(entry))
    lines: list[str] = []
    again = compare("digits", cache_dir=tmp_path, log=lines.append, **kwargs)
    assert any("fit " in line for line in lines if "pixels + knn" in line)  # not "cached"
    assert again.rows[0]["y_pred"] == first.rows[0]["y_pred"]
    lines.clear()
    compare("digits", cache_dir=tmp_path, log=lines.append, **kwargs)
    assert any("cached" in line for line in lines if "pixels + knn" in line)


def test_the_adapt_page_has_the_pair_heat_map_and_the_alignment_views(digit_images):
    images, labels = digit_images
    items = np.concatenate([images[:150], 255 - images[150:300]])
    data = Dataset.from_items(
        items, labels[:300], domains=["plain"] * 150 + ["inverted"] * 150, name="two"
    )
    result = adapt(
        data,
        extractor="pixels",
        aligners=("none", "coral"),
        classifiers={"1nn": KNeighborsClassifier(1)},
        log=lambda line: None,
    )
    page = render_html(result)
    heat = _section(page, "<table class='heat'>", "</table>")
    assert heat.count("<tr>") == 3 and "plain→inverted" in heat  # header + 2 methods
    assert heat.count("background:hsl(") == 2 * 3  # 2 shifts + the average, per method
    assert "before alignment" in page and page.count("<svg") == 2
    # Target images as queries, their nearest source images.
    query = result.retrieval["pixels"]["queries"][0]
    assert query["id"].startswith("two/") or query["id"] in result.images
