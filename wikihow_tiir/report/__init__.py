"""The build report: a self-contained static HTML page per build (no network, no CDN assets).

`write_report(dataset_dir)` reads what the build wrote (manifest, Parquet configs, rejects, and an
evaluation folder when present) and writes `report/index.html` plus `report/gallery-NNN.html`
pages. Images are embedded as data: URIs and plots as inline SVG (matplotlib), so the folder can
be opened from disk, mailed or archived as it is.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from wikihow_tiir import layout
from wikihow_tiir.io import atomic_write_text, read_jsonl
from wikihow_tiir.model import Document, Query, document_from_row, query_from_row


def score_thresholds() -> dict[str, tuple[str, ...]]:
    """The settings (FilterConfig names, as in the manifest's filter thresholds) that bound each filter
    score (a Query.scores key): the plot of a score draws these lines and no others. Named one by one in
    the filter's check registry (matching a score to settings by its first word drew query_block_size =
    1024 on query_image_min_distance and nothing on the rank). Read on first use, not on import:
    importing the filter would cost every CLI start ~0.3 s."""
    from wikihow_tiir.filter.checks import SCORE_SETTINGS

    return dict(SCORE_SETTINGS)


def __getattr__(name: str) -> Any:
    if name == "SCORE_THRESHOLDS":  # the name this table had as a constant
        return score_thresholds()
    raise AttributeError(f"module 'wikihow_tiir.report' has no attribute {name!r}")


GALLERY_PAGE_SIZE = 12
GALLERY_MAX_PAIRS = 240  # 20 pages
EXAMPLES_PER_REASON = 5

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d232a;background:#f6f7f9}
header{background:#16324f;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;opacity:.85}main{padding:18px 28px;max-width:1400px}
section{background:#fff;border:1px solid #dde2e8;border-radius:8px;padding:14px 18px;margin:0 0 18px}
h2{font-size:18px;margin:4px 0 12px}table{border-collapse:collapse;margin:6px 0}
td,th{border:1px solid #d5dbe1;padding:4px 9px;text-align:left;font-size:14px;vertical-align:top}
th{background:#eef2f6}.num{text-align:right;font-variant-numeric:tabular-nums}
.warn{background:#fff4d6;border:1px solid #e7c766;padding:8px 12px;border-radius:6px}
.funnel{display:flex;gap:8px;flex-wrap:wrap;align-items:center}.funnel div{background:#e8f0f8;padding:8px 12px;
border-radius:6px;text-align:center}.funnel b{display:block;font-size:20px}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:14px;border-top:1px solid #e3e7ec;padding:12px 0}
.seq{font-size:14px;line-height:1.45}.seq img{display:block;max-width:260px;max-height:200px;margin:4px 0;
border:1px solid #ccd3da;border-radius:4px}.seq p{margin:3px 0}.label{font-size:12px;color:#5b6773}
.scores{font-size:12px;color:#33414e}.plots{display:flex;flex-wrap:wrap;gap:10px}.plots svg{max-width:440px;height:auto}
nav.pages a{margin-right:8px}input#q{padding:5px 8px;width:320px;margin-bottom:8px}
"""

_SEARCH_JS = """
document.getElementById('q').addEventListener('input',function(e){var t=e.target.value.toLowerCase();
document.querySelectorAll('.pair').forEach(function(p){p.style.display=p.textContent.toLowerCase().indexOf(t)>=0?'':'none'})});
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _img_tag(data: bytes | None, alt: str) -> str:
    if not data:
        return f'<p class="label">[missing image: {_e(alt)}]</p>'
    mime = "image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"
    return f'<img alt="{_e(alt)}" src="data:{mime};base64,{base64.b64encode(data).decode()}">'


def _sequence_html(texts, images, metas, prompts: list[str] | None = None) -> str:
    parts, k = [], 0
    for t, b, m in zip(texts, images, metas, strict=True):
        if m is None:
            parts.append(f"<p>{_e(t)}</p>")
        else:
            alt = (prompts[k] if prompts and k < len(prompts) else m.source_url)
            stand_in = " (stand-in)" if m.stand_in else ""
            parts.append(_img_tag(b, alt) + f'<span class="label">{_e(alt)[:120]}{stand_in}</span>')
            k += 1
    return '<div class="seq">' + "".join(parts) + "</div>"


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(
        f'<td class="num">{_e(c)}</td>' if isinstance(c, (int, float)) else f"<td>{_e(c)}</td>" for c in r)
        + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _stats_table(stats: dict[str, Any]) -> str:
    rows = []
    if stats.get("corpus"):
        c = stats["corpus"]
        rows.append(["Corpus", c["examples"], f"{c['avg_images']:.2f} / {c['min_images']} / {c['max_images']}",
                     c["avg_text_tokens"], ""])
    for split, q in (stats.get("queries") or {}).items():
        rows.append([f"{split.capitalize()} Query", q["examples"],
                     f"{q['avg_images']:.2f} / {q['min_images']} / {q['max_images']}", q["avg_text_tokens"],
                     q.get("positives", "")])
    return _table(["Part", "#Examples", "Avg./Min/Max #Images", "Avg. Text #Tokens", "#Positives"], rows)


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight",
                metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _plots(docs: list[Document], queries: list[Query], thresholds: dict[str, Any]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "wikihow-tiir"  # deterministic SVG ids
    import matplotlib.pyplot as plt

    from wikihow_tiir.stats import count_tokens

    out = []
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    axes[0].hist([d.content.n_images for d in docs], bins=20, color="#2f6690")
    axes[0].set_title("images per document")
    if queries:
        axes[1].hist([q.content.n_images for q in queries], bins=range(0, 7), color="#3a7d44", rwidth=0.8)
    axes[1].set_title("images per query")
    out.append(_svg(fig))
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist(count_tokens([d.content.text for d in docs]), bins=20, alpha=0.7, label="documents")
    if queries:
        ax.hist(count_tokens([q.content.text for q in queries]), bins=20, alpha=0.7, label="queries")
    ax.set_title("text tokens")
    ax.legend()
    out.append(_svg(fig))
    names = sorted({k for q in queries for k, v in q.scores.items() if isinstance(v, (int, float))})
    for name in names:
        vals = [q.scores[name] for q in queries if isinstance(q.scores.get(name), (int, float))]
        fig, ax = plt.subplots(figsize=(4.2, 2.8))
        ax.hist(vals, bins=20, color="#7a4f9a")
        lines = threshold_lines(name, thresholds)
        for key, value in lines:
            ax.axvline(value, color="#c0392b", linestyle="--", label=f"{key} = {value}")
        if lines:
            ax.legend(fontsize=7)
        ax.set_title(f"filter score: {name}")
        out.append(_svg(fig))
    return out


def threshold_lines(score: str, thresholds: dict[str, Any]) -> list[tuple[str, float]]:
    """``(setting, value)`` of the thresholds that bound this filter score (:func:`score_thresholds`);
    settings that are off (None) or not numbers are left out, and an unknown score has none."""
    return [(key, thresholds[key]) for key in score_thresholds().get(score, ())
            if isinstance(thresholds.get(key), (int, float)) and not isinstance(thresholds.get(key), bool)]


def _load(dataset: Path) -> tuple[list[Document], list[Query]]:
    """Every document and query without image bytes (tables and plots need none)."""
    from wikihow_tiir.storage import read_rows_without  # pyarrow: not at every CLI start

    docs = [document_from_row(r) for r in read_rows_without(layout.corpus_files(dataset))]
    queries: list[Query] = []
    for split in ("test", "train"):
        files = layout.split_files(dataset, "queries", split)
        queries += [query_from_row(r, split) for r in read_rows_without(files)]
    return docs, queries


def _with_images(dataset: Path, docs: list[Document], queries: list[Query]
                 ) -> tuple[list[Document], list[Query]]:
    """The gallery's documents and queries again, with their image bytes (a filtered read)."""
    from wikihow_tiir.storage import read_rows_where

    def rows(config: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        return {r["id"]: r for r in read_rows_where(layout.config_files(dataset, config), "id", ids)}

    drows = rows("corpus", [d.id for d in docs])
    qrows = rows("queries", [q.id for q in queries])
    return ([document_from_row(drows[d.id]) for d in docs if d.id in drows],
            [query_from_row(qrows[q.id], q.split) for q in queries if q.id in qrows])


def _rejects_section(dataset: Path, stages: list[str] | None) -> str:
    """The build's reject files: those of the stages the manifest counts (rejects/ may also hold files
    of the user's, which the build leaves alone), or every .jsonl file there without a manifest count."""
    rows = []
    files = (sorted(layout.reject_file(dataset, s) for s in stages) if stages is not None
             else layout.reject_files(dataset))
    for f in (f for f in files if f.is_file()):
        by_reason: dict[str, list[str]] = {}
        for r in read_jsonl(f):
            by_reason.setdefault(r["reason"], []).append(r["item_id"])
        for reason, ids in sorted(by_reason.items()):
            rows.append([f.stem, reason, len(ids), ", ".join(ids[:EXAMPLES_PER_REASON])])
    if not rows:
        return "<p>Nothing was rejected.</p>"
    return _table(["stage", "reason", "count", "example ids"], rows)


def _counted_stages(manifest: dict[str, Any]) -> list[str] | None:
    counted = manifest.get("rejects")
    return sorted(counted) if isinstance(counted, dict) else None


def _funnel(manifest: dict[str, Any], n_docs: int) -> str:
    src = manifest.get("sources", {})
    flt = manifest.get("filter", {})
    steps = [("pages", src.get("pages")), ("articles", src.get("articles")), ("documents", n_docs),
             ("generated queries", flt.get("generated")), ("kept queries", flt.get("kept"))]
    cells = [f"<div><b>{_e(v if v is not None else '–')}</b>{_e(k)}</div>" for k, v in steps]
    return '<div class="funnel">' + " → ".join(cells) + "</div>"


def _eval_section(eval_dir: Path) -> str:
    parts = []
    for cand in (eval_dir / "comparison.md",):
        if cand.is_file():
            parts.append(_markdown_table(cand.read_text(encoding="utf-8")))
    for png in sorted(eval_dir.rglob("mme_sweep.png")) if eval_dir.is_dir() else []:
        parts.append('<h3>MME token budget</h3>' + _img_tag(png.read_bytes(), "MME sweep"))
    return "".join(parts)


def _difficulty_section(section: dict[str, Any]) -> str:
    """How hard the build is (``manifest["difficulty"]``): the card's table, and its warnings in red."""
    from wikihow_tiir.difficulty import difficulty_table

    lines = difficulty_table(section)
    if not lines:
        return ""
    parts, table = [], []
    for line in lines + [""]:
        if line.startswith("|"):
            table.append(line)
            continue
        if table:
            parts.append(_markdown_table("\n".join(table)))
            table = []
        if line.startswith("> **Warning:**"):
            parts.append(f'<p class="warn">{_e(line.removeprefix("> **Warning:**").strip())}</p>')
        elif line.strip():
            parts.append(f"<p>{_e(line.replace('**', ''))}</p>")
    return f"<section><h2>How hard is it</h2>{''.join(parts)}</section>"


def _markdown_table(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("|")]
    if len(lines) < 2:
        return f"<pre>{_e(text)}</pre>"
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    head, body = cells[0], [r for r in cells[1:] if not set("".join(r)) <= set("-: ")]
    return _table(head, body)


def _page(title: str, subtitle: str, body: str, search: bool = False) -> str:
    js = f"<script>{_SEARCH_JS}</script>" if search else ""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<style>{_CSS}</style></head><body><header><h1>{_e(title)}</h1><p>{_e(subtitle)}</p></header>"
            f"<main>{body}</main>{js}</body></html>\n")


def _gallery_pages(docs: list[Document], queries: list[Query]) -> list[str]:
    by_id = {d.id: d for d in docs}
    items = []
    for q in sorted(queries, key=lambda q: (q.split != "test", q.id)):
        d = by_id.get(q.positive_id)
        scores = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(q.scores.items()))
        left = (f'<div><div class="label">query {_e(q.id)} · {_e(q.split)} · {_e(q.lang)}</div>'
                + _sequence_html(q.content.texts, q.content.images, q.content.image_meta, q.image_prompts)
                + f'<div class="scores">{_e(scores)}</div></div>')
        right = (f'<div><div class="label">positive document {_e(q.positive_id)}</div>'
                 + (_sequence_html(d.content.texts, d.content.images, d.content.image_meta) if d else
                    "<p>(not in corpus)</p>") + "</div>")
        items.append(f'<div class="pair">{left}{right}</div>')
    if not items:  # a corpus-only build: show documents alone
        for d in docs:
            items.append(f'<div class="pair"><div><div class="label">document {_e(d.id)}</div>'
                         + _sequence_html(d.content.texts, d.content.images, d.content.image_meta)
                         + "</div><div></div></div>")
    return [ "".join(items[i:i + GALLERY_PAGE_SIZE]) for i in range(0, len(items), GALLERY_PAGE_SIZE)] or [""]


def write_report(dataset_dir: str | Path, eval_dir: str | Path | None = None) -> Path:
    """Write report/index.html (+ gallery pages) for a built dataset folder; returns the index path.

    ``eval_dir``: the output folder of `wikihow-tiir evaluate` to show (default ``DATASET/eval``)."""
    dataset = Path(dataset_dir)
    eval_dir = Path(eval_dir) if eval_dir is not None else layout.eval_dir(dataset)
    if not eval_dir.is_dir() and eval_dir != layout.eval_dir(dataset):
        raise FileNotFoundError(f"evaluation folder {eval_dir} does not exist")
    manifest_path = layout.manifest_path(dataset)
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{dataset} has no manifest.json: is it a built dataset folder?")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    docs, queries = _load(dataset)
    out = layout.report_dir(dataset)
    out.mkdir(parents=True, exist_ok=True)
    # the gallery: test queries first, then train, by id; at most GALLERY_MAX_PAIRS of them, so the
    # report of a paper-scale build stays a few MB and only their pictures are read
    shown_q = sorted(queries, key=lambda q: (q.split != "test", q.id))[:GALLERY_MAX_PAIRS]
    wanted = {q.positive_id for q in shown_q}
    shown_d = [d for d in docs if d.id in wanted] if shown_q else docs[:GALLERY_MAX_PAIRS]
    # a page's pictures are read, rendered and written one page at a time: the 240 pairs' pictures and
    # pages held together were the flow process's peak memory at the end of a build
    shown = len(shown_q) if queries else len(shown_d)
    n_pages = max(1, math.ceil(shown / GALLERY_PAGE_SIZE))

    def page(i: int) -> str:
        """Gallery page ``i`` (0-based): its pairs read with their image bytes, rendered."""
        if queries:
            page_q = shown_q[i * GALLERY_PAGE_SIZE:(i + 1) * GALLERY_PAGE_SIZE]
            positives = {q.positive_id for q in page_q}
            page_d = [d for d in shown_d if d.id in positives]
        else:
            page_q, page_d = [], shown_d[i * GALLERY_PAGE_SIZE:(i + 1) * GALLERY_PAGE_SIZE]
        return _gallery_pages(*_with_images(dataset, page_d, page_q))[0]

    total = len(queries) if queries else len(docs)
    nav = '<nav class="pages">Gallery pages: ' + " ".join(
        f'<a href="{layout.report_page_name(i + 1)}">{i + 1}</a>'
        for i in range(n_pages)) + "</nav>"
    stand_in = manifest.get("stand_in_images", {})
    warn = ""
    if stand_in.get("count"):
        warn = (f'<p class="warn">{stand_in["count"]} of {stand_in.get("total")} document images are locally '
                "rendered stand-ins (the real step images were not available offline).</p>")
    flt = manifest.get("filter", {})
    langs = Counter(d.lang for d in docs)
    # the settings, and the whole-set percentile cutoff the filter computed from one of them
    cutoff = (((flt.get("report") or {}).get("checks") or {}).get("easiness") or {}).get("thresholds", {})
    thresholds = {**flt.get("thresholds", {}),
                  "easiness_percentile_cutoff": cutoff.get("easiness_percentile_cutoff")}
    body = [
        f"<section><h2>Statistics</h2>{warn}{_stats_table(manifest.get('statistics', {}))}"
        f"<p>Languages: {_e(', '.join(f'{k}: {v}' for k, v in sorted(langs.items())))}</p></section>",
        f"<section><h2>Funnel</h2>{_funnel(manifest, len(docs))}</section>",
        _difficulty_section(manifest.get("difficulty") or {}),
        f"<section><h2>Rejections</h2>{_rejects_section(dataset, _counted_stages(manifest))}</section>",
        '<section><h2>Plots</h2><div class="plots">' + "".join(_plots(docs, queries, thresholds)) + "</div></section>",
    ]
    ev = _eval_section(eval_dir)
    if ev:
        body.append(f"<section><h2>Evaluation</h2>{ev}</section>")
    more = (f'<p class="note">Showing {shown} of {total} {"queries" if queries else "documents"} '
            "(test split first, by id).</p>" if shown < total else "")
    gallery_head = ('<section><h2>Gallery</h2>' + more
                    + '<input id="q" placeholder="search this page (ids, words)">' + nav)
    title = f"wikiHow-TIIR build report — {dataset.name}"
    sub = (f"{len(docs)} documents · {len(queries)} queries · source: "
           f"{manifest.get('sources', {}).get('kind', '?')} · wikihow-tiir "
           f"{manifest.get('created_by', {}).get('version', '?')}")
    index = layout.report_index(dataset)
    atomic_write_text(index, _page(title, sub, "".join(body) + gallery_head + page(0) + "</section>", search=True))
    for old in layout.report_gallery_pages(dataset):
        old.unlink()
    for i in range(2, n_pages + 1):
        atomic_write_text(out / layout.report_page_name(i),
                          _page(title, f"gallery page {i}", gallery_head + page(i - 1) + "</section>", search=True))
    return index
