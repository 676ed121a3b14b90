"""The terminal summary of a built index (featkit.report.text), on known statistics."""

from __future__ import annotations

from types import SimpleNamespace

from featkit.report.text import index_build_lines, index_build_summary


def _index(**stats):
    return SimpleNamespace(factory="IVF4,Flat", metric="l2", ntotal=1000, device="cpu", stats=stats)


RECALL = {
    "k": 10,
    "recall_at_k": 0.91236,
    "queries": 1000,
    "held_out": False,
    "queries_per_second": 12345.6,
    "exact_queries_per_second": 2345.4,
}


def test_lines_of_an_approximate_index():
    index = _index(
        build_seconds=2.345,
        index_bytes=3 * 2**20 + 2**19,  # 3.5 MB
        peak_rss_bytes=1536 * 2**20,
        recall=RECALL,
    )
    assert index_build_lines(index, "out.faiss") == [
        "1000 rows indexed with 'IVF4,Flat' (l2); saved to out.faiss",
        "built in 2.3 s; index 3.5 MB, peak memory of this process 1,536 MB",
        "recall@10 against exact search: 0.9124 (1000 indexed rows as queries); "
        "12,346 queries/s, exact 2,345 queries/s",
    ]
    held_out = _index(
        build_seconds=1.0, index_bytes=0, peak_rss_bytes=0, recall={**RECALL, "held_out": True}
    )
    assert index_build_lines(held_out, "i")[1:] == [
        "built in 1.0 s; index 0.0 MB",  # no peak memory where it is unknown
        "recall@10 against exact search: 0.9124 (1000 held-out queries); "
        "12,346 queries/s, exact 2,345 queries/s",
    ]


def test_lines_and_summary_of_an_exact_index():
    index = _index(build_seconds=0.5, add_seconds=0.25, index_bytes=2**20, peak_rss_bytes=None)
    assert index_build_lines(index, "flat.faiss") == [
        "1000 rows indexed with 'IVF4,Flat' (l2); saved to flat.faiss",
        "built in 0.5 s; index 1.0 MB",
    ]
    assert index_build_summary(index, "flat.faiss") == {
        "out": "flat.faiss",
        "factory": "IVF4,Flat",
        "metric": "l2",
        "n": 1000,
        "build_seconds": 0.5,
        "train_seconds": None,
        "add_seconds": 0.25,
        "index_bytes": 2**20,
        "peak_rss_bytes": None,
        "device": "cpu",
        "recall": None,
    }


def test_chosen_hyper_parameters_are_listed_per_shift_and_once_per_method_of_folds():
    from featkit.report.tables import chosen_lines

    fold = {"extractor": "hog", "aligner": "none", "classifier": "svm", "chosen": {"C": 0.1}}
    pair = {"extractor": "cnn", "aligner": "coral", "classifier": "svm"}
    rows = [
        {**fold, "fold": 0},
        {**fold, "fold": 1, "chosen": {"C": 1.0}},  # later folds: the first one stands
        {**pair, "source": "photo", "target": "sketch", "chosen": {"coral.reg": 0.01, "C": 1}},
        {**pair, "source": "sketch", "target": "photo", "chosen": {"coral.reg": 1.0}},
        {**fold, "extractor": "lbp", "chosen": {}},
    ]
    assert chosen_lines(rows) == [
        ("hog + svm", "C=0.1"),
        ("cnn + coral + svm, photo → sketch", "coral.reg=0.01, C=1"),
        ("cnn + coral + svm, sketch → photo", "coral.reg=1"),
    ]
