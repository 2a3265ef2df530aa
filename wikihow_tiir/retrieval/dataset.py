"""Read one split of a dataset for scoring: ours (a build's Parquet configs), a Hub id, or the paper's layout.

Everything that would give a silently wrong number is refused here with the ids named: duplicate
document or query ids, qrels pointing at documents or queries that do not exist, queries without a
relevant document, an empty split. Documents are read lazily in batches (the real corpus holds
~770k embedded images) and image bytes only when a model looks at images.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from wikihow_tiir.errors import WikihowTiirError
from wikihow_tiir.layout import (
    DATASET_PATTERNS,
    config_dir,
    corpus_files,
    manifest_path,
    split_files,
    splits_on_disk,
)
from wikihow_tiir.model import Document, Qrel, Query, document_from_row, query_from_row

HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<rev>[\w./-]+))?$")


class DatasetError(WikihowTiirError, ValueError):
    """A dataset that cannot be scored as it is; the message names the offending ids or files."""

    reason = "bad-dataset"


def show_ids(items: Sequence[str], limit: int = 10) -> str:
    items = list(items)
    more = f" (and {len(items) - limit} more)" if len(items) > limit else ""
    return f"{items[:limit]}{more}"


def check_images(items: Sequence[Document | Query], what: str) -> None:
    """Refuse items whose image positions have no bytes (a model that looks at images needs them).

    Checked batch by batch as documents are read, so the error names the ids of the first batch
    with missing images rather than all of them.
    """
    missing = [it.id for it in items if any(m is not None and b is None
                                            for m, b in zip(it.content.image_meta, it.content.images, strict=True))]
    if missing:
        raise DatasetError(f"{what} with missing image bytes: {show_ids(missing)}; rebuild the images or score "
                           f"with a text-only model")


class Records:
    """Documents or queries of one split, read in batches; from Parquet files or from memory."""

    def __init__(self, kind: str, ids: list[str], paths: Sequence[Path] = (), items: Sequence | None = None,
                 split: str = ""):
        self.kind, self.ids, self.paths, self._items, self.split = kind, ids, list(paths), items, split

    def __len__(self) -> int:
        return len(self.ids)

    def batches(self, batch_size: int = 64, images: bool = True, check: bool = True) -> Iterator[list]:
        """Lists of Documents/Queries in id-list order; without ``images`` the image bytes are None.
        ``check=False`` passes items with missing image bytes through (the caller reports them)."""
        images_checked = images and check
        if self._items is not None:
            for start in range(0, len(self._items), batch_size):
                batch = list(self._items[start:start + batch_size])
                if images_checked:
                    check_images(batch, self.kind)
                yield batch
            return
        from wikihow_tiir.storage import read_batches

        convert = document_from_row if self.kind == "documents" else (lambda r: query_from_row(r, self.split))
        pending: list = []
        for rows in read_batches(self.paths, batch_size, skip=None if images else "images"):
            pending.extend(convert(row) for row in rows)
            while len(pending) >= batch_size:
                out, pending = pending[:batch_size], pending[batch_size:]
                if images_checked:
                    check_images(out, self.kind)
                yield out
        if pending:
            if images_checked:
                check_images(pending, self.kind)
            yield pending

    def load(self, images: bool = True) -> list:
        return [it for batch in self.batches(256, images=images) for it in batch]


@dataclass(slots=True)
class EvalSplit:
    """What the scorer needs: the corpus, one split's queries, and their qrels."""

    split: str
    documents: Records
    queries: Records
    qrels: dict[str, dict[str, int]]
    source: str = ""
    revision: str | None = None
    notes: list[str] = field(default_factory=list)


def _duplicates(ids: Sequence[str]) -> list[str]:
    return sorted(i for i, n in collections.Counter(ids).items() if n > 1)


def qrels_dict(qrels: Sequence[Qrel]) -> dict[str, dict[str, int]]:
    pairs = collections.Counter((q.query_id, q.corpus_id) for q in qrels)
    dup = sorted(p for p, n in pairs.items() if n > 1)
    if dup:
        raise DatasetError(f"duplicate qrels (query-id, corpus-id): {show_ids(dup)}")
    out: dict[str, dict[str, int]] = {}
    for q in qrels:
        out.setdefault(q.query_id, {})[q.corpus_id] = int(q.score)
    return out


def validate(doc_ids: Sequence[str], query_ids: Sequence[str], qrels: dict[str, dict[str, int]],
             split: str, where: str) -> None:
    """Refuse inconsistent ids (see the module doc)."""
    if not query_ids:
        raise DatasetError(f"split {split!r} of {where} has no queries")
    if not doc_ids:
        raise DatasetError(f"{where} has no documents")
    if dup := _duplicates(doc_ids):
        raise DatasetError(f"duplicate document ids in {where}: {show_ids(dup)}")
    if dup := _duplicates(query_ids):
        raise DatasetError(f"duplicate query ids in split {split!r} of {where}: {show_ids(dup)}")
    docs, queries = set(doc_ids), set(query_ids)
    if unknown := sorted(q for q in qrels if q not in queries):
        raise DatasetError(f"qrels of split {split!r} name queries that are not in its queries: {show_ids(unknown)}")
    dangling = sorted((q, d) for q, judged in qrels.items() for d in judged if d not in docs)
    if dangling:
        raise DatasetError(f"qrels of split {split!r} point at documents missing from the corpus "
                           f"(query-id, corpus-id): {show_ids(dangling)}")
    if no_qrels := sorted(q for q in query_ids if q not in qrels):
        raise DatasetError(f"queries of split {split!r} without qrels: {show_ids(no_qrels)}")
    if no_positive := sorted(q for q, judged in qrels.items() if not any(g > 0 for g in judged.values())):
        raise DatasetError(f"queries of split {split!r} without a relevant document (score > 0): "
                           f"{show_ids(no_positive)}")
    if negative := sorted(q for q, judged in qrels.items() if any(g < 0 for g in judged.values())):
        raise DatasetError(f"qrels of split {split!r} with negative scores: {show_ids(negative)}")


def resolve_dataset(dataset: str | Path) -> tuple[Path, str | None]:
    """A local folder as is; ``ORG/NAME[@REV]`` downloaded from the Hub (or its local cache)."""
    path = Path(dataset)
    if path.exists():
        if not path.is_dir():
            raise DatasetError(f"{dataset} is a file; give the dataset folder")
        return path, None
    m = HUB_ID.match(str(dataset))
    if not m:
        raise DatasetError(f"{dataset}: no such folder, and not a Hub id of the form ORG/NAME[@REVISION]")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    repo, rev = m["repo"], m["rev"]
    try:
        local = snapshot_download(repo_id=repo, repo_type="dataset", revision=rev,
                                  # our layout, or the paper's (its .jsonl files and image folders)
                                  allow_patterns=[*DATASET_PATTERNS, "*.jsonl", "doc_images/*",
                                                  "query_images/*"])
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as exc:
        raise DatasetError(f"dataset {repo}{'@' + rev if rev else ''} is no local folder, is not in the local "
                           f"Hugging Face cache and the Hub cannot be reached (offline: HF_HUB_OFFLINE=1 or no "
                           f"network). Download it on a connected machine or pass a local folder. ({exc})") from exc
    except HfHubHTTPError as exc:
        raise DatasetError(f"dataset {repo}{'@' + rev if rev else ''} could not be downloaded: {exc}") from exc
    return Path(local), rev


def _manifest_revision(root: Path) -> str | None:
    manifest = manifest_path(root)
    if not manifest.exists():
        return None
    from wikihow_tiir.io import sha256_file

    return "manifest-sha256:" + sha256_file(manifest)[:16]


def load_split(dataset: str | Path, split: str = "test", layout: str = "ours") -> EvalSplit:
    """One split of a dataset, validated (see the module doc)."""
    root, rev = resolve_dataset(dataset)
    if layout == "paper":
        return _load_paper(root, split, rev)
    if layout != "ours":
        raise DatasetError(f"unknown layout {layout!r}; choose 'ours' or 'paper'")
    from wikihow_tiir.storage import read_rows

    doc_files = corpus_files(root)
    if not doc_files:
        hint = " (it looks like the paper's layout: pass --layout paper)" if (root / "docs.jsonl").exists() else ""
        raise DatasetError(f"{root}: no corpus/*.parquet files{hint}")
    query_files = split_files(root, "queries", split)
    qrel_files = split_files(root, "qrels", split)
    if not query_files:
        found = sorted(splits_on_disk(root).get("queries", ()))
        raise DatasetError(f"split {split!r} has no queries in {root} (splits found: {found or 'none'})")
    if not qrel_files:
        raise DatasetError(f"split {split!r} has no qrels files in {config_dir(root, 'qrels')}")
    doc_ids = [r["id"] for r in read_rows(doc_files, columns=["id"])]
    query_ids = [r["id"] for r in read_rows(query_files, columns=["id"])]
    from wikihow_tiir.model import qrel_from_row

    qrels = qrels_dict([qrel_from_row(r) for r in read_rows(qrel_files)])
    validate(doc_ids, query_ids, qrels, split, str(root))
    return EvalSplit(split=split, documents=Records("documents", doc_ids, paths=doc_files),
                     queries=Records("queries", query_ids, paths=query_files, split=split), qrels=qrels,
                     source=str(dataset), revision=rev or _manifest_revision(root))


def _load_paper(root: Path, split: str, rev: str | None) -> EvalSplit:
    from wikihow_tiir.publish.paper_layout import read_paper_layout

    # the paper's layout holds one split and says not which: its queries are taken as ``split``.
    # Missing images are kept as positions without bytes, so text-only models still run and
    # image models get an error naming the ids.
    try:
        documents, queries, qrels = read_paper_layout(root, split=split, require_images=False)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{root} (paper layout): {exc}") from exc
    chosen = [q for q in queries if (q.split or split) == split]
    if not chosen:
        raise DatasetError(f"the paper-layout folder {root} has no queries with qrels")
    qd = qrels_dict(qrels)
    doc_ids = [d.id for d in documents]
    validate(doc_ids, [q.id for q in chosen], qd, split, f"{root} (paper layout)")
    return EvalSplit(split=split, documents=Records("documents", doc_ids, items=documents),
                     queries=Records("queries", [q.id for q in chosen], items=chosen, split=split), qrels=qd,
                     source=str(root), revision=rev, notes=["paper layout"])


# ISO 639-1 (our ``lang``) -> MTEB's ISO 639-3 + script, for the languages wikiHow is written in
_MTEB_LANGS = {
    "ar": "ara-Arab", "cs": "ces-Latn", "de": "deu-Latn", "en": "eng-Latn", "es": "spa-Latn", "fr": "fra-Latn",
    "hi": "hin-Deva", "id": "ind-Latn", "it": "ita-Latn", "ja": "jpn-Jpan", "ko": "kor-Hang", "nl": "nld-Latn",
    "pt": "por-Latn", "ru": "rus-Cyrl", "th": "tha-Thai", "tr": "tur-Latn", "vi": "vie-Latn", "zh": "zho-Hans",
}


def mteb_language(lang: str) -> str:
    """``ja`` -> ``jpn-Jpan``; a code we do not know is kept as it is (never guessed)."""
    base = (lang or "").split("-")[0].split("_")[0].lower()
    return _MTEB_LANGS.get(base, lang or "und")


def _record_langs(records: Records) -> set[str]:
    if records._items is not None:
        return {it.lang for it in records._items}
    from wikihow_tiir.storage import column_values

    return set(column_values(records.paths, "lang"))


def languages(ev: EvalSplit) -> list[str]:
    """The MTEB language codes of the split's queries and the corpus, sorted (from the data, not assumed)."""
    return sorted({mteb_language(x) for x in _record_langs(ev.queries) | _record_langs(ev.documents) if x})


def describe(ev: EvalSplit) -> dict:
    return {"source": ev.source, "split": ev.split, "revision": ev.revision, "n_documents": len(ev.documents),
            "n_queries": len(ev.queries), "n_qrels": sum(len(v) for v in ev.qrels.values())}


