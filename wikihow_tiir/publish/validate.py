"""Checks a built dataset folder before anything leaves the machine.

:func:`validate_dataset` returns a list of problems (empty = valid), each one sentence naming the
file and what is wrong, so a refused publish tells the maintainer exactly what to fix:

* the card: YAML header parses, declares the three configs with data files that exist, the licence
  and the ``Image`` features of :mod:`wikihow_tiir.model`;
* the manifest: parses, lists every data file with the sha256 / size / row count found on disk;
* the rows: ids unique, every query's ``positive_id`` points at a corpus document of the query's
  article, every query has text and at least one qrel, every qrel points at its query's positive and
  appears once, no article has queries in two splits (the split stage's leak check), interleaved
  positions well-formed, every image decodes, no text of corpus or queries holds a control
  character, U+FFFD or mojibake, the derived ``text`` column equals the text positions joined (a
  schema 1.0 build has no ``text`` column and is checked against the 1.0 features);
* between versions: no train query of an article that was in the previous version's test split
  (:mod:`wikihow_tiir.changelog`);
* ``load_dataset(<dir>, config)`` for each config reads back exactly the rows on disk;
* the reference scorer (``scorer/``, when the build has one): its files match the manifest's hashes, it was
  trained on this folder's corpus and train split, its test numbers are of this test split, and (with the
  read-back) it loads and embeds with its recorded dimensions (``wikihow_tiir.mme.scorer.validate_scorer``).
"""

from __future__ import annotations

import functools
import io
import json
import re
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from wikihow_tiir import layout
from wikihow_tiir.io import sha256_file
from wikihow_tiir.layout import CONFIGS, data_files
from wikihow_tiir.publish.card import HUB_LICENSE_ID, parse_card
from wikihow_tiir.storage import column_names, read_row_groups, read_table, row_count

MAX_LISTED = 10  # per kind of problem, so a broken build gives a readable list


def _limited(problems: list[str], found: list[str], what: str) -> None:
    problems.extend(found[:MAX_LISTED])
    if len(found) > MAX_LISTED:
        problems.append(f"... and {len(found) - MAX_LISTED} more {what}")


def _check_card(root: Path, splits_on_disk: dict[str, set[str]]) -> list[str]:
    path = layout.card_path(root)
    if not path.is_file():
        return ["README.md (the dataset card) is missing"]
    try:
        meta, _ = parse_card(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        return [f"README.md: {exc}"]
    problems = []
    if meta.get("license") != HUB_LICENSE_ID:
        problems.append(f"README.md: license is {meta.get('license')!r}, expected {HUB_LICENSE_ID!r}")
    configs = {c.get("config_name"): c for c in meta.get("configs") or [] if isinstance(c, dict)}
    for config in CONFIGS:
        if config not in configs:
            problems.append(f"README.md: configs has no {config!r} config")
            continue
        declared = {}
        for df in configs[config].get("data_files") or []:
            declared[df.get("split")] = df.get("path")
        for split, pattern in declared.items():
            if not pattern or not list(root.glob(pattern)):
                problems.append(f"README.md: config {config!r} split {split!r} points at {pattern!r}, "
                                "which matches no file")
        missing = splits_on_disk.get(config, set()) - set(declared)
        if missing:
            problems.append(f"README.md: config {config!r} does not declare split(s) {sorted(missing)} "
                            "found on disk")
    try:
        from datasets import Features

        from wikihow_tiir.model import features, legacy_features

        infos = {i.get("config_name"): i for i in meta.get("dataset_info") or [] if isinstance(i, dict)}
        for config in CONFIGS:
            info = infos.get(config)
            # a schema 1.0 build (no derived ``text`` column in its files) declares the 1.0 features
            expected = features(config) if _has_text_column(root, config) else legacy_features(config)
            if info is None or "features" not in info:
                problems.append(f"README.md: dataset_info declares no features for {config!r}")
            elif Features._from_yaml_list(info["features"]) != expected:
                problems.append(f"README.md: dataset_info features of {config!r} differ from the data model")
    except Exception as exc:  # a malformed features block raises anything from KeyError to TypeError
        problems.append(f"README.md: dataset_info does not parse as datasets features ({exc})")
    return problems


def _has_text_column(root: Path, config: str) -> bool:
    files = layout.config_files(root, config)
    if config == "qrels" or not files:
        return True
    try:
        return "text" in column_names(files[0])
    except Exception:  # an unreadable file is reported by the manifest check
        return True


def _check_manifest(root: Path) -> tuple[list[str], dict[str, Any] | None]:
    path = layout.manifest_path(root)
    if not path.is_file():
        return ["manifest.json is missing"], None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        return [f"manifest.json does not parse: {exc}"], None
    if not isinstance(manifest, dict):
        return ["manifest.json is not a JSON object"], None
    problems = []
    listed = manifest.get("files")
    if not isinstance(listed, dict) or not listed:
        return ["manifest.json has no 'files' list of data files with their sha256"], manifest
    on_disk = {p.as_posix() for p in data_files(root)}
    for rel in sorted(set(listed) - on_disk):
        problems.append(f"{rel}: listed in manifest.json but missing on disk")
    for rel in sorted(on_disk - set(listed)):
        problems.append(f"{rel}: on disk but not listed in manifest.json")
    for rel in sorted(set(listed) & on_disk):
        entry = listed[rel] or {}
        p = root / rel
        if entry.get("bytes") is not None and int(entry["bytes"]) != p.stat().st_size:
            problems.append(f"{rel}: {p.stat().st_size} bytes, manifest says {entry['bytes']}")
        if sha256_file(p) != entry.get("sha256"):
            problems.append(f"{rel}: sha256 differs from manifest.json (file changed after the build?)")
        try:
            rows = row_count(p)
        except Exception as exc:
            problems.append(f"{rel}: not a readable Parquet file ({exc})")
            continue
        if entry.get("rows") is not None and int(entry["rows"]) != rows:
            problems.append(f"{rel}: {rows} rows, manifest says {entry['rows']}")
    return problems, manifest


def _read(root: Path, config: str, split: str, columns: list[str] | None = None) -> pa.Table:
    return read_table(layout.split_files(root, config, split), columns)


def _row_groups(root: Path, config: str, split: str) -> Iterator[pa.Table]:
    """The rows of a split one row group at a time (:func:`read_row_groups`)."""
    return read_row_groups(layout.split_files(root, config, split))


# C0 and C1 control characters (and DEL) except tab and newline: they never belong in wikiHow text and
# usually mean a broken parse or binary bytes read as text
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def text_fault(text: str) -> str | None:
    """What is wrong with one text of the corpus or the queries, or None: a control character, the
    replacement character U+FFFD (bytes lost in a decode), or mojibake (UTF-8 decoded as cp1252 /
    Latin-1, e.g. ``Ã©`` for ``é``, ``â€™`` for ``’``), which :mod:`ftfy` recognises."""
    from ftfy.badness import BADNESS_RE, is_bad

    m = _CONTROL.search(text)
    if m:
        return f"holds the control character U+{ord(m.group()):04X}"
    if "\ufffd" in text:
        return "holds the replacement character U+FFFD (bytes lost when it was decoded)"
    if is_bad(text):
        bad = BADNESS_RE.search(text)
        near = f" near {text[max(0, bad.start() - 12):bad.end() + 12]!r}" if bad else ""
        return f"looks like mojibake (UTF-8 decoded as another encoding){near}"
    return None


def _text_problems(row: dict[str, Any], where: str, fields: tuple[str, ...]) -> list[str]:
    found = []
    for name in fields:
        value = row.get(name)
        items = list(enumerate(value or [])) if isinstance(value, list) else [(None, value)]
        for i, text in items:
            fault = text_fault(text) if isinstance(text, str) else None
            if fault:
                at = f"{name}[{i}]" if i is not None else name
                found.append(f"{where}: row {row['id']!r} {at} {fault}")
    return found


CORPUS_TEXT_FIELDS = ("goal", "section_title", "categories", "texts")
QUERY_TEXT_FIELDS = ("texts", "image_prompts")


def _check_rows(root: Path, splits: dict[str, set[str]]) -> list[str]:
    from PIL import Image

    from wikihow_tiir.model import interleaved_text
    from wikihow_tiir.split import articles_in_several_splits

    problems: list[str] = []
    corpus_ids: set[str] = set()
    article_of_doc: dict[str, str] = {}
    positive_of: dict[str, dict[str, str]] = {}  # split -> query id -> positive_id
    query_articles: dict[str, dict[str, str]] = {}  # split -> article id -> first query id seen

    def check_interleaved(table: pa.Table, where: str, bad_shape: list[str], bad_image: list[str]) -> None:
        for row in table.select(["id", "texts", "images", "image_meta"]).to_pylist():
            texts, images, metas = row["texts"] or [], row["images"] or [], row["image_meta"] or []
            if not (len(texts) == len(images) == len(metas)):
                bad_shape.append(f"{where}: row {row['id']!r} has texts/images/image_meta of different lengths")
                continue
            for i, (t, im, m) in enumerate(zip(texts, images, metas, strict=True)):
                if (t is None) == (m is None):
                    bad_shape.append(f"{where}: row {row['id']!r} position {i} must hold exactly one of text / image")
                elif im is not None and im.get("bytes") is not None:
                    try:
                        with Image.open(io.BytesIO(im["bytes"])) as pic:
                            pic.load()
                    except Exception as exc:
                        bad_image.append(f"{where}: row {row['id']!r} image at position {i} does not decode ({exc})")

    def check_texts(table: pa.Table, where: str, fields: tuple[str, ...], found: list[str]) -> None:
        fields = tuple(f for f in fields if f in table.column_names)
        for row in table.select(["id", *fields]).to_pylist():
            found += _text_problems(row, where, fields)

    def check_stale(table: pa.Table, where: str, found: list[str]) -> None:
        if "text" in table.column_names:  # derived: a tool that edited texts and kept the old text
            found += [f"{where}: row {row['id']!r} text is not its text positions joined with newlines "
                      f"(the derived column is stale)" for row in table.select(["id", "text", "texts"]).to_pylist()
                      if row["text"] != interleaved_text(row["texts"] or [])]

    def check_rows(config: str, split: str, fields: tuple[str, ...], each=None) -> list[str]:
        """Problems of the positions, pictures and texts of a split, read a row group at a time;
        ``each(table)`` sees every row group too."""
        where = f"{config}/{split}"
        found: list[str] = []
        bad_shape: list[str] = []
        bad_image: list[str] = []
        bad_text: list[str] = []
        stale: list[str] = []
        for table in _row_groups(root, config, split):
            if each is not None:
                each(table)
            check_interleaved(table, where, bad_shape, bad_image)
            check_texts(table, where, fields, bad_text)
            check_stale(table, where, stale)
        _limited(found, bad_shape, "malformed positions")
        _limited(found, bad_image, "undecodable images")
        _limited(found, bad_text, "bad texts")
        _limited(found, stale, "stale text columns")
        return found

    def corpus_ids_of(ids: list[str], table: pa.Table) -> None:
        got = table.column("id").to_pylist()
        ids.extend(got)
        article_of_doc.update(zip(got, table.column("article_id").to_pylist(), strict=True))

    for split in sorted(splits.get("corpus", ())):
        ids: list[str] = []
        rows = check_rows("corpus", split, CORPUS_TEXT_FIELDS, functools.partial(corpus_ids_of, ids))
        dup = [i for i, n in Counter(ids).items() if n > 1]
        _limited(problems, [f"corpus/{split}: id {i!r} appears more than once" for i in dup], "duplicate ids")
        problems.extend(rows)
        corpus_ids.update(ids)
    if not corpus_ids:
        problems.append("corpus: no documents")
    all_qids: Counter[str] = Counter()
    for split in sorted(splits.get("queries", ())):
        where = f"queries/{split}"
        table = _read(root, "queries", split, ["id", "positive_id", "article_id", "texts"])
        ids = table.column("id").to_pylist()
        all_qids.update(ids)
        positive_of[split] = dict(zip(ids, table.column("positive_id").to_pylist(), strict=True))
        dangling, wrong_article, empty = [], [], []
        articles = query_articles.setdefault(split, {})
        for row in table.select(["id", "positive_id", "article_id", "texts"]).to_pylist():
            q, p, a = row["id"], row["positive_id"], row["article_id"]
            articles.setdefault(a, q)
            if p not in corpus_ids:
                dangling.append(f"{where}: query {q!r} has positive_id {p!r}, which is not in the corpus")
            elif article_of_doc[p] != a:
                wrong_article.append(f"{where}: query {q!r} has article_id {a!r}, but its positive document "
                                     f"{p!r} is of article {article_of_doc[p]!r}")
            if not any(t and t.strip() for t in row["texts"] or []):
                empty.append(f"{where}: query {q!r} has no text (a query needs words, not only images)")
        _limited(problems, dangling, "dangling positive ids")
        _limited(problems, wrong_article, "queries with another article than their positive")
        _limited(problems, empty, "queries without text")
        problems.extend(check_rows("queries", split, QUERY_TEXT_FIELDS))
    _limited(problems, [f"queries: id {q!r} appears more than once" for q, n in all_qids.items() if n > 1],
             "duplicate query ids")
    # the article leak check of the split stage: an article's queries all on one side, so a model never
    # trains on the article it is tested on
    leaks = articles_in_several_splits({s: set(a) for s, a in query_articles.items()})
    _limited(problems, [f"queries: article {a!r} has queries in more than one split ("
                        + "; ".join(f"{s}: {query_articles[s][a]!r}" for s in sides)
                        + "); an article must be on one side only" for a, sides in leaks.items()],
             "articles in more than one split")
    judged: dict[str, set[str]] = {}
    for split in sorted(splits.get("qrels", ())):
        where = f"qrels/{split}"
        table = _read(root, "qrels", split, ["query-id", "corpus-id"])
        known = positive_of.get(split, {})
        pairs = list(zip(table.column("query-id").to_pylist(), table.column("corpus-id").to_pylist(), strict=True))
        judged[split] = {q for q, _ in pairs}
        bad = []
        for q, d in pairs:
            if q not in known:
                bad.append(f"{where}: query-id {q!r} is not a {split} query")
            if d not in corpus_ids:
                bad.append(f"{where}: corpus-id {d!r} is not in the corpus")
            elif q in known and d != known[q]:
                bad.append(f"{where}: query-id {q!r} points at corpus-id {d!r}, but the query's positive_id "
                           f"is {known[q]!r}")
        _limited(problems, bad, "dangling qrels")
        _limited(problems, [f"{where}: the row (query-id {q!r}, corpus-id {d!r}) appears {n} times"
                            for (q, d), n in Counter(pairs).items() if n > 1], "duplicate qrels")
    for split in sorted(positive_of):
        unjudged = [q for q in positive_of[split] if q not in judged.get(split, set())]
        _limited(problems, [f"queries/{split}: query {q!r} has no row in qrels/{split}" for q in unjudged],
                 "queries without qrels")
    return problems


def _check_load(root: Path, splits: dict[str, set[str]]) -> list[str]:
    """`load_dataset(<dir>, config)` must give back exactly the rows on disk, images as Image features."""
    import datasets

    problems: list[str] = []
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # validation output is the problem list, not progress bars
    try:
        _load_all(root, splits, problems)
    finally:
        if bars:
            datasets.enable_progress_bars()
    return problems


def _load_all(root: Path, splits: dict[str, set[str]], problems: list[str]) -> None:
    import datasets

    with tempfile.TemporaryDirectory(prefix="wikihow-tiir-validate-") as cache:
        for config in CONFIGS:
            if not splits.get(config):
                continue
            try:
                dd = datasets.load_dataset(str(root), config, cache_dir=cache)
            except Exception as exc:
                problems.append(f"load_dataset({config!r}) fails: {type(exc).__name__}: {exc}")
                continue
            if set(dd) != splits[config]:
                problems.append(f"load_dataset({config!r}) gives splits {sorted(dd)}, files have {sorted(splits[config])}")
            for split in sorted(set(dd) & splits[config]):
                ds = dd[split]
                expected = _read(root, config, split)
                if ds.num_rows != expected.num_rows:
                    problems.append(f"load_dataset({config!r})[{split!r}]: {ds.num_rows} rows, files have "
                                    f"{expected.num_rows}")
                    continue
                got = ds.data.table.select(expected.column_names).replace_schema_metadata(None)
                if not got.equals(expected.replace_schema_metadata(None)):
                    problems.append(f"load_dataset({config!r})[{split!r}] reads back rows that differ from the files")
                image_cols = [k for k, v in ds.features.items() if "Image" in repr(v)]
                if config != "qrels" and "images" not in image_cols:
                    problems.append(f"load_dataset({config!r}): 'images' is not decoded as Image features")


def _check_previous(root: Path, splits: dict[str, set[str]], previous: Any) -> list[str]:
    """No train query of an article that was in the test split of the previous version: ``previous`` (a
    :class:`~wikihow_tiir.changelog.PreviousVersion`, or where one is), else the previous version the
    manifest names (its test articles are recorded there)."""
    from wikihow_tiir.changelog import ChangelogError, open_previous, previous_test_problems

    if previous is not None:
        try:
            prev = previous if hasattr(previous, "article_sides") else open_previous(str(previous))
        except ChangelogError as exc:
            return [str(exc)]
        test = {a for a, s in prev.article_sides().items() if s == "test"}
        label = prev.label
    else:
        try:
            manifest = json.loads(layout.manifest_path(root).read_text(encoding="utf-8"))
            recorded = ((manifest.get("changes") or {}).get("previous") or {})
        except (OSError, ValueError, AttributeError):
            return []
        if not isinstance(recorded, dict) or not recorded.get("test_articles"):
            return []
        test = set(recorded["test_articles"])
        label = f"v{recorded['version']}" if recorded.get("version") else str(recorded.get("location"))
    if "train" not in splits.get("queries", set()):
        return []
    rows = _read(root, "queries", "train", ["id", "article_id"]).to_pylist()
    found: list[str] = []
    _limited(found, previous_test_problems(rows, test, label), "test articles moved to train")
    return found


def validate_dataset(dataset_dir: Path, check_load: bool = True, previous: Any = None) -> list[str]:
    """Problems found in a built dataset folder; an empty list means it may be published. ``previous``:
    the previous version to check the splits against (default: the one the manifest names)."""
    root = Path(dataset_dir)
    if not root.is_dir():
        return [f"{root}: not a folder"]
    splits = layout.splits_on_disk(root)
    problems: list[str] = []
    for config in CONFIGS:
        if not splits.get(config):
            problems.append(f"{config}/: no Parquet files")
    manifest_problems, manifest = _check_manifest(root)
    problems += manifest_problems
    problems += _check_card(root, splits)
    if not splits.get("corpus"):
        return problems
    try:
        problems += _check_rows(root, splits)
        problems += _check_previous(root, splits, previous)
    except Exception as exc:  # unreadable files or wrong columns: report, don't crash the caller
        problems.append(f"rows could not be checked: {type(exc).__name__}: {exc}")
        return problems
    from wikihow_tiir.mme.scorer import validate_scorer

    problems += validate_scorer(root, manifest, check_load=check_load and not problems)
    if check_load and not problems:  # loading a broken folder only repeats what was found
        problems += _check_load(root, splits)
    return problems
