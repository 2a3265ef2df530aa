"""Incremental versions: what changed since the previous version of a dataset, and which version comes next.

A build may name its previous version (``wikihow-tiir build --previous``): a dataset folder, an
fsspec URL of one (``s3://bucket/builds/v1``), or a Hub dataset ``ORG/NAME@vX.Y.Z`` (``ORG/NAME``:
its latest version tag). Then

* the split is **sticky**: an article keeps the side it had in the previous version (a new article
  is drawn as usual), so no test query moves to train between versions; `validate` refuses a
  dataset whose train split holds an article of the previous test split;
* the manifest gets a ``changes`` section: documents added, removed and changed (by the content
  hash of their row, pictures by their sha256), queries carried over (same id, same content), changed,
  new and removed, and the version bump it calls for; the card says it under "Changes since vX".

Documents whose inputs did not change keep their ids and their bytes (ids come from the article id
and the section; rows from the page and the settings), so a re-release of an unchanged crawl writes
the same data files. Only the columns needed are read from the previous version (over HTTP range
requests for the Hub and object storage), never its pictures.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wikihow_tiir import layout
from wikihow_tiir.errors import WikihowTiirError
from wikihow_tiir.io import stable_hash

# what a row's content is (the pictures by their sha256 in image_meta); derived columns stay out, so
# adding one to the schema is a schema change, not a change of every document
DOCUMENT_FIELDS = ("id", "article_id", "url", "lang", "goal", "section_title", "section_kind", "section_index",
                   "categories", "texts", "image_meta")
QUERY_FIELDS = ("positive_id", "article_id", "lang", "texts", "image_meta", "image_prompts")
_HUB_ID = re.compile(r"^([A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@([\w.+/-]+))?$")
_SEMVER = re.compile(r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
BUMPS = ("patch", "minor", "major")


class ChangelogError(WikihowTiirError):
    reason = "previous-version"


def parse_version(text: str) -> tuple[int, int, int] | None:
    m = _SEMVER.match(str(text or ""))
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def bump(version: str, kind: str) -> str:
    """``bump("1.2.3", "minor") == "1.3.0"``."""
    major, minor, patch = parse_version(version) or (0, 0, 0)
    if kind == "major":
        return f"{major + 1}.0.0"
    if kind == "minor":
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def latest_version(tags: Iterable[str]) -> str | None:
    """The greatest ``vX.Y.Z`` among these tag names (without its ``v``), or None."""
    found = [(v, t.removeprefix("v")) for t in tags if (v := parse_version(t)) is not None]
    return max(found)[1] if found else None


def content_hash(row: dict[str, Any], fields: tuple[str, ...]) -> str:
    return stable_hash([[f, row.get(f)] for f in fields if f in row], length=32)


# --------------------------------------------------------------------------- the previous version


@dataclass
class PreviousVersion:
    """A published or built version, read column by column (never its pictures)."""

    location: str  # as the user named it, credentials dropped
    version: str | None  # "1.0.0": the release stamped in its manifest, or the tag it was named by
    manifest: dict[str, Any]
    _reader: Any = field(repr=False, default=None)  # rel path -> pyarrow.Table of some columns

    @property
    def schema_version(self) -> str | None:
        return self.manifest.get("schema_version")

    @property
    def label(self) -> str:
        return f"v{self.version}" if self.version else self.location

    def _files(self, config: str, split: str | None = None) -> list[str]:
        files = sorted(self.manifest.get("files") or {})
        return [f for f in files if layout.split_of(f)[0] == config and (split is None or layout.split_of(f)[1] == split)]

    def _rows(self, config: str, split: str | None, columns: tuple[str, ...]) -> Iterator[dict[str, Any]]:
        for rel in self._files(config, split):
            yield from self._reader(rel, columns).to_pylist()

    def documents(self) -> dict[str, str]:
        """``{document id: content hash}``."""
        return {r["id"]: content_hash(r, DOCUMENT_FIELDS) for r in self._rows("corpus", None, DOCUMENT_FIELDS)}

    def queries(self) -> dict[str, tuple[str, str, str]]:
        """``{query id: (split, article id, content hash)}``."""
        out: dict[str, tuple[str, str, str]] = {}
        for split in layout.QUERY_SPLITS:
            for r in self._rows("queries", split, ("id", *QUERY_FIELDS)):
                out[r["id"]] = (split, r["article_id"], content_hash(r, QUERY_FIELDS))
        return out

    def article_sides(self) -> dict[str, str]:
        """``{article id: split}`` of the articles that had queries."""
        return {a: s for s, a, _ in sorted(self.queries().values())}


def _reader_for(root: Path | Any):
    from wikihow_tiir.storage import read_columns

    def read(rel: str, columns: tuple[str, ...]):
        if isinstance(root, Path):
            return read_columns(root / rel, columns)
        with root.fs.open(root.key(rel), "rb") as f:
            return read_columns(f, columns)

    return read


def open_previous(spec: str) -> PreviousVersion:
    """The previous version named by ``spec`` (see the module's docstring); a ChangelogError says why it
    cannot be read."""
    from wikihow_tiir.remote import RemoteFolder, describe, is_remote

    spec = str(spec).strip()
    local = Path(spec)
    hub = _HUB_ID.match(spec)
    try:
        if is_remote(spec):
            folder: Any = RemoteFolder(spec)
            raw = folder.read_bytes(layout.MANIFEST)
            name, version = describe(spec), None
        elif local.is_dir() or not hub:
            if not local.is_dir():
                raise ChangelogError(f"the previous version {spec}: no such folder (name a dataset folder, an "
                                     "fsspec URL, or a Hub dataset ORG/NAME@vX.Y.Z)")
            folder, name, version = local, spec, None
            raw = layout.manifest_path(local).read_bytes()
        else:
            repo, revision = hub.group(1), hub.group(2)
            if revision is None:
                revision = _latest_tag(repo)
            folder = RemoteFolder(f"hf://datasets/{repo}@{revision}")
            raw = folder.read_bytes(layout.MANIFEST)
            name = f"{repo}@{revision}"
            version = revision.removeprefix("v") if parse_version(revision) else None
    except ChangelogError:
        raise
    except FileNotFoundError:
        raise ChangelogError(f"the previous version {describe(spec)} has no {layout.MANIFEST}: it is not a "
                             "wikihow-tiir dataset") from None
    except Exception as exc:  # noqa: BLE001 - offline mode, HTTP, access: one line
        raise ChangelogError(f"the previous version {describe(spec)} cannot be read ({type(exc).__name__}: "
                             f"{(str(exc).splitlines() or [''])[0][:200]})") from None
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except ValueError:
        raise ChangelogError(f"the previous version {describe(spec)}: {layout.MANIFEST} is not JSON") from None
    if not isinstance(manifest, dict):
        raise ChangelogError(f"the previous version {describe(spec)}: {layout.MANIFEST} is not a JSON object")
    version = manifest.get("release") or version
    return PreviousVersion(location=name, version=version, manifest=manifest, _reader=_reader_for(folder))


def _latest_tag(repo: str) -> str:
    from huggingface_hub import HfApi

    tags = [t.name for t in HfApi().list_repo_refs(repo, repo_type="dataset").tags]
    latest = latest_version(tags)
    if latest is None:
        raise ChangelogError(f"{repo} has no version tag vX.Y.Z to compare with; name one: {repo}@vX.Y.Z")
    return f"v{latest}"


# --------------------------------------------------------------------------- the changes


def _current_documents(root: Path) -> dict[str, str]:
    from wikihow_tiir.storage import read_rows

    cols = list(DOCUMENT_FIELDS)
    return {r["id"]: content_hash(r, DOCUMENT_FIELDS) for r in read_rows(layout.corpus_files(root), cols)}


def _current_queries(root: Path) -> dict[str, tuple[str, str, str]]:
    from wikihow_tiir.storage import read_rows

    out: dict[str, tuple[str, str, str]] = {}
    for split in layout.QUERY_SPLITS:
        for r in read_rows(layout.split_files(root, "queries", split), ["id", *QUERY_FIELDS]):
            out[r["id"]] = (split, r["article_id"], content_hash(r, QUERY_FIELDS))
    return out


def compute_changes(previous: PreviousVersion, root: Path, schema_version: str) -> dict[str, Any]:
    """The manifest's ``changes`` section for the dataset at ``root`` against ``previous``."""
    old_docs, new_docs = previous.documents(), _current_documents(root)
    added = sorted(set(new_docs) - set(old_docs))
    removed = sorted(set(old_docs) - set(new_docs))
    changed = sorted(i for i in set(new_docs) & set(old_docs) if new_docs[i] != old_docs[i])
    old_q, new_q = previous.queries(), _current_queries(root)
    carried = sorted(i for i in set(new_q) & set(old_q) if new_q[i][2] == old_q[i][2])
    q_changed = sorted(i for i in set(new_q) & set(old_q) if new_q[i][2] != old_q[i][2])
    test_articles = sorted({a for s, a, _ in old_q.values() if s == "test"})
    moved = sorted(i for i, (s, a, _) in new_q.items() if s == "train" and a in set(test_articles))
    schema_changed = bool(previous.schema_version) and previous.schema_version != schema_version
    kind = "major" if schema_changed else "minor" if added else "patch"
    return {
        "previous": {"location": previous.location, "version": previous.version,
                     "schema_version": previous.schema_version, "test_articles": test_articles},
        "schema_changed": schema_changed,
        "documents": {"added": added, "removed": removed, "changed": changed,
                      "unchanged": len(set(new_docs) & set(old_docs)) - len(changed)},
        "queries": {"carried_over": len(carried), "changed": q_changed, "new": sorted(set(new_q) - set(old_q)),
                    "removed": sorted(set(old_q) - set(new_q)), "moved_test_to_train": moved},
        "bump": kind,
        "next_version": bump(previous.version, kind) if parse_version(previous.version or "") else None,
    }


def is_empty(changes: dict[str, Any]) -> bool:
    """Nothing added, removed or changed, documents and queries alike."""
    d, q = changes.get("documents") or {}, changes.get("queries") or {}
    return not any(d.get(k) for k in ("added", "removed", "changed")) and \
        not any(q.get(k) for k in ("changed", "new", "removed")) and not changes.get("schema_changed")


def previous_test_problems(train_rows: Iterable[dict[str, Any]], test_articles: Iterable[str], label: str) -> list[str]:
    """Validation: no train query of an article that was in the previous version's test split."""
    test = set(test_articles)
    return [f"queries/train: query {r['id']} is of article {r['article_id']}, which was in the test split of "
            f"{label}: a test article never moves to train between versions" for r in train_rows
            if r.get("article_id") in test]


def suggest_next(latest: str, latest_manifest: dict[str, Any] | None, manifest: dict[str, Any]) -> tuple[str, str]:
    """The version to publish after ``latest`` and why: major for a changed schema, minor for new
    documents, patch for fixes."""
    changes = manifest.get("changes") or {}
    schema_old = (latest_manifest or {}).get("schema_version")
    if (schema_old and schema_old != manifest.get("schema_version")) or \
            (changes.get("previous", {}).get("version") == latest and changes.get("schema_changed")):
        return bump(latest, "major"), "the schema changed"
    if changes.get("previous", {}).get("version") == latest:
        added = (changes.get("documents") or {}).get("added") or []
    else:
        def rows(m: dict[str, Any] | None) -> int:
            return sum(int((e or {}).get("rows") or 0) for f, e in ((m or {}).get("files") or {}).items()
                       if f.startswith("corpus/"))
        added = [None] * max(0, rows(manifest) - rows(latest_manifest))
    if added:
        return bump(latest, "minor"), f"{len(added)} new document(s)"
    return bump(latest, "patch"), "no new documents (fixes)"


# --------------------------------------------------------------------------- the card


def card_section(manifest: dict[str, Any], shown: int = 20) -> list[str]:
    """The card's "Changes since vX" lines (empty when the build named no previous version)."""
    changes = manifest.get("changes")
    if not isinstance(changes, dict) or not changes.get("previous"):
        return []
    prev = changes["previous"]
    label = f"v{prev['version']}" if prev.get("version") else str(prev.get("location"))
    d, q = changes.get("documents") or {}, changes.get("queries") or {}

    def ids(items: list[str]) -> str:
        if not items:
            return ""
        head = ", ".join(f"`{i}`" for i in items[:shown])
        return f": {head}" + (f" and {len(items) - shown:,} more" if len(items) > shown else "")

    lines = [f"## Changes since {label}", ""]
    if is_empty(changes):
        lines += [f"None: the documents and queries are those of {label}.", ""]
    lines += [f"- **Documents**: {len(d.get('added') or []):,} added{ids(d.get('added') or [])}",
              f"  - {len(d.get('removed') or []):,} removed{ids(d.get('removed') or [])}",
              f"  - {len(d.get('changed') or []):,} changed{ids(d.get('changed') or [])}",
              f"  - {int(d.get('unchanged') or 0):,} unchanged (same id, same content)",
              f"- **Queries**: {int(q.get('carried_over') or 0):,} carried over (same id, same content), "
              f"{len(q.get('new') or []):,} new, {len(q.get('changed') or []):,} changed, "
              f"{len(q.get('removed') or []):,} removed",
              ("- **Splits**: every article keeps its side; no test query moved to train." if not q.get("moved_test_to_train")
               else f"- **Splits**: {len(q['moved_test_to_train']):,} train queries are of articles of the test split of "
                    f"{label} (`validate` refuses this)"),
              f"- **Schema**: {'changed (a major version)' if changes.get('schema_changed') else 'unchanged'}"]
    if changes.get("next_version"):
        lines.append(f"- **Version**: a {changes.get('bump')} release after {label}: "
                     f"{changes['next_version']} is the next number.")
    return lines + [""]
