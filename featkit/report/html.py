"""``report.html``: the report as one self-contained page, readable offline.

The ranked table (sortable), per method the per-class scores, the confusion matrix with the
most confused classes and the misclassified test images, the disagreements between two
methods, the retrieval examples, each extractor's features in 2-D with thumbnails, the
domain-pair matrix as a heat map, and the provenance. Charts and thumbnails are embedded as
data URIs, each thumbnail once (in a JSON map the figures and views name by key); a little
inline JavaScript fills the images from it, sorts the table, switches the method shown
and shows a view's point in a tip. No CDN, no framework: the folder can be zipped and
mailed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from featkit.exceptions import InvalidParameterError
from featkit.report.html_assets import CSS, SCRIPT
from featkit.report.markdown import runtime_lines
from featkit.report.tables import chosen_lines, row_method
from featkit.report.thumbnails import Thumbnails, sample

if TYPE_CHECKING:
    from featkit.evaluate.results import EvaluationResult

__all__ = ["GALLERY_LIMIT", "HOVER_LIMIT", "check_pair", "render_html", "write_html"]

#: Thumbnails per gallery section at most (seeded sample): keeps the page small.
GALLERY_LIMIT = 50
#: Most confused class pairs listed under each confusion matrix.
TOP_CONFUSIONS = 5
#: Points and thumbnails drawn in each 2-D view.
VIEW_POINTS = 600
VIEW_THUMBS = 40
#: Thumbnails embedded for the views' hover tips at most, over the whole page (a seeded
#: sample of the drawn points whose image is not on the page already): a point without
#: one shows its name only.
HOVER_LIMIT = 150

Key = tuple[str, str, str]  # extractor, aligner, classifier

#: matplotlib's tab10 then tab20's light halves: the report charts' class colours.
PALETTE = (
    "#1f77b4 #ff7f0e #2ca02c #d62728 #9467bd #8c564b #e377c2 #7f7f7f #bcbd22 #17becf "
    "#aec7e8 #ffbb78 #98df8a #ff9896 #c5b0d5 #c49c94 #f7b6d2 #c7c7c7 #dbdb8d #9edae5"
).split()


def write_html(
    result: EvaluationResult,
    out: Path,
    charts: Mapping[str, str] | None = None,
    *,
    methods: Sequence[str] | None = None,
    seed: int | None = None,
) -> Path:
    """Write ``report.html`` into ``out`` (the PNG ``charts`` there are embedded) and
    return its path. See :func:`render_html` for ``methods`` and ``seed``."""
    path = out / "report.html"
    path.write_text(render_html(result, charts, out=out, methods=methods, seed=seed))
    return path


def render_html(
    result: EvaluationResult,
    charts: Mapping[str, str] | None = None,
    *,
    out: Path | None = None,
    methods: Sequence[str] | None = None,
    seed: int | None = None,
) -> str:
    """The page as text. ``methods``: the two methods (``"hog + svm"``) whose disagreements
    are shown (default: the best method and the best of another extractor, or aligner);
    ``seed``: of the galleries' samples (default: the result's seed)."""
    page = _Page(result, seed)
    body = [
        page.header(),
        page.ranking(),
        page.pair_heatmap(),
        page.charts(charts or {}, out),
        page.methods(),
        page.disagreements(methods),
        page.retrieval(),
        page.views(),
        page.notes(),
        page.provenance(),
    ]
    title = escape(page.title)
    colours = "".join(f"svg.points .c{i}{{fill:{c}}}" for i, c in enumerate(PALETTE))
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width'><title>{title}</title>"
        f"<style>{CSS}{colours}</style></head><body>\n"
        + "\n".join(part for part in body if part)
        + f"\n{page.thumbnail_data()}\n<script>{SCRIPT}</script>\n</body></html>\n"
    )


class _Page:
    """The sections of one result's page, each a method returning HTML (or "")."""

    def __init__(self, result: EvaluationResult, seed: int | None) -> None:
        self.result = result
        self.prov = result.provenance
        self.classes = [str(c) for c in self.prov["dataset"]["class_names"]]
        self.summary = result.summary()
        self.seed = int(self.prov.get("seed", 0) if seed is None else seed)
        self.thumbs = Thumbnails(result.images)
        # Each thumbnail is embedded once, in the page's "thumbs" map, under a short key
        # that the figures and the views refer to.
        self._keys: dict[str, str] = {}
        self._uris: dict[str, str] = {}
        self.by_method: dict[Key, list[Mapping[str, Any]]] = {}
        for row in result.rows:
            self.by_method.setdefault(_key(row), []).append(row)
        self.aligned = any(s["aligner"] != "none" for s in self.summary)
        data = self.prov["dataset"]
        self.title = f"featkit {self.prov.get('job', 'evaluate')}: {data.get('name', '')}"

    # -- sections ---------------------------------------------------------------------

    def header(self) -> str:
        data, protocol = self.prov["dataset"], self.prov["protocol"]
        sections = [
            ("ranking", "ranking"),
            ("methods", "per method: scores, confusion, errors"),
            ("disagreements", "disagreements"),
            ("retrieval", "retrieval"),
            ("views", "features in 2-D"),
            ("provenance", "provenance"),
        ]
        if self.result.pair_matrix() is not None:
            sections.insert(1, ("pairs", "domain shifts"))
        nav = " · ".join(f"<a href='#{i}'>{escape(t)}</a>" for i, t in sections)
        text = (
            f"{data.get('n_images', '?')} images, {len(self.classes)} classes. "
            f"Protocol: {protocol['name']} ({protocol['description']}). "
            f"featkit {self.prov.get('featkit', '?')}, seed {self.prov.get('seed', 0)}."
        )
        return f"<h1>{escape(self.title)}</h1>\n<p>{escape(text)}</p>\n<nav>{nav}</nav>"

    def ranking(self) -> str:
        """The ranked table; a click on a header sorts by that column."""
        if not self.summary:
            return "<h2 id='ranking'>Ranking</h2><p>Nothing was scored.</p>"
        spread = any(s["n_splits"] > 1 for s in self.summary)
        columns: list[tuple[str, Any, bool]] = [  # header, cell value, numeric
            ("rank", None, True),
            ("extractor", lambda s: s["extractor"], False),
            *([("aligner", lambda s: s["aligner"], False)] if self.aligned else []),
            ("classifier", lambda s: s["classifier"], False),
            ("accuracy", lambda s: s["accuracy"], True),
            *([("± std", lambda s: s["accuracy_std"], True)] if spread else []),
            ("balanced acc.", lambda s: s["balanced_accuracy"], True),
            ("macro-F1", lambda s: s["macro_f1"], True),
            ("dim", lambda s: s["dim"], True),
            ("extract s", lambda s: s["extract_s"], True),
            ("fit s", lambda s: s["fit_s"], True),
            ("predict s", lambda s: s["predict_s"], True),
        ]
        head = "".join(
            f"<th class='{'num' if numeric else 'text'}' title='sort'>{escape(h)}</th>"
            for h, _, numeric in columns
        )
        body = []
        for rank, s in enumerate(self.summary, start=1):
            cells = []
            for header, cell, numeric in columns:
                value = rank if cell is None else cell(s)
                if numeric:
                    shown = _number(value, header)
                    cells.append(f"<td class='num' data-v='{float(value):.6g}'>{shown}</td>")
                else:
                    cells.append(f"<td>{escape(str(value))}</td>")
            body.append(f"<tr>{''.join(cells)}</tr>")
        return (
            "<h2 id='ranking'>Ranking</h2>\n<p class='hint'>Means over "
            f"{self.prov['protocol'].get('n_splits', '?')} split(s); click a header to sort."
            f"</p>\n<table class='sortable' id='ranking-table'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>"
        )

    def pair_heatmap(self) -> str:
        """The domain-pair matrix (adapt, the domains protocol), shaded by accuracy."""
        matrix = self.result.pair_matrix()
        if matrix is None:
            return ""
        shifts, table = matrix
        values = [v for _, vs in table for v in vs if np.isfinite(v)]
        lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
        head = "".join(f"<th>{escape(s)}</th>" for s in [*shifts, "average"])
        rows = []
        for method, accs in table:
            cells = "".join(_heat_cell(v, lo, hi, f"{100 * v:.1f}") for v in accs)
            rows.append(f"<tr><th class='text'>{escape(method)}</th>{cells}</tr>")
        return (
            "<h2 id='pairs'>Accuracy (%) per domain shift</h2>\n<p class='hint'>Train on the "
            "source, test on the target; darker is more accurate.</p>\n"
            f"<table class='heat'><thead><tr><th>method</th>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )

    def charts(self, charts: Mapping[str, str], out: Path | None) -> str:
        """The accuracy chart, embedded (the other charts are drawn here in HTML)."""
        name = charts.get("accuracy")
        if not name or out is None or not (out / name).is_file():
            return ""
        uri = "data:image/png;base64," + base64.b64encode((out / name).read_bytes()).decode()
        return (
            "<h2 id='accuracy'>Accuracy</h2>\n"
            f"<img class='chart' src='{uri}' alt='accuracy per extractor and classifier'>"
        )

    def methods(self) -> str:
        """Per method: per-class scores, confusion matrix, most confused pairs, errors."""
        if not self.summary:
            return ""
        options = "".join(
            f"<option value='{_anchor(s)}'>{escape(s.method)} ({s['accuracy']:.3f})</option>"
            for s in self.summary
        )
        blocks = [self._method(s) for s in self.summary]
        return (
            "<h2 id='methods'>Per method: scores, confusion and errors</h2>\n"
            "<p class='hint'>Summed over the splits. Pick a method (best first): "
            f"<select id='method-pick' data-switch='method'>{options}</select></p>\n"
            + "\n".join(blocks)
        )

    def _method(self, summary: Mapping[str, Any]) -> str:
        rows = self.by_method[_key(summary)]
        return (
            f"<section class='method switched' id='{_anchor(summary)}'>"
            f"<h3>{escape(row_method(summary))}</h3>\n"
            f"<div class='side'>{self._per_class(rows)}{self._confusion(rows)}</div>\n"
            f"{self._errors(rows)}</section>"
        )

    def _per_class(self, rows: Sequence[Mapping[str, Any]]) -> str:
        per = [r.get("per_class") or {} for r in rows]
        if not any(per):
            return "<p>No per-class scores.</p>"
        body = []
        for name in self.classes:
            scores = [p[name] for p in per if name in p]
            if not scores:
                continue
            cells = "".join(
                f"<td class='num' data-v='{np.mean([s[m] for s in scores]):.6g}'>"
                f"{np.mean([s[m] for s in scores]):.3f}</td>"
                for m in ("precision", "recall", "f1")
            )
            support = sum(int(s.get("support", 0)) for s in scores)
            body.append(
                f"<tr><td>{escape(name)}</td>{cells}"
                f"<td class='num' data-v='{support}'>{support}</td></tr>"
            )
        head = "".join(
            f"<th class='{c}'>{h}</th>"
            for h, c in [
                ("class", "text"),
                ("precision", "num"),
                ("recall", "num"),
                ("F1", "num"),
                ("support", "num"),
            ]
        )
        return (
            f"<table class='sortable per-class'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>"
        )

    def _confusion(self, rows: Sequence[Mapping[str, Any]]) -> str:
        matrices = [np.asarray(r["confusion_matrix"]) for r in rows if r.get("confusion_matrix")]
        if not matrices:
            return "<p>No confusion matrix.</p>"
        matrix = np.sum(matrices, axis=0)
        n = len(self.classes)
        totals = matrix.sum(axis=1)
        # Cells shaded by their share of the true class: blue on the diagonal, red off it.
        head = "".join(f"<th title='{escape(c)}'>{escape(_short(c))}</th>" for c in self.classes)
        body = []
        for i in range(n):
            cells = []
            for j in range(n):
                share = matrix[i, j] / totals[i] if totals[i] else 0.0
                hue = 210 if i == j else 0
                # Square root: one confusion in fifty still shows, a third is dark.
                light = 100 - 55 * np.sqrt(share) if i != j else 100 - 55 * share
                colour = "#fff" if light < 62 else "#000"
                tip = f"true {self.classes[i]}, predicted {self.classes[j]}: {matrix[i, j]}"
                cells.append(
                    f"<td style='background:hsl({hue},70%,{light:.0f}%);color:{colour}' "
                    f"title='{escape(tip)}'>{matrix[i, j] if matrix[i, j] else ''}</td>"
                )
            body.append(f"<tr><th class='text'>{escape(self.classes[i])}</th>{''.join(cells)}</tr>")
        off = [(matrix[i, j], i, j) for i in range(n) for j in range(n) if i != j and matrix[i, j]]
        off.sort(key=lambda t: (-t[0], t[1], t[2]))
        confused = "".join(
            f"<li>{escape(self.classes[i])} taken for {escape(self.classes[j])}: {count} of "
            f"{totals[i]}</li>"
            for count, i, j in off[:TOP_CONFUSIONS]
        )
        listing = (
            f"<p>Most confused (true → predicted):</p><ol>{confused}</ol>"
            if confused
            else "<p>No confusions.</p>"
        )
        return (
            "<div><table class='confusion'><caption>rows: true class, columns: predicted"
            f"</caption><thead><tr><th></th>{head}</tr></thead><tbody>{''.join(body)}</tbody>"
            f"</table>{listing}</div>"
        )

    def _errors(self, rows: Sequence[Mapping[str, Any]]) -> str:
        """The misclassified test images of a method (a seeded sample)."""
        if not all(r.get("y_pred") is not None for r in rows):
            return (
                "<p class='note'>No per-image predictions were kept for this method "
                "(a result saved before featkit kept them): no error gallery.</p>"
            )
        several = len(rows) > 1
        wrong = [
            (str(i), t, p, r["split"])
            for r in rows
            for i, t, p in zip(r["test_ids"], r["y_true"], r["y_pred"], strict=True)
            if t != p
        ]
        tested = sum(len(r["test_ids"]) for r in rows)
        if not wrong:
            return f"<p>No misclassified test image (of {tested}).</p>"
        shown = sample(wrong, GALLERY_LIMIT, self.seed)
        figures = [
            self._figure(
                i,
                f"{self._name(t)} → {self._name(p)}" + (f" [{s}]" if several else ""),
                "wrong",
            )
            for i, t, p, s in shown
        ]
        return (
            f"<h4>Misclassified: {len(wrong)} of {tested} test images"
            f"{_shown(len(shown), len(wrong))}</h4>\n<p class='hint'>true → predicted</p>"
            f"{self._gallery(figures)}"
        )

    def disagreements(self, methods: Sequence[str] | None) -> str:
        """The test images one method gets right and another wrong, both ways."""
        pair = self._disagreeing_pair(methods)
        head = "<h2 id='disagreements'>Disagreements</h2>\n"
        if pair is None:
            return head + "<p>One method only: nothing to compare.</p>"
        a, b = pair
        rows_a, rows_b = self.by_method[a], self.by_method[b]
        if not all(r.get("y_pred") is not None for r in [*rows_a, *rows_b]):
            return head + "<p class='note'>No per-image predictions were kept.</p>"
        outcome_a, outcome_b = _outcomes(rows_a), _outcomes(rows_b)
        shared = [k for k in outcome_a if k in outcome_b]
        name_a, name_b = (_key_name(k) for k in (a, b))
        parts = [
            head + f"<p>{escape(name_a)} against {escape(name_b)}, on the {len(shared)} test "
            "images both scored.</p>"
        ]
        for right, wrong, (nr, nw) in (
            (outcome_a, outcome_b, (name_a, name_b)),
            (outcome_b, outcome_a, (name_b, name_a)),
        ):
            found = [k for k in shared if right[k][0] == right[k][1] != wrong[k][1]]
            shown = sample(found, GALLERY_LIMIT, self.seed)
            figures = [
                self._figure(
                    k[1],
                    f"{self._name(right[k][0])}, taken for {self._name(wrong[k][1])}",
                    "wrong",
                )
                for k in shown
            ]
            parts.append(
                f"<h3>Right for {escape(nr)}, wrong for {escape(nw)}: "
                f"{len(found)}{_shown(len(shown), len(found))}</h3>"
                + (self._gallery(figures) if figures else "<p>None.</p>")
            )
        return "\n".join(parts)

    def _disagreeing_pair(self, methods: Sequence[str] | None) -> tuple[Key, Key] | None:
        by_name = {s.method: _key(s) for s in self.summary}
        if methods is not None:
            first, second = check_pair(list(by_name), methods)
            return by_name[first], by_name[second]
        if len(self.summary) < 2:
            return None
        # The best method, against the best method of another extractor (adapt: of
        # another aligner), else against the runner-up.
        group = (
            (lambda s: s["aligner"])
            if len({s["extractor"] for s in self.summary}) == 1
            else (lambda s: s["extractor"])
        )
        best = self.summary[0]
        other = next((s for s in self.summary if group(s) != group(best)), self.summary[1])
        return _key(best), _key(other)

    def retrieval(self) -> str:
        """Seeded test queries and their nearest training images, per extractor."""
        head = "<h2 id='retrieval'>Retrieval</h2>\n"
        if not self.result.retrieval:
            return head + "<p>No retrieval examples in this result.</p>"
        options = "".join(
            f"<option value='r-{_safe(name)}'>{escape(name)}</option>"
            for name in self.result.retrieval
        )
        parts = [
            head + "<p class='hint'>Pick an extractor: "
            f"<select id='retrieval-pick' data-switch='retrieval'>{options}</select></p>"
        ]
        for name, found in self.result.retrieval.items():
            queries = found.get("queries", [])
            parts.append(
                f"<section class='retrieval switched' id='r-{_safe(name)}'>"
                f"<h3>{escape(name)}</h3><p class='hint'>{len(queries)} test queries "
                f"({escape(str(found.get('split', '')))}), their {found.get('k', '?')} most "
                f"similar training images ({escape(str(found.get('metric', '')))} "
                f"{'distance' if found.get('metric') == 'l2' else 'similarity'});"
                " a red frame: another class.</p>"
            )
            rows = []
            for q in queries:
                figures = [self._figure(q["id"], f"query: {self._name(q['label'])}", "query")]
                for n in q["neighbours"]:
                    kind = "right" if n["label"] == q["label"] else "wrong"
                    score = n["similarity"] if "similarity" in n else n["distance"]
                    caption = f"{score:.3f} {self._name(n['label'])}"
                    figures.append(self._figure(n["id"], caption, kind))
                rows.append(f"<div class='gallery row'>{''.join(figures)}</div>")
            parts.append("\n".join(rows) + "</section>")
        return "\n".join(parts)

    def views(self) -> str:
        """Each view in 2-D as an SVG: points coloured by class (or domain), a seeded sample
        of them drawn as their thumbnails; hovering (or, with the view focused, the arrow
        keys on) a point shows its image and name in a tip."""
        if not self.result.views:
            return ""
        parts = ["<h2 id='views'>Features in 2-D</h2>"]
        domains = all("domain" in v for v in self.result.views.values())
        if domains:
            shift = next(iter(self.result.views.values())).get("shift", "")
            parts.append(
                f"<p class='hint'>Source and target of {escape(str(shift))} before alignment "
                "(none) and after each aligner: blue source, orange target; aligned domains "
                "overlap.</p>"
            )
        else:
            legend = " ".join(
                f"<span class='swatch' style='background:{PALETTE[i % len(PALETTE)]}'></span>"
                f"{escape(c)}"
                for i, c in enumerate(self.classes)
            )
            parts.append(
                "<p class='hint'>Each extractor's features projected to 2-D, coloured by "
                f"class, some points drawn as their image: {legend}</p>"
            )
        parts.append(
            "<p class='hint'>Hover over a point (or focus a view and use the arrow keys) to "
            "see its name, and for the larger points its image.</p>"
        )
        drawn = {name: self._view_points(view) for name, view in self.result.views.items()}
        self._hover_thumbnails(self.result.views, drawn)
        svgs = [
            self._view_svg(name, view, domains, *drawn[name])
            for name, view in self.result.views.items()
        ]
        parts.append(f"<div class='views'>{''.join(svgs)}</div>")
        return "\n".join(parts)

    def _view_points(self, view: Mapping[str, Any]) -> tuple[list[int], list[int]]:
        """The indices of a view's drawn points, and of those drawn as their thumbnail
        (whose thumbnails are embedded now)."""
        n = len(view["xy"])
        points = sample(range(n), VIEW_POINTS, self.seed)
        ids = view.get("ids")
        if ids is None or not self.thumbs:
            return points, []
        images = [
            i for i in sample(range(n), VIEW_THUMBS, self.seed + 1) if self._thumb(str(ids[i]))
        ]  # the galleries name unreadable images; a view just skips them
        return points, images

    def _hover_thumbnails(
        self, views: Mapping[str, Mapping[str, Any]], drawn: Mapping[str, tuple[list[int], Any]]
    ) -> None:
        """Embed the thumbnails of a seeded sample of the drawn points whose image is not on
        the page yet, :data:`HOVER_LIMIT` at most for all the views together."""
        if not self.thumbs:
            return
        missing: dict[str, None] = {}  # in order of first appearance: a seeded sample
        for name, view in views.items():
            ids = view.get("ids")
            if ids is None:
                continue
            for i in drawn[name][0]:
                if str(ids[i]) not in self._keys:
                    missing.setdefault(str(ids[i]))
        for image_id in sample(list(missing), HOVER_LIMIT, self.seed + 2):
            self._thumb(image_id)

    def _view_svg(
        self,
        name: str,
        view: Mapping[str, Any],
        domains: bool,
        points: Sequence[int],
        images: Sequence[int],
    ) -> str:
        xy = np.asarray(view["xy"], dtype=np.float64)
        if domains:
            colour_of = np.where(np.asarray(view["domain"]) == "source", 0, 1)
        else:
            colour_of = np.asarray(view["y"]) % len(PALETTE)
        size, pad = 360.0, 20.0
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        scale = (size - 2 * pad) / np.maximum(hi - lo, 1e-12)
        pos = pad + (xy - lo) * scale
        pos[:, 1] = size - pos[:, 1]  # SVG's y points down
        ids = view.get("ids")

        def label(i: int) -> str:
            """The point's <title> (what the tip shows): its id, class and domain."""
            about = [self._name(int(view["y"][i]))]
            if domains:
                about.append(str(view["domain"][i]))
            name = f"point {i}" if ids is None else str(ids[i])
            return escape(f"{name} ({', '.join(about)})")

        def tip(i: int) -> str:
            # A point whose image is on the page is drawn larger: the eye finds the points
            # a hover will show (the others name their image only).
            key = None if ids is None else self._keys.get(str(ids[i]))
            return f"r='3.4' data-tip='{key}'" if key else "r='2.2'"

        dots = "".join(
            # Whole pixels and a class per colour: every point has its <title> now, and
            # the bytes of 600 points a view add up.
            f"<circle cx='{pos[i, 0]:.0f}' cy='{pos[i, 1]:.0f}' {tip(i)} "
            f"class='c{colour_of[i]}'><title>{label(i)}</title></circle>"
            for i in points
        )
        pictures = ""
        for i in images:
            thumb = self.thumbs.get(str(ids[i]))
            key = self._keys[str(ids[i])]
            w = 28.0
            h = w * thumb.height / max(thumb.width, 1)
            x, y = pos[i, 0] - w / 2, pos[i, 1] - h / 2
            pictures += (
                f"<image data-thumb='{key}' data-tip='{key}' x='{x:.1f}' y='{y:.1f}' "
                f"width='{w:.0f}' height='{h:.0f}'><title>{label(i)}</title></image>"
                f"<rect x='{x:.1f}' y='{y:.1f}' width='{w:.0f}' height='{h:.0f}' "
                f"fill='none' stroke='{PALETTE[colour_of[i]]}' stroke-width='2'/>"
            )
        title = "before alignment" if domains and name == "none" else name
        return (
            f"<figure class='view'><svg class='points' viewBox='0 0 {size:.0f} {size:.0f}' "
            f"width='{size:.0f}' height='{size:.0f}' role='img' tabindex='0' "
            f"aria-label='{escape(name)} in 2-D'>{dots}{pictures}"
            f"</svg><figcaption>{escape(title)} ({escape(str(view.get('method', '')))})"
            "</figcaption></figure>"
        )

    def notes(self) -> str:
        """Failed images, classifiers, chosen hyper-parameters, skipped extractors."""
        parts = []
        rows = self.result.rows
        failed = {r["extractor"]: r["n_failed"] for r in rows if r.get("n_failed")}
        parts += [
            f"<p class='note'>{count} images could not be used by {escape(name)} and are not "
            "scored.</p>"
            for name, count in failed.items()
        ]
        classifiers = self.prov.get("classifiers", {})
        if classifiers:
            items = "".join(
                f"<li><code>{escape(c)}</code>: {escape(str(d))}</li>"
                for c, d in classifiers.items()
            )
            parts.append(f"<h2 id='classifiers'>Classifiers</h2><ul>{items}</ul>")
        chosen = chosen_lines(self.result.rows)
        if chosen:
            items = "".join(f"<li>{escape(m)}: {escape(values)}</li>" for m, values in chosen)
            parts.append(f"<p>Hyper-parameters chosen without the test rows:</p><ul>{items}</ul>")
        if self.result.skipped:
            items = "".join(
                f"<li><code>{escape(n)}</code>: {escape(w)}</li>"
                for n, w in self.result.skipped.items()
            )
            parts.append(f"<h2 id='skipped'>Skipped</h2><ul>{items}</ul>")
        return "\n".join(parts)

    def provenance(self) -> str:
        """Versions, machine, precision, seeds and parameters: the page's last section."""
        keys = (
            "job",
            "featkit",
            "seed",
            "protocol",
            "dataset",
            "extractors",
            "classifiers",
            "aligners",
            "image_learners",
            "versions",
            "machine",
            "machines",
        )
        record = {k: self.prov[k] for k in keys if k in self.prov}
        if "dataset" in record:  # the class names are in every table above
            record["dataset"] = {k: v for k, v in record["dataset"].items() if k != "class_names"}
        runtimes = "".join(f"<li>{escape(line)}</li>" for line in runtime_lines(self.prov))
        text = json.dumps(record, indent=2, default=str)
        return (
            "<h2 id='provenance'>Provenance</h2>\n"
            + (f"<ul>{runtimes}</ul>" if runtimes else "")
            + f"<pre>{escape(text)}</pre>"
        )

    # -- pieces -----------------------------------------------------------------------

    def _name(self, label: int) -> str:
        label = int(label)
        return self.classes[label] if 0 <= label < len(self.classes) else str(label)

    def _figure(self, image_id: str, caption: str, kind: str) -> str:
        """A thumbnail with its caption, or the image's name and why it is not shown."""
        tip = escape(f"{image_id}: {caption}")
        if not self.thumbs:
            inner = f"<div class='noimg'>{escape(image_id)}<br>(no image at hand)</div>"
        else:
            thumb = self.thumbs.get(image_id)
            key = self._thumb(image_id)
            if key is None:
                inner = (
                    f"<div class='noimg'>{escape(image_id)}<br>not shown: "
                    f"{escape(thumb.reason)}</div>"
                )
            else:
                inner = (
                    f"<img data-thumb='{key}' width='{thumb.width}' height='{thumb.height}' "
                    f"alt='{escape(image_id)}'>"
                )
        return (
            f"<figure class='{kind}' title='{tip}'>{inner}"
            f"<figcaption>{escape(caption)}</figcaption></figure>"
        )

    def _gallery(self, figures: Sequence[str]) -> str:
        return f"<div class='gallery'>{''.join(figures)}</div>"

    def _thumb(self, image_id: str) -> str | None:
        """The page's key of ``image_id``'s thumbnail, embedded on first use; None when the
        image cannot be shown."""
        if image_id not in self._keys:
            thumb = self.thumbs.get(image_id)
            if thumb.uri is None:
                return None
            key = "t" + np.base_repr(len(self._keys), 36).lower()
            self._keys[image_id] = key
            self._uris[key] = thumb.uri
        return self._keys[image_id]

    def thumbnail_data(self) -> str:
        """Every thumbnail the page shows, once: ``{key: data URI}`` as JSON, from which the
        script fills the images' ``src`` (and the views' ``href``)."""
        text = json.dumps(self._uris, separators=(",", ":")).replace("</", "<\\/")
        return f"<script type='application/json' id='thumbs'>{text}</script>"


def check_pair(available: Sequence[str], methods: Sequence[str]) -> tuple[str, str]:
    """The two methods of ``available`` (names as the report prints them, ``"hog + svm"``)
    that ``methods`` names, spaces around ``+`` aside; an InvalidParameterError (a
    ValueError) that lists the available methods when ``methods`` is not two of them."""
    names = [spell_method(m) for m in methods]
    choice = ", ".join(repr(m) for m in available) or "none"
    if len(names) != 2 or names[0] == names[1]:
        raise InvalidParameterError(
            f"disagreements are between two different methods, got {list(methods)}; "
            f"the methods: {choice}"
        )
    unknown = [m for m in names if m not in available]
    if unknown:
        raise InvalidParameterError(
            f"no method {' or '.join(repr(m) for m in unknown)} to compare; the methods: {choice}"
        )
    return names[0], names[1]


def spell_method(name: str) -> str:
    """``"hog+svm"`` -> ``"hog + svm"``: a method's name as the report prints it."""
    return " + ".join(part.strip() for part in str(name).split("+"))


def _key(row: Mapping[str, Any]) -> Key:
    return (str(row["extractor"]), str(row.get("aligner", "none")), str(row["classifier"]))


def _key_name(key: Key) -> str:
    return row_method(dict(zip(("extractor", "aligner", "classifier"), key, strict=True)))


def _anchor(row: Mapping[str, Any]) -> str:
    return "m-" + _safe("-".join(_key(row)))


def _safe(text: str) -> str:
    """``text`` as an HTML id (letters, digits, - and _)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def _outcomes(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], tuple[int, int]]:
    """``{(split, image id): (true, predicted)}`` of a method's rows."""
    return {
        (str(r["split"]), str(i)): (int(t), int(p))
        for r in rows
        for i, t, p in zip(r["test_ids"], r["y_true"], r["y_pred"], strict=True)
    }


def _shown(shown: int, total: int) -> str:
    return f" ({shown} shown, a seeded sample)" if shown < total else ""


def _number(value: Any, header: str) -> str:
    if header in ("rank", "dim"):
        return str(int(value))
    if header.endswith(" s"):
        return f"{value:.2f}"
    return f"{value:.4f}"


def _short(name: str, width: int = 6) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _heat_cell(value: float, lo: float, hi: float, text: str) -> str:
    if not np.isfinite(value):
        return "<td class='num'>–</td>"
    share = (value - lo) / (hi - lo) if hi > lo else 1.0
    light = 95 - 50 * share
    colour = "#fff" if light < 62 else "#000"
    return (
        f"<td class='num' data-v='{value:.6g}' "
        f"style='background:hsl(210,70%,{light:.0f}%);color:{colour}'>{text}</td>"
    )
