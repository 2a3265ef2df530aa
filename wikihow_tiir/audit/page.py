"""The review page: one self-contained HTML file for people auditing the test split.

Each test query (its text and pictures in order) is shown beside its positive document, as in the
build report's gallery (whose rendering is reused). The reviewer decides with the keyboard; the
decisions live in the browser's localStorage under the dataset's identity (the test split as
generated, so progress survives re-rendering the page, other slices of it and applying earlier
decisions) and are exported as ``audit.jsonl`` for ``wikihow-tiir audit DATASET --apply``.
No network: pictures are inlined (scaled down to :data:`THUMB_MAX_SIDE`), CSS and script inline.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from wikihow_tiir.audit.apply import applied_drops, dataset_identity, read_manifest, read_stored, test_pairs
from wikihow_tiir.audit.decisions import REASONS, AuditError
from wikihow_tiir.io import atomic_write_text
from wikihow_tiir.layout import corpus_files, split_files, split_pattern
from wikihow_tiir.model import Interleaved, document_from_row, query_from_row

# the report's gallery: escaping, the interleaved sequence with inlined pictures, the page style
from wikihow_tiir.report import _CSS as REPORT_CSS
from wikihow_tiir.report import _e, _sequence_html
from wikihow_tiir.storage import read_rows_where

THUMB_MAX_SIDE = 480  # enough to judge a picture; keeps a page of 250 real pairs at tens of MB
DEFAULT_LIMIT = 250
STORAGE_PREFIX = "wikihow-tiir-audit:"

REASON_HELP = {
    "invalid-content": "illegal, harmful or invalid content: broken or empty text, unreadable pictures",
    "illogical": "the query makes no sense, contradicts itself, or is not a question the document answers",
    "image-text-mismatch": "a picture does not fit the text around it",
    "other": "anything else: type a note saying why (required)",
}
KEYS = [  # (key, what it does): the help table on the page, and what the script binds
    ("y", "keep the pair (a sensible query that its document answers)"),
    *((str(i), f"drop: {r}") for i, r in enumerate(REASONS[:3], start=1)),
    ("4", "drop: other — type a note, Enter saves, Esc cancels"),
    ("e", "edit the note of the current decision (Enter saves)"),
    ("u", "undo the current pair's decision"),
    ("j / k", "next / previous pair"),
    ("n", "next undecided pair"),
    ("x", "export every decision made in this browser as audit.jsonl"),
    ("?", "show / hide this help"),
]

_CSS = REPORT_CSS + """
#controls{position:sticky;top:0;z-index:2;display:flex;gap:14px;align-items:center;flex-wrap:wrap}
#controls input{padding:5px 8px;width:200px}#message{color:#a33a1c;font-weight:600}
.pair-card{background:#fff;border:2px solid #dde2e8;border-radius:8px;padding:10px 16px;margin:0 0 16px;
scroll-margin-top:110px}
.pair-card.current{border-color:#2f6690;box-shadow:0 0 0 3px #cfe0f0}
.pair-card.keep{background:#f1faf2}.pair-card.drop{background:#fbf0ef}
.bar{display:flex;gap:12px;align-items:baseline;flex-wrap:wrap;font-size:14px}.status{font-weight:600}
.pair-card.keep .status{color:#23703a}.pair-card.drop .status{color:#a33a1c}
.applied{font-size:12px;color:#5b6773}.acts button{font-size:12px;margin:2px}
.notebox input{width:70%;padding:4px 8px;margin-top:6px}kbd{border:1px solid #aab4bf;border-radius:3px;
padding:0 4px;background:#f3f5f7;font-size:12px}
"""

_JS = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("audit-data").textContent);
  var KEY = data.storage_key, REASONS = data.reasons, applied = data.applied;
  var cards = Array.prototype.slice.call(document.querySelectorAll(".pair-card"));
  var rev = document.getElementById("reviewer"), msg = document.getElementById("message");
  var progress = document.getElementById("progress"), help = document.getElementById("help");
  var cur = 0, pending = null;

  function load() {
    try {
      var s = JSON.parse(localStorage.getItem(KEY));
      if (s && typeof s === "object" && s.decisions && typeof s.decisions === "object") return s;
    } catch (err) { /* unreadable progress: start over, the old value stays until the next save */ }
    return {reviewer: "", decisions: {}};
  }
  var state = load();
  function save() { localStorage.setItem(KEY, JSON.stringify(state)); }
  function say(text) { msg.textContent = text; }
  function qid(card) { return card.getAttribute("data-qid"); }
  function label(d) {
    return d.decision + (d.reason ? ": " + d.reason : "") + (d.note ? " \u2014 " + d.note : "");
  }
  function render(card) {
    var d = state.decisions[qid(card)];
    card.querySelector(".status").textContent = d ? label(d) + " (" + d.reviewer + ")" : "undecided";
    card.classList.toggle("keep", !!d && d.decision === "keep");
    card.classList.toggle("drop", !!d && d.decision === "drop");
    card.querySelector(".note").value = d ? d.note : "";
  }
  function count() {
    var here = cards.filter(function (c) { return state.decisions[qid(c)]; }).length;
    var all = Object.keys(state.decisions).length;
    progress.textContent = here + " of " + cards.length + " pairs on this page decided \u00b7 " + all +
      " of " + data.total + " in this browser";
  }
  function go(i) {
    if (!cards.length) return;
    cur = Math.max(0, Math.min(cards.length - 1, i));
    cards.forEach(function (c) { c.classList.remove("current"); });
    cards[cur].classList.add("current");
    cards[cur].scrollIntoView({block: "start"});
  }
  function nextUndecided() {
    for (var k = 1; k <= cards.length; k++) {
      var i = (cur + k) % cards.length, id = qid(cards[i]);
      if (!state.decisions[id] && !applied[id]) { go(i); return; }
    }
    say("Every pair on this page is decided: press x to export.");
  }
  function reviewer() {
    var r = rev.value.trim();
    if (!r) { say("Type your name in the Reviewer field first (Enter returns to the pairs)."); rev.focus(); }
    return r;
  }
  function decide(decision, reason, note) {
    var r = reviewer();
    if (!r) return false;
    var card = cards[cur], id = qid(card);
    state.reviewer = r;
    state.decisions[id] = {query_id: id, decision: decision, reason: reason, note: note || "", reviewer: r};
    save(); render(card); count(); say("");
    return true;
  }
  function openNote(kind) {
    var input = cards[cur].querySelector(".note");
    pending = kind;
    input.placeholder = kind === "other" ? "why is it dropped? (Enter saves, Esc cancels)" : "note (Enter saves)";
    input.focus();
  }
  function commitNote(input) {
    var card = input.closest(".pair-card"), id = qid(card), note = input.value.trim();
    cur = cards.indexOf(card);
    if (pending === "other") {
      if (!note) { say("A drop for 'other' needs a note saying why."); return; }
      if (!decide("drop", "other", note)) return;
      input.blur(); pending = null; nextUndecided();
      return;
    }
    var d = state.decisions[id];
    if (!d) { say("Decide the pair first, then add a note."); return; }
    d.note = note; save(); render(card); input.blur(); pending = null; say("");
  }
  function exportFile() {
    var ids = Object.keys(state.decisions).sort();
    if (!ids.length) { say("Nothing decided yet."); return; }
    var lines = ids.map(function (id) {
      var d = state.decisions[id];  // fixed key order: the documented line format
      return JSON.stringify({query_id: d.query_id, decision: d.decision, reason: d.reason, note: d.note,
                             reviewer: d.reviewer});
    });
    var url = URL.createObjectURL(new Blob([lines.join("\n") + "\n"], {type: "application/x-ndjson"}));
    var a = document.createElement("a");
    a.href = url; a.download = "audit.jsonl";
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 60000);
    say("Exported " + ids.length + " decision(s) as audit.jsonl.");
  }
  function act(key) {
    if (key === "y") { if (decide("keep", null, "")) nextUndecided(); }
    else if (key === "1" || key === "2" || key === "3") {
      if (decide("drop", REASONS[Number(key) - 1], (state.decisions[qid(cards[cur])] || {}).note)) nextUndecided();
    }
    else if (key === "4") { if (reviewer()) openNote("other"); }
    else if (key === "e") openNote("edit");
    else if (key === "u") {
      delete state.decisions[qid(cards[cur])]; save(); render(cards[cur]); count();
    }
    else if (key === "j") go(cur + 1);
    else if (key === "k") go(cur - 1);
    else if (key === "n") nextUndecided();
    else if (key === "x") exportFile();
    else if (key === "?") help.hidden = !help.hidden;
    else return false;
    return true;
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var t = e.target;
    if (t.classList && t.classList.contains("note")) {
      if (e.key === "Enter") { e.preventDefault(); commitNote(t); }
      else if (e.key === "Escape") { e.preventDefault(); pending = null; render(t.closest(".pair-card")); t.blur(); }
      return;
    }
    if (t === rev) {
      if (e.key === "Enter" || e.key === "Escape") {
        e.preventDefault(); state.reviewer = rev.value.trim(); save(); rev.blur(); say("");
      }
      return;
    }
    if (t.tagName === "INPUT" || t.tagName === "TEXTAREA") return;
    if (act(e.key)) e.preventDefault();
  });
  rev.addEventListener("change", function () { state.reviewer = rev.value.trim(); save(); });
  document.getElementById("export").addEventListener("click", exportFile);
  cards.forEach(function (card, i) {
    card.addEventListener("click", function (e) {
      cur = i;
      cards.forEach(function (c) { c.classList.toggle("current", c === card); });
      var b = e.target.closest("button[data-key]");
      if (b) act(b.getAttribute("data-key"));
    });
    render(card);
  });
  rev.value = state.reviewer || "";
  count();
  if (cards.length) go(0);
  document.body.setAttribute("data-ready", "1");
})();
"""


def _thumbnail(data: bytes | None) -> bytes | None:
    """A JPEG no larger than THUMB_MAX_SIDE (pictures already small, or unreadable, stay as they are)."""
    if not data:
        return data
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            if max(im.size) <= THUMB_MAX_SIDE:
                return data
            im = im.convert("RGB")
            im.thumbnail((THUMB_MAX_SIDE, THUMB_MAX_SIDE))
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=82)
            return buf.getvalue()
    except Exception:  # a picture Pillow cannot read is shown as it is (the browser may still can)
        return data


def _small(content: Interleaved) -> Interleaved:
    return Interleaved(texts=content.texts, images=[_thumbnail(b) for b in content.images],
                       image_meta=content.image_meta)


def _json_script(element_id: str, obj: Any) -> str:
    text = json.dumps(obj, ensure_ascii=False, sort_keys=True).replace("<", "\\u003c")
    return f'<script type="application/json" id="{element_id}">{text}</script>'


def _help() -> str:
    keys = "".join(f"<tr><td><kbd>{_e(k)}</kbd></td><td>{_e(v)}</td></tr>" for k, v in KEYS)
    reasons = "".join(f"<li><code>{_e(r)}</code>: {_e(REASON_HELP[r])}</li>" for r in REASONS)
    return (f'<section id="help"><h2>How to review</h2><p>Read the query (left) and its positive document '
            "(right). Keep the pair when the query is a sensible, self-contained request that the document "
            "answers and its pictures fit their text; otherwise drop it with the reason that applies "
            "(the paper's audit categories):</p>"
            f"<ul>{reasons}</ul><table><tr><th>key</th><th>what it does</th></tr>{keys}</table>"
            "<p>Every decision is saved in this browser at once (localStorage, per dataset); closing the page "
            "loses nothing. <b>Export</b> writes <code>audit.jsonl</code>, one line per decided pair: "
            "<code>{\"query_id\", \"decision\": \"keep\"|\"drop\", \"reason\", \"note\", \"reviewer\"}</code>. "
            "Apply it with <code>wikihow-tiir audit DATASET --apply audit.jsonl</code>.</p></section>")


def _card(index: int, total: int, q, doc, applied: list[str]) -> str:
    buttons = "".join(f'<button type="button" data-key="{k}">{_e(label)} <kbd>{k}</kbd></button>'
                      for k, label in (("y", "keep"), *((str(i), r) for i, r in enumerate(REASONS, start=1)),
                                       ("u", "undo")))
    done = (f'<span class="applied">applied earlier: {_e("; ".join(applied))}</span>' if applied else "")
    left = (f'<div><div class="label">query {_e(q.id)} · {_e(q.lang)} · {q.content.n_images} pictures</div>'
            + _sequence_html(q.content.texts, q.content.images, q.content.image_meta, q.image_prompts) + "</div>")
    right = (f'<div><div class="label">positive document {_e(q.positive_id)}'
             + (f" · {_e(doc.goal)} · {_e(doc.section_title)}</div>"
                + _sequence_html(doc.content.texts, doc.content.images, doc.content.image_meta)
                if doc else "</div><p>(not in the corpus)</p>") + "</div>")
    return (f'<article class="pair-card" data-qid="{_e(q.id)}" id="pair-{index}">'
            f'<div class="bar"><b>{index} / {total}</b><span class="status">undecided</span>{done}'
            f'<span class="acts">{buttons}</span></div><div class="pair">{left}{right}</div>'
            f'<div class="notebox"><input class="note" aria-label="note on {_e(q.id)}" autocomplete="off" '
            'placeholder="note (e to edit)"></div></article>')


def write_review_page(dataset_dir: str | Path, output: str | Path, *, offset: int = 0,
                      limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """Write the review page for test pairs ``offset`` .. ``offset + limit`` (by query id).

    Returns what was written (pairs shown, total, the dataset identity). Same dataset -> same bytes."""
    root = Path(dataset_dir)
    if offset < 0 or limit < 1:
        raise AuditError(f"--offset must be 0 or more and --limit 1 or more (got {offset} and {limit})")
    manifest = read_manifest(root)
    stored = read_stored(root)
    current = test_pairs(root)
    gone = applied_drops(stored, current)
    if not current:
        raise AuditError(f"{root} has no test pairs to review ({split_pattern('queries', 'test')})"
                         + (f"; all {len(gone)} were dropped by earlier decisions" if gone else ""))
    ids = sorted(current)
    if offset >= len(ids):
        raise AuditError(f"--offset {offset} is past the last test pair ({len(ids)} pairs)")
    shown = ids[offset:offset + limit]
    identity = dataset_identity(current, gone)
    qrows = {r["id"]: r for r in read_rows_where(split_files(root, "queries", "test"), "id", shown)}
    queries = [query_from_row(qrows[i], "test") for i in shown]
    docs = {r["id"]: document_from_row(r)
            for r in read_rows_where(corpus_files(root), "id", {q.positive_id for q in queries})}
    applied: dict[str, list[str]] = {}
    for s in stored:
        if current.get(s.decision.query_id) == s.query_sha256 and s.decision.query_id in qrows:
            applied.setdefault(s.decision.query_id, []).append(s.decision.describe())
    cards = []
    for k, q in enumerate(queries):
        q.content = _small(q.content)
        doc = docs.get(q.positive_id)
        if doc is not None:
            doc.content = _small(doc.content)
        cards.append(_card(offset + k + 1, len(ids), q, doc, applied.get(q.id, [])))
    name = manifest.get("name") or "wikiHow-TIIR"
    title = f"{name} test audit — {root.name}"
    more = (f" · next slice: <code>--offset {offset + len(shown)}</code>" if offset + len(shown) < len(ids) else "")
    data = {"storage_key": STORAGE_PREFIX + identity, "reasons": list(REASONS), "total": len(current) + len(gone),
            "applied": {k: True for k in sorted(applied)}}
    body = (f'<section id="controls"><label>Reviewer <input id="reviewer" autocomplete="off" '
            'placeholder="your name"></label><button type="button" id="export">Export audit.jsonl '
            '<kbd>x</kbd></button><span id="progress"></span><span id="message" role="status"></span></section>'
            f"<p class=\"label\">Pairs {offset + 1}–{offset + len(shown)} of {len(ids)} test pairs (by query id)"
            f"{more} · dataset <code>{identity}</code>"
            + (f" · {len(gone)} pair(s) already dropped by applied decisions" if gone else "") + "</p>"
            + _help() + '<div id="pairs">' + "".join(cards) + "</div>")
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<style>{_CSS}</style></head><body><header><h1>{_e(title)}</h1><p>Human review of the generated test "
            "pairs: keep or drop each one, then export and apply.</p></header>"
            f"<main>{body}</main>{_json_script('audit-data', data)}<script>{_JS}</script></body></html>\n")
    out = Path(output)
    atomic_write_text(out, page)
    return {"output": str(out), "pairs": len(shown), "first": offset + 1, "last": offset + len(shown),
            "test_pairs": len(ids), "dataset": identity, "already_dropped": len(gone)}
