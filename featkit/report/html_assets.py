"""The style sheet and the script of ``report.html``, inline in the page (no CDN, no
framework): the table sort, the method and extractor pickers, filling the thumbnails from
the page's one map of them, and the tips of the 2-D views."""

__all__ = ["CSS", "SCRIPT"]

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;
color:#222}
h1{font-size:1.5em}h2{margin-top:2em;border-bottom:1px solid #ccc}h3{margin-top:1.2em}
nav a{white-space:nowrap}.hint{color:#555}.note{color:#8a4b00}
table{border-collapse:collapse;margin:.5em 0}th,td{padding:2px 6px;border:1px solid #ddd}
th{background:#f3f3f3}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
th.text{text-align:left}table.sortable th{cursor:pointer}
th[aria-sort=ascending]::after{content:" ▲"}th[aria-sort=descending]::after{content:" ▼"}
table.confusion td{text-align:center;min-width:1.8em}table.confusion caption{color:#555}
.side{display:flex;flex-wrap:wrap;gap:2em;align-items:flex-start}
.gallery{display:flex;flex-wrap:wrap;gap:6px;margin:.4em 0}
.gallery.row{flex-wrap:nowrap;overflow-x:auto}
figure{margin:0;width:96px;text-align:center;font-size:11px}
figure img{width:80px;height:80px;object-fit:contain;image-rendering:pixelated;
border:3px solid #ccc;background:#fff}
figure.wrong img{border-color:#d62728}figure.right img{border-color:#2ca02c}
figure.query img{border-color:#1f77b4}
figure figcaption{overflow-wrap:anywhere}
.noimg{width:80px;height:80px;border:3px dashed #d62728;font-size:10px;overflow:hidden;
overflow-wrap:anywhere;display:flex;align-items:center;justify-content:center}
.views{display:flex;flex-wrap:wrap;gap:1em}figure.view{width:auto}
svg{border:1px solid #ddd;background:#fff}.swatch{display:inline-block;width:.8em;
height:.8em;margin:0 .2em 0 .6em}img.chart{max-width:min(100%,720px)}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:12px}
svg.points image{image-rendering:pixelated}
svg.points circle{stroke:transparent;stroke-width:4}svg.points .on{stroke:#000;stroke-width:2}
.tip{position:fixed;z-index:10;pointer-events:none;background:#fff;border:1px solid #888;
box-shadow:0 2px 6px rgba(0,0,0,.3);padding:4px;font-size:12px;max-width:240px;
overflow-wrap:anywhere;text-align:center}
.tip img{display:block;margin:0 auto 2px;width:96px;height:96px;object-fit:contain;
image-rendering:pixelated}
"""

SCRIPT = """
// Each thumbnail is in the page once, in the "thumbs" map: fill the images that name it.
var thumbs = JSON.parse((document.getElementById('thumbs') || {}).textContent || '{}');
document.querySelectorAll('[data-thumb]').forEach(function (el) {
  var uri = thumbs[el.getAttribute('data-thumb')];
  if (!uri) return;
  if (el.tagName.toLowerCase() === 'img') el.src = uri;
  else el.setAttribute('href', uri);
});
// The 2-D views: a point's image and name in a tip, on hover or with the arrow keys.
(function () {
  var tip = document.createElement('div');
  tip.className = 'tip';
  tip.id = 'tip';
  tip.hidden = true;
  document.body.appendChild(tip);
  var current = null;
  function hide() {
    tip.hidden = true;
    if (current) current.classList.remove('on');
    current = null;
  }
  function show(point, x, y) {
    if (current) current.classList.remove('on');
    current = point;
    point.classList.add('on');
    var name = point.getAttribute('data-n');
    var uri = thumbs[point.getAttribute('data-tip')];
    tip.textContent = '';
    if (uri) {
      var img = document.createElement('img');
      img.src = uri;
      img.alt = name;
      tip.appendChild(img);
    }
    var text = document.createElement('div');
    text.textContent = uri ? name : name + ' (no thumbnail embedded)';
    tip.appendChild(text);
    tip.hidden = false;
    var left = Math.min(x + 14, window.innerWidth - tip.offsetWidth - 4);
    var top = y + 14 + tip.offsetHeight > window.innerHeight ? y - tip.offsetHeight - 14
                                                             : y + 14;
    tip.style.left = Math.max(left, 0) + 'px';
    tip.style.top = Math.max(top, 0) + 'px';
  }
  document.querySelectorAll('svg.points').forEach(function (svg) {
    var points = Array.prototype.slice.call(svg.querySelectorAll('circle, image'));
    points.forEach(function (p) {  // the <title> names a point without the script
      var title = p.querySelector('title');
      if (title) {
        p.setAttribute('data-n', title.textContent);
        p.removeChild(title);
      }
    });
    svg.addEventListener('mouseover', function (e) {
      if (e.target.hasAttribute && e.target.hasAttribute('data-n')) {
        show(e.target, e.clientX, e.clientY);
      }
    });
    svg.addEventListener('mouseout', function (e) {
      if (e.target === current) hide();
    });
    svg.addEventListener('blur', hide);
    svg.addEventListener('keydown', function (e) {
      var step = {ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1}[e.key];
      if (e.key === 'Escape') hide();
      if (!step || !points.length) return;
      e.preventDefault();
      var at = points.indexOf(current);
      var next = points[at < 0 ? (step > 0 ? 0 : points.length - 1)
                               : (at + step + points.length) % points.length];
      var box = next.getBoundingClientRect();
      show(next, box.left + box.width / 2, box.top + box.height / 2);
    });
  });
})();
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('thead th').forEach(function (th, column) {
    th.addEventListener('click', function () {
      var up = th.getAttribute('aria-sort') !== 'ascending';
      table.querySelectorAll('thead th').forEach(function (h) {
        h.removeAttribute('aria-sort');
      });
      th.setAttribute('aria-sort', up ? 'ascending' : 'descending');
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function value(row) {
        var cell = row.cells[column];
        return cell.hasAttribute('data-v') ? parseFloat(cell.getAttribute('data-v'))
                                           : cell.textContent;
      }
      rows.sort(function (a, b) {
        var x = value(a), y = value(b);
        var d = typeof x === 'number' ? x - y : String(x).localeCompare(String(y));
        return up ? d : -d;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
// A <select data-switch="kind"> shows the section.kind whose id it names, hides the rest.
document.querySelectorAll('select[data-switch]').forEach(function (pick) {
  var kind = pick.getAttribute('data-switch');
  var show = function () {
    document.querySelectorAll('section.switched.' + kind).forEach(function (s) {
      s.hidden = s.id !== pick.value;
    });
  };
  pick.addEventListener('change', show);
  show();
});
"""
