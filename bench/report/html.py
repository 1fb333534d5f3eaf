"""The report's ``index.html``: a summary first, then one section per table and figure, provenance, and a
contents bar; self-contained.

The page opens on the summary box (``summary``: data, profile and its purpose, protocol and unit of
analysis, configurations, fold models that did not learn, the headline Table 5 with its floors, and the
provenance line), so the first screen says what the numbers are. The contents bar comes after ``<main>``
in the document (it is drawn fixed on the left), so a reader of the text, a screen reader or a search
index meets the summary first. Every picture is a ``<figure>`` with a ``<figcaption>`` saying what it draws.

Everything the page shows lies inside the report folder (figures as relative ``figures/*.png``,
tables inlined) and the styles are inline: no network, so the folder can be mailed, zipped or
attached to a supplement. A small inline script marks any image that failed to load (a red note
beside it and ``data-broken-images`` on ``<body>``), so a broken copy is visible at once.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d1d1f;line-height:1.45}
nav{position:fixed;top:0;left:0;bottom:0;width:270px;overflow-y:auto;background:#f5f6f8;
 border-right:1px solid #dde;padding:12px 14px;font-size:13px;box-sizing:border-box}
nav h2{font-size:14px;margin:10px 0 4px} nav ol{padding-left:18px;margin:0} nav li{margin:2px 0}
nav a{color:#1a4f8b;text-decoration:none} nav a:hover{text-decoration:underline}
main{margin-left:290px;max-width:1150px;padding:10px 24px 60px}
h1{font-size:24px} h2{border-bottom:1px solid #dde;padding-bottom:3px;margin-top:34px}
section{margin-bottom:26px} .files{font-size:12px;color:#555} .files a{margin-right:8px}
.missing{color:#8a5a00;background:#fff7e6;border-left:3px solid #f0b429;padding:4px 8px}
.broken{color:#b00020;font-weight:bold}
.tablewrap{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:13px;margin:6px 0 12px;font-variant-numeric:tabular-nums}
th{background:#eef1f5;position:sticky;top:0} td,th{border:1px solid #d4d8de;padding:3px 8px;text-align:right}
td:first-child,th:first-child,td:nth-child(2){text-align:left} tr:nth-child(even) td{background:#fafbfc}
caption{caption-side:top;text-align:left;font-size:12px;color:#444;padding:4px 0}
figure{margin:8px 0} figure img{max-width:100%;height:auto;border:1px solid #e3e3e3}
ul.facts{font-size:14px} code{background:#f0f0f0;padding:1px 3px;border-radius:3px}
.summary{border:1px solid #c9d3e0;background:#f7f9fc;border-radius:6px;padding:8px 16px;margin:8px 0 18px}
.summary dl{display:grid;grid-template-columns:max-content 1fr;gap:3px 14px;margin:6px 0;font-size:14px}
.summary dt{font-weight:600} .summary dd{margin:0} .summary .prov{font-size:12px;color:#555}
figcaption{font-size:13px;color:#333;max-width:1000px;margin-top:4px}
@media print{nav{display:none} main{margin-left:0}}
"""

SCRIPT = """
window.addEventListener('load', function () {
  var broken = 0;
  document.querySelectorAll('img').forEach(function (img) {
    if (!img.complete || img.naturalWidth === 0) {
      broken += 1;
      var note = document.createElement('p');
      note.className = 'broken';
      note.textContent = 'This image did not load: ' + img.getAttribute('src');
      img.insertAdjacentElement('afterend', note);
    }
  });
  document.body.setAttribute('data-images', String(document.images.length));
  document.body.setAttribute('data-broken-images', String(broken));
});
"""


def slug(text: str, taken: set[str]) -> str:
    """An id for ``text`` (lowercase, dashes), unique among ``taken`` (which it joins)."""
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "section"
    name, k = base, 2
    while name in taken:
        name, k = f"{base}-{k}", k + 1
    taken.add(name)
    return name


def is_figure(what: Any) -> bool:
    return not isinstance(what, str) and any(Path(p).suffix == ".png" for p in what)


def index_html(
    facts_lines: Sequence[tuple[str, list[str]]],
    summary: dict[str, Any],
    items: Sequence[tuple[str, Any]],
    line: str,
    root: Path,
    captions: dict[str, str] | None = None,
) -> str:
    """The page: ``summary`` (``bench.report.report.summary_facts``) opens it; ``items`` are (name, paths or the
    reason it was not built), paths relative to ``root`` (the report folder); ``captions`` say what each
    figure draws (by item name); ``facts_lines`` (heading, lines) make the provenance part at the end."""
    e = html.escape
    taken: set[str] = {"summary", "top"}
    tables = [(slug(n, taken), n, w) for n, w in items if not is_figure(w)]
    figures = [(slug(n, taken), n, w) for n, w in items if is_figure(w)]
    facts = [(slug(h, taken), h, lines) for h, lines in facts_lines]
    nav = ["<nav aria-label='Contents'><h2>Contents</h2><ol><li><a href='#summary'>Summary</a></li></ol>"]
    for title, entries in (("Tables", tables), ("Figures", figures), ("Provenance", facts)):
        nav += [f"<h2>{title}</h2><ol>", *[f"<li><a href='#{i}'>{e(n)}</a></li>" for i, n, _ in entries], "</ol>"]
    nav.append("</nav>")
    anchors = {h: i for i, h, _ in facts}
    out = [
        "<!doctype html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        "<title>Benchmark report</title>",
        f"<style>{CSS}</style>",
        f"<script>{SCRIPT}</script></head><body>",
        "<main>",
        "<h1 id='top'>Benchmark report</h1>",
        *_summary(summary, anchors),
        f"<p>Convention sensitivity: {e(line)}</p>",
        "<h2 id='tables-part'>Tables</h2>",
    ]
    for ident, name, what in tables:
        out += _section(ident, name, what, root)
    out.append("<h2 id='figures-part'>Figures</h2>")
    for ident, name, what in figures:
        out += _section(ident, name, what, root, (captions or {}).get(name, ""))
    out.append("<h2 id='provenance-part'>Provenance</h2>")
    for ident, head, lines in facts:
        out += [
            f"<section id='{ident}'><h3>{e(head)}</h3><ul class='facts'>",
            *[f"<li>{_code(x)}</li>" for x in lines],
            "</ul></section>",
        ]
    out += ["</main>", *nav, "</body></html>"]
    return "\n".join(out) + "\n"


def _summary(summary: dict[str, Any], anchors: dict[str, str]) -> list[str]:
    """The summary box: one line per fact (``see [Heading]`` becomes a link to that provenance section),
    the headline table and the provenance line."""
    e = html.escape
    out = ["<section id='summary' class='summary' aria-label='Summary'><dl>"]
    for label, text in summary["lines"]:
        body = e(text)
        for head, ident in anchors.items():
            key = f"see [{slug(head, set())}]"
            body = body.replace(e(key), f"see <a href='#{ident}'>the list</a>")
        out.append(f"<dt>{e(label)}</dt><dd>{body}</dd>")
    out.append("</dl>")
    head = summary.get("headline")
    if head is not None:
        out += ["<div class='tablewrap'><table>", f"<caption>{e(summary['headline_caption'])}</caption>"]
        out.append("<thead><tr>" + "".join(f"<th>{e(str(c))}</th>" for c in head.columns) + "</tr></thead><tbody>")
        out += [
            "<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in row) + "</tr>" for row in head.itertuples(index=False)
        ]
        out.append("</tbody></table></div>")
    else:
        out.append(f"<p class='missing'>Table 5: {e(str(summary.get('headline_caption', '')))}</p>")
    out.append(f"<p class='prov'>Provenance: {e(summary['provenance'])}</p></section>")
    return out


def _code(text: str) -> str:
    """Escape ``text``; `backquoted` parts become <code>."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _section(ident: str, name: str, what: Any, root: Path, caption: str = "") -> list[str]:
    e = html.escape
    out = [f"<section id='{ident}'><h3>{e(name)}</h3>"]
    if isinstance(what, str):
        return out + [f"<p class='missing'>{e(what)}</p></section>"]
    paths = [Path(p) for p in what]
    rel = [p.relative_to(root).as_posix() for p in paths]
    out.append(
        "<p class='files'>Files: " + " ".join(f"<a href='{e(r)}'>{e(p.name)}</a>" for p, r in zip(paths, rel)) + "</p>"
    )
    out += [f"<div class='tablewrap'>{p.read_text()}</div>" for p in paths if p.suffix == ".html"]
    pngs = [(p, r) for p, r in zip(paths, rel) if p.suffix == ".png"]
    for p, r in pngs:
        which = f" ({p.stem})" if len(pngs) > 1 else ""
        text = f"{caption or name}{which}"
        out.append(
            f"<figure><img src='{e(r)}' alt='{e(name)}: {e(p.name)}' loading='eager'>"
            f"<figcaption>{e(text)}</figcaption></figure>"
        )
    return out + ["</section>"]
