"""The layout of the paper's own repository (vec-ai/wikiHow-TIIR), both ways.

```
<out>/docs.jsonl      {"id": <doc id>, "data": [<text> | "doc_images/<name>.png", ...]}
<out>/queries.jsonl   {"qid": <positive doc id>, "query_id": <our query id>, "data": [...]}
<out>/qrels.jsonl     {"qid": <qid> | null, "did": <doc id>}, one line per corpus document
<out>/doc_images/*.png   <out>/query_images/*.png   <out>/export.json (what was written/skipped)
```

Why it looks like this (from reading the paper's `src/*.py`):

* an element of ``data`` is an image iff the string ends with ``.png``; the path is opened as given,
  so paths are relative to the export root and the scripts run from there;
* the text/CLIP scripts look the positive up as ``docs[qid]``, so a query's ``qid`` must equal its
  positive document's id; our own query id travels in the extra key ``query_id`` (the scripts
  ignore unknown keys; ``id`` is avoided because the text script would prefer it over ``qid``);
* ``retrieval.py`` takes query *i*'s positive to be the *i*-th document embedded, so the rows with
  a query come first, in query order, then every other corpus document with ``qid: null``;
* hence one query per document: a second query of the same split for an already used document is
  skipped, with its reason in ``export.json`` and in the returned summary.

Our metadata travels in extra keys the scripts ignore, so export -> import keeps it: on a document
``article_id``, ``url``, ``lang``, ``goal``, ``section_title``; on documents and queries ``stand_in``
(one flag per image of ``data``: a locally rendered stand-in, not the real image). A query takes
the language of its positive document.

Import reads images only from inside the folder it is given: an absolute path, a ``..`` that leads
out of it or a symlink to a file outside fails the whole import with one error naming the lines,
since a layout that points elsewhere is not a dataset to trust piecemeal.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from wikihow_tiir import layout
from wikihow_tiir.io import atomic_write_bytes, atomic_write_json, sha256_bytes
from wikihow_tiir.model import Document, ImageMeta, Interleaved, Qrel, Query
from wikihow_tiir.storage import read_rows

log = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DOC_IMAGES = "doc_images"
QUERY_IMAGES = "query_images"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "x"


def as_png(data: bytes) -> bytes:
    """The image as PNG bytes (the paper's scripts only recognise ``*.png``); PNGs are kept as they are."""
    if data.startswith(PNG_SIGNATURE):
        return data
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        if im.mode not in ("RGB", "RGBA", "L", "LA", "P"):
            im = im.convert("RGB")
        buf = io.BytesIO()
        im.save(buf, format="PNG")
    return buf.getvalue()


def _write_image(path: Path, data: bytes) -> None:
    # temp + rename, so an interrupted export never leaves half an image under the final name; no
    # fsync per file (it made exports ~10x slower, and the jsonl files are what commit an export)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _data_list(row: dict[str, Any], folder: str, stem: str, out_dir: Path, written: set[str],
               counters: dict[str, int]) -> tuple[list[str], list[bool]]:
    """The ``data`` list of one row, and the ``stand_in`` flag of each image it names (in order)."""
    data: list[str] = []
    stand_in: list[bool] = []
    k = 0
    for text, image, meta in zip(row["texts"], row["images"], row["image_meta"], strict=True):
        if text is not None:
            if text.endswith(".png"):  # would be read as an image path by the paper's scripts
                text += " "
                counters["texts_ending_in_png"] += 1
            data.append(text)
            continue
        name = f"{folder}/{stem}_{k}.png"
        k += 1
        blob = image.get("bytes") if isinstance(image, dict) else None
        if blob is None:
            counters["missing_image_bytes"] += 1
            continue
        _write_image(out_dir / name, as_png(blob))
        written.add(name)
        data.append(name)
        stand_in.append(bool((meta or {}).get("stand_in")))
    return data, stand_in


def _write_lines(path: Path, records: Iterable[dict[str, Any]]) -> int:
    # key order as in the paper's files; ensure_ascii=False keeps the text readable
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    atomic_write_bytes(path, "".join(line + "\n" for line in lines).encode("utf-8"))
    return len(lines)


def write_paper_layout(dataset_dir: Path, out_dir: Path, split: str = "test") -> dict:
    """Export a built dataset (corpus + one query split) to the paper repository's layout."""
    root, out_dir = Path(dataset_dir), Path(out_dir)
    corpus_files = layout.corpus_files(root)
    if not corpus_files:
        raise FileNotFoundError(f"{layout.config_dir(root, 'corpus')} has no Parquet files: is it a built dataset "
                                "folder?")
    query_files = layout.split_files(root, "queries", split)
    if not query_files:
        raise FileNotFoundError(f"{layout.config_dir(root, 'queries')} has no {split!r} split")
    out_dir.mkdir(parents=True, exist_ok=True)
    written: set[str] = set()
    counters = {"texts_ending_in_png": 0, "missing_image_bytes": 0}

    doc_data: dict[str, dict[str, Any]] = {}
    for row in read_rows(corpus_files):  # one row (with its images) in memory at a time
        if row["id"] in doc_data:
            raise ValueError(f"corpus id {row['id']!r} appears twice")
        # extra keys (ignored by the paper's scripts) keep our metadata through export + import
        data, stand_in = _data_list(row, DOC_IMAGES, _safe(row["id"]), out_dir, written, counters)
        doc_data[row["id"]] = {"id": row["id"], "data": data,
                               "article_id": row["article_id"], "url": row["url"], "lang": row["lang"],
                               "goal": row["goal"], "section_title": row["section_title"], "stand_in": stand_in}

    positives: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    used: set[str] = set()
    for row in read_rows(query_files):
        pid = row["positive_id"]
        if pid not in doc_data:
            skipped.append({"query_id": row["id"], "reason": "positive-not-in-corpus"})
            continue
        if pid in used:
            skipped.append({"query_id": row["id"], "reason": "document-already-has-a-query"})
            continue
        used.add(pid)
        data, stand_in = _data_list(row, QUERY_IMAGES, _safe(row["id"]), out_dir, written, counters)
        positives.append({"qid": pid, "query_id": row["id"], "data": data, "stand_in": stand_in})

    order = [q["qid"] for q in positives] + [d for d in doc_data if d not in used]
    n_docs = _write_lines(out_dir / "docs.jsonl", (doc_data[d] for d in order))
    n_queries = _write_lines(out_dir / "queries.jsonl", positives)
    n_qrels = _write_lines(out_dir / "qrels.jsonl",
                           [{"qid": q["qid"], "did": q["qid"]} for q in positives]
                           + [{"qid": None, "did": d} for d in order[len(positives):]])
    for folder in (DOC_IMAGES, QUERY_IMAGES):  # a re-export leaves no stale images behind
        for p in (out_dir / folder).glob("*"):
            if f"{folder}/{p.name}" not in written:
                p.unlink()
    summary = {
        "layout": "paper", "split": split, "documents": n_docs, "queries": n_queries, "qrels": n_qrels,
        "doc_images": sum(1 for w in written if w.startswith(DOC_IMAGES)),
        "query_images": sum(1 for w in written if w.startswith(QUERY_IMAGES)),
        "skipped_queries": skipped, **counters,
    }
    atomic_write_json(out_dir / "export.json", summary)
    if skipped:
        log.warning("paper layout: %d %s queries skipped (see export.json)", len(skipped), split)
    return {**summary, "out_dir": str(out_dir)}


# --------------------------------------------------------------------------- import


def _layout_root(path: Path) -> Path:
    path = Path(path)
    if (path / "docs.jsonl").is_file():
        return path
    if (path / "data" / "docs.jsonl").is_file():  # a clone of the paper's repo: files under data/
        return path / "data"
    raise FileNotFoundError(f"{path}: no docs.jsonl (nor data/docs.jsonl): not the paper's layout")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing")
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{n}: not JSON ({exc.msg})") from None
    return out


class _OutsideFolder(Exception):
    """An image path of the layout that leads out of the imported folder."""


def _resolve_image(base: Path, root: Path, name: str, folder: str) -> Path | None:
    """The file an image path of ``data`` names, looked up as the paper's scripts would (relative to
    ``root``), then relative to the clone above ``data/``, then by file name under ``folder``.

    Only files inside ``base`` (the folder being imported) are ever read: an absolute path, a ``..``
    that climbs out of it, or a symlink whose target lies outside raises :class:`_OutsideFolder`, so a
    crafted ``docs.jsonl`` cannot pull arbitrary local files into a dataset.
    """
    inside_lexically = base.absolute()
    inside = base.resolve()
    if Path(name).is_absolute() or not _within(root.absolute() / name, inside_lexically):
        raise _OutsideFolder
    candidates = [root / name, root.parent / name, root / folder / Path(name).name]
    for c in candidates:
        if not _within(c.absolute(), inside_lexically) or not c.is_file():
            continue
        if not c.resolve().is_relative_to(inside):  # a symlink (of the file or a folder) pointing out
            raise _OutsideFolder
        return c
    return None


def _within(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or below it once ``.`` and ``..`` are folded (no file system access)."""
    return Path(os.path.normpath(path)).is_relative_to(folder)


def _stand_in_flags(rec: dict[str, Any], data: Any, where: str) -> list[bool]:
    """The ``stand_in`` flags our export writes, one per image of ``data`` (absent: none are stand-ins)."""
    n_images = sum(isinstance(x, str) and x.endswith(".png") for x in data) if isinstance(data, list) else 0
    flags = rec.get("stand_in")
    if flags is None:
        return [False] * n_images
    if not isinstance(flags, list) or not all(isinstance(f, bool) for f in flags) or len(flags) != n_images:
        raise ValueError(f"{where}: 'stand_in' must be a list of {n_images} true/false flags, one per image")
    return flags


def _interleaved(base: Path, root: Path, rec: dict[str, Any], folder: str, where: str, missing: list[str],
                 outside: list[str], require_images: bool) -> Interleaved:
    from PIL import Image

    content = Interleaved()
    data = rec["data"]
    if not isinstance(data, list):
        raise ValueError(f"{where}: 'data' is not a list")
    stand_in = iter(_stand_in_flags(rec, data, where))
    for item in data:
        if not isinstance(item, str):
            raise ValueError(f"{where}: 'data' holds a {type(item).__name__}, expected strings")
        if not item.endswith(".png"):
            content.add_text(item)
            continue
        flag = next(stand_in)
        try:
            path = _resolve_image(base, root, item, folder)
        except _OutsideFolder:
            outside.append(f"{where}: {item}")
            continue
        if path is None:
            missing.append(f"{where}: {item}")
            if require_images:
                continue
            content.add_image(ImageMeta(source_url=item, stand_in=flag))
            continue
        blob = path.read_bytes()
        try:
            with Image.open(io.BytesIO(blob)) as im:
                width, height = im.size
        except Exception as exc:
            raise ValueError(f"{where}: image {item} does not decode ({exc})") from None
        content.add_image(ImageMeta(source_url=item, sha256=sha256_bytes(blob), width=width, height=height,
                                    stand_in=flag), blob)
    return content


def read_paper_layout(path: Path, split: str = "test",
                      require_images: bool = True) -> tuple[list[Document], list[Query], list[Qrel]]:
    """Read the paper repository's layout (``docs.jsonl``, ``queries.jsonl``, ``qrels.jsonl`` + images).

    ``path`` is the folder holding the three files (or a clone whose ``data/`` holds them). Image
    paths are resolved against that folder (as the paper's scripts do from their working
    directory), then by file name under ``doc_images/`` / ``query_images/``. Every image must lie
    inside ``path``: an absolute path, a ``..`` leading out of it or a symlink to a file outside is
    refused (``ValueError`` listing the first few), whatever ``require_images`` says. A missing image
    is an error listing the first few, unless ``require_images=False`` (then the position keeps its
    metadata without bytes). The ``stand_in`` flags our export writes are restored. Imported queries
    get ``split`` and their positive document's language; their qrels come from the rows of
    ``qrels.jsonl`` with a non-null ``qid`` (one per query: the benchmark has one positive per query).
    """
    base = Path(path)
    root = _layout_root(base)
    missing: list[str] = []
    outside: list[str] = []
    documents: list[Document] = []
    seen: set[str] = set()
    for n, rec in enumerate(_read_jsonl(root / "docs.jsonl"), 1):
        if "id" not in rec or "data" not in rec:
            raise ValueError(f"{root / 'docs.jsonl'}:{n}: expected keys 'id' and 'data'")
        did = str(rec["id"])
        if did in seen:
            raise ValueError(f"{root / 'docs.jsonl'}:{n}: document id {did!r} appears twice")
        seen.add(did)
        content = _interleaved(base, root, rec, DOC_IMAGES, f"docs.jsonl:{n}", missing, outside, require_images)
        texts = [t for t in content.texts if t is not None]
        documents.append(Document(
            id=did, article_id=str(rec.get("article_id", did)), url=str(rec.get("url", "")),
            lang=str(rec.get("lang", "en")), goal=str(rec.get("goal", texts[0] if texts else "")),
            section_title=str(rec.get("section_title", texts[1] if len(texts) > 1 else "")),
            section_kind="method", section_index=0,
            content=content))

    positive: dict[str, str] = {}
    for n, rec in enumerate(_read_jsonl(root / "qrels.jsonl"), 1):
        if "did" not in rec:
            raise ValueError(f"{root / 'qrels.jsonl'}:{n}: expected key 'did'")
        if rec.get("qid") is not None:
            qid, did = str(rec["qid"]), str(rec["did"])
            if did not in seen:
                raise ValueError(f"{root / 'qrels.jsonl'}:{n}: document {rec['did']!r} is not in docs.jsonl")
            if qid in positive:  # retrieval.py pairs query i with document i: one positive per query
                raise ValueError(f"{root / 'qrels.jsonl'}:{n}: query {qid!r} already has a qrels row (document "
                                 f"{positive[qid]!r}); each query has exactly one positive document")
            positive[qid] = did

    article_of = {d.id: d.article_id for d in documents}
    lang_of = {d.id: d.lang for d in documents}
    queries: list[Query] = []
    qrels: list[Qrel] = []
    query_ids: set[str] = set()
    unjudged = 0
    for n, rec in enumerate(_read_jsonl(root / "queries.jsonl"), 1):
        key = "qid" if "qid" in rec else "id"
        if key not in rec or "data" not in rec:
            raise ValueError(f"{root / 'queries.jsonl'}:{n}: expected keys 'qid' (or 'id') and 'data'")
        qid = str(rec[key])
        if qid not in positive:
            unjudged += 1
            continue
        our_id = str(rec.get("query_id") or qid)
        if our_id in query_ids:
            raise ValueError(f"{root / 'queries.jsonl'}:{n}: query id {our_id!r} appears twice")
        query_ids.add(our_id)
        content = _interleaved(base, root, rec, QUERY_IMAGES, f"queries.jsonl:{n}", missing, outside,
                               require_images)
        did = positive[qid]
        # the paper's layout has no query language; a query is in the language of its document
        queries.append(Query(id=our_id, positive_id=did, article_id=article_of[did], lang=lang_of[did],
                             content=content, provenance={"source": "paper-layout"}, split=split))
        qrels.append(Qrel(query_id=our_id, corpus_id=did, score=1))
    if outside:
        shown = "; ".join(outside[:5])
        raise ValueError(f"{len(outside)} image path(s) of {root} lead outside the imported folder {base} "
                         f"(absolute, '..' or a symlink out; only files inside it are read): {shown}")
    if missing and require_images:
        shown = "; ".join(missing[:5])
        raise FileNotFoundError(f"{len(missing)} image(s) of {root} not found (looked in the folder, its "
                                f"parent, {DOC_IMAGES}/ and {QUERY_IMAGES}/): {shown}")
    if unjudged:
        log.warning("%d queries in %s have no qrels row and were not imported", unjudged, root / "queries.jsonl")
    return documents, queries, qrels


def import_paper_layout(path: Path, dataset_dir: Path, split: str = "test", rows_per_file: int = 1000) -> dict:
    """Convert the paper's layout into our dataset folder (shards, ``manifest.json``, card)."""
    from wikihow_tiir import __version__
    from wikihow_tiir.io import atomic_write_text
    from wikihow_tiir.model import SCHEMA_VERSION, TEXT_LICENSE, document_to_row, qrel_to_row, query_to_row
    from wikihow_tiir.publish.card import render_card
    from wikihow_tiir.storage import file_entries, write_sharded

    documents, queries, qrels = read_paper_layout(path, split=split)
    out = Path(dataset_dir)
    write_sharded(layout.config_dir(out, "corpus"), [document_to_row(d) for d in documents], "corpus",
                  layout.CORPUS_SPLIT, rows_per_file)
    write_sharded(layout.config_dir(out, "queries"), [query_to_row(q) for q in queries], "queries", split,
                  rows_per_file)
    write_sharded(layout.config_dir(out, "qrels"), [qrel_to_row(q) for q in qrels], "qrels", split, rows_per_file)

    def row(items: list[Interleaved], positives: int | None = None) -> dict[str, Any]:
        n = [c.n_images for c in items]
        r: dict[str, Any] = {"examples": len(n), "avg_images": round(sum(n) / len(n), 2) if n else 0.0,
                             "min_images": min(n, default=0), "max_images": max(n, default=0)}
        return r if positives is None else {**r, "positives": positives}

    manifest = {
        "schema_version": SCHEMA_VERSION, "name": "wikiHow-TIIR (imported from the paper's layout)",
        "created_by": {"package": "wikihow-tiir", "version": __version__, "git_commit": None},
        "sources": {"kind": "paper-layout", "archive": Path(path).name, "snapshot_dates": [],
                    "pages": len({d.article_id for d in documents})},
        "statistics": {"corpus": row([d.content for d in documents]),
                       "queries": {split: row([q.content for q in queries], 1)}},
        "licenses": {"text": TEXT_LICENSE, "images": {"(not given by the paper's layout)": sum(
            d.content.n_images for d in documents)}},
        # as a build counts them (document images), so the card warns about stand-ins as the original's did
        "stand_in_images": {"count": sum(bool(m and m.stand_in) for d in documents for m in d.content.image_meta),
                            "total": sum(d.content.n_images for d in documents)},
        "files": file_entries(out),
        "changelog": [f"Imported from the paper repository's layout ({Path(path).name})."],
    }
    atomic_write_json(layout.manifest_path(out), manifest)
    atomic_write_text(layout.card_path(out), render_card(manifest))
    return {"documents": len(documents), "queries": len(queries), "qrels": len(qrels), "split": split,
            "dataset_dir": str(out)}
