"""The layout of a dataset (build) folder: every sub-path, file name and shard glob in one place.

```
<root>/
  README.md  manifest.json                      the card and the manifest          } the dataset:
  corpus/corpus-00000-of-00001.parquet          config "corpus", split "corpus"   } what `publish`
  queries/{train,test}-00000-of-0000N.parquet   config "queries"                  } uploads
  qrels/{train,test}-00000-of-0000N.parquet     config "qrels"                    }
  rejects/<stage>.jsonl                         what was dropped, with its reason
  report/index.html, report/gallery-NNN.html    the build report
  audit/{decisions,applied,stale}.jsonl         people's decisions (`wikihow-tiir audit --apply`)
  eval/                                         `make evaluate`'s output (`wikihow-tiir evaluate -o`)
  scorer/                                       the reference scorer (model.safetensors, config.json, tokenizer,
                                                results.json, README.md): released with the data
  work/                                         resumable intermediate state, never published:
    wikihow-tiir-build.json                     the folder is a build (written when one starts)
    corpus/shard-NNNNN.<kind>                   corpus shards (+ .done markers), context.parquet, corpus-id
    corpus/images/<sha[:2]>/<sha256>.jpg        every normalized picture once, by content (the renderer's)
    queries/shard-NNNNN.<kind>                  query shards (+ .done markers)
    generate/                                   the generator's stage records, request cache, pool vectors
    filter/                                     kept.jsonl, embeddings/ (the filter's cache_dir)
    generate-cli/                               `wikihow-tiir generate`'s default output folder: work/queries/,
                                                work/generate/ as here, rejects.jsonl, stats.json
```

Readers find the files of one split with :func:`split_files` (the pattern the card declares to
``load_dataset``); writers name shards with :func:`shard_name` and replace only files of that form
(:func:`own_shard_files`), so a file the build did not write is never deleted. A new output file
gets its name here and nowhere else.
"""

from __future__ import annotations

import re
from pathlib import Path

# --------------------------------------------------------------------------- the dataset

CONFIGS = ("corpus", "queries", "qrels")
CORPUS_SPLIT = "corpus"  # the corpus config has one split, named like it
QUERY_SPLITS = ("train", "test")  # what the build writes to queries/ and qrels/
SPLITS = {"corpus": (CORPUS_SPLIT,), "queries": QUERY_SPLITS, "qrels": QUERY_SPLITS}
CARD = "README.md"
MANIFEST = "manifest.json"
# the dataset (fnmatch patterns as huggingface_hub applies them, relative to the folder): what readers
# download; `publish` uploads these and the reference scorer (RELEASE_PATTERNS); everything else in the
# folder (rejects/, report/, audit/, eval/, work/) stays local
DATA_PATTERNS = [f"{c}/*.parquet" for c in CONFIGS]  # the data files (a new version deletes the old ones)
DATASET_PATTERNS = [CARD, MANIFEST, *DATA_PATTERNS]
SCORER = "scorer"
# `*` also matches `/` for huggingface_hub, so this covers an MLLM scorer's backbone/ folder; a new version
# deletes the old scorer's files too (another backbone's would linger)
SCORER_PATTERNS = [f"{SCORER}/*"]
RELEASE_PATTERNS = [*DATASET_PATTERNS, *SCORER_PATTERNS]


def card_path(root: str | Path) -> Path:
    return Path(root) / CARD


def manifest_path(root: str | Path) -> Path:
    return Path(root) / MANIFEST


def config_dir(root: str | Path, config: str) -> Path:
    """``<root>/<config>/``: the folder of one dataset config's Parquet files."""
    return Path(root) / config


def shard_name(split: str, index: int, total: int) -> str:
    """``test-00000-of-00002.parquet``: the name of a data file the build writes."""
    return f"{split}-{index:05d}-of-{total:05d}.parquet"


def split_pattern(config: str, split: str) -> str:
    """``queries/test-*.parquet``: the files of one split, relative to the folder, as the card declares
    them to ``load_dataset`` (so readers here see the rows the Hub loader sees)."""
    return f"{config}/{split}-*.parquet"


def split_files(root: str | Path, config: str, split: str) -> list[Path]:
    """The Parquet files of one split of one config, sorted (empty when there are none)."""
    return sorted(Path(root).glob(split_pattern(config, split)))


def config_files(root: str | Path, config: str) -> list[Path]:
    """Every Parquet file of a config folder, sorted: all of it is published, whatever its name."""
    return sorted(config_dir(root, config).glob("*.parquet"))


def corpus_files(root: str | Path) -> list[Path]:
    """The corpus: every Parquet file of ``corpus/`` (its one split; a build refuses others' files there)."""
    return config_files(root, "corpus")


def own_shard_files(folder: str | Path, split: str) -> list[Path]:
    """The files named as :func:`shard_name` names them for ``split`` in one config folder, sorted: the
    only ones a writer may replace or delete."""
    return sorted(Path(folder).glob(f"{split}-*-of-*.parquet"))


def is_own_data_file(config: str, name: str) -> bool:
    """Whether ``name`` in ``<config>/`` is a data file the build writes (:func:`shard_name`, one of the
    config's :data:`SPLITS`)."""
    splits = "|".join(re.escape(s) for s in SPLITS[config])
    return re.fullmatch(rf"({splits})-\d{{5,}}-of-\d{{5,}}\.parquet", name) is not None


def data_files(root: str | Path) -> list[Path]:
    """The Parquet files of the three configs, sorted, relative to ``root``: the data that is published."""
    root = Path(root)
    return sorted(p.relative_to(root) for c in CONFIGS for p in config_files(root, c) if p.is_file())


def dataset_files(root: str | Path) -> list[Path]:
    """Everything that is published, relative to ``root``: the card, the manifest and the data files
    (those present)."""
    root = Path(root)
    extra = [Path(n) for n in (CARD, MANIFEST) if (root / n).is_file()]
    return extra + data_files(root)


def split_of(rel_path: str) -> tuple[str, str]:
    """``"queries/test-00000-of-00001.parquet"`` -> ``("queries", "test")``."""
    config, name = rel_path.split("/", 1)
    return config, name.split("-", 1)[0]


def splits_on_disk(root: str | Path) -> dict[str, set[str]]:
    """``{config: {split, ...}}`` of the data files present (configs without files are left out)."""
    out: dict[str, set[str]] = {}
    for rel in data_files(root):
        config, split = split_of(rel.as_posix())
        out.setdefault(config, set()).add(split)
    return out


# --------------------------------------------------------------------------- beside the dataset

REJECTS = "rejects"
REPORT = "report"
AUDIT = "audit"
EVAL = "eval"
WORK = "work"
# every entry a build writes or recognises at the top of its folder (eval/ is written by `make evaluate`)
BUILD_ENTRIES = (CARD, MANIFEST, *CONFIGS, REJECTS, REPORT, WORK, SCORER, EVAL)


def rejects_dir(root: str | Path) -> Path:
    return Path(root) / REJECTS


def reject_file(root: str | Path, stage: str) -> Path:
    """``rejects/<stage>.jsonl``."""
    return rejects_dir(root) / f"{stage}.jsonl"


def reject_files(root: str | Path) -> list[Path]:
    """Every ``rejects/*.jsonl``, sorted (the build's and any a user put there)."""
    return sorted(rejects_dir(root).glob("*.jsonl"))


def report_dir(root: str | Path) -> Path:
    return Path(root) / REPORT


def report_page_name(page: int) -> str:
    """The file of gallery page ``page`` (1-based) in ``report/``: the first page is the index."""
    return "index.html" if page == 1 else f"gallery-{page:03d}.html"


def report_index(root: str | Path) -> Path:
    return report_dir(root) / report_page_name(1)


def report_gallery_pages(root: str | Path) -> list[Path]:
    """The gallery pages after the first in ``report/``, sorted."""
    return sorted(report_dir(root).glob("gallery-*.html"))


def audit_dir(root: str | Path) -> Path:
    return Path(root) / AUDIT


# the audit's files, relative to the folder (the manifest names the decisions file this way)
AUDIT_DECISIONS = f"{AUDIT}/decisions.jsonl"  # every applied decision, bound to its pair's content
AUDIT_APPLIED = f"{AUDIT}/applied.jsonl"  # the decision files applied so far (name, sha256, count)
AUDIT_STALE = f"{AUDIT}/stale.jsonl"  # decisions on pairs a later build no longer has, set aside (kept)


def audit_staging(root: str | Path) -> Path:
    """Where the audit writes the new test split before moving it in."""
    return audit_dir(root) / ".staging"


def eval_dir(root: str | Path) -> Path:
    """The default folder of ``wikihow-tiir evaluate``'s output that the report shows."""
    return Path(root) / EVAL


def scorer_dir(root: str | Path) -> Path:
    return Path(root) / SCORER


# the reference scorer's own files, in scorer/ (a scorer folder passed by itself has them too)
SCORER_CONFIG = "config.json"  # the MME checkpoint record + what the scorer was trained on
SCORER_RESULTS = "results.json"  # its test numbers and the baselines'
SCORER_CARD = "README.md"  # its model card


def scorer_files(folder: str | Path) -> list[Path]:
    """Every file of a scorer folder (``scorer/`` or a downloaded copy), relative to it, sorted."""
    folder = Path(folder)
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())


def release_files(root: str | Path) -> list[Path]:
    """What ``publish`` uploads, relative to ``root``: :func:`dataset_files` and the scorer's files."""
    return dataset_files(root) + [Path(SCORER) / p for p in scorer_files(scorer_dir(root))]


def is_build_folder_layout(path: str | Path) -> bool:
    """Whether ``path`` holds a dataset's corpus (a build or dataset folder, not a scorer folder)."""
    return config_dir(path, "corpus").is_dir()


# --------------------------------------------------------------------------- work/

OWNER_FILE = Path(WORK) / "wikihow-tiir-build.json"  # relative: written when a build starts


def work_root(root: str | Path) -> Path:
    return Path(root) / WORK


def work_dir(root: str | Path, stage: str) -> Path:
    """``work/<stage>/``: ``corpus`` and ``queries`` (shards), ``generate``, ``filter``."""
    return work_root(root) / stage


# the files of a work shard, by stage: ``<shard>.<kind>``, and ``<shard>.done`` (its marker, written last)
SHARD_KINDS = {"corpus": ("parquet", "page-rejects.jsonl", "articles.jsonl", "context.parquet"),
               "queries": ("parquet", "rejects.jsonl")}


def work_shard_name(index: int) -> str:
    """``shard-00003``: the name of a work shard; its files are ``<name>.<kind>``."""
    return f"shard-{index:05d}"


def shard_file(root: str | Path, stage: str, name: str, kind: str) -> Path:
    """``work/<stage>/<name>.<kind>``: one file of a work shard (``kind`` ``done`` is its marker)."""
    if kind != "done" and kind not in SHARD_KINDS.get(stage, ()):
        raise ValueError(f"{kind!r} is not a kind of {stage} shard file (layout.SHARD_KINDS)")  # a bug
    return work_dir(root, stage) / f"{name}.{kind}"


def work_shard_files(root: str | Path, stage: str, kind: str | None = None) -> list[Path]:
    """The files of every work shard of a stage (of one kind, e.g. ``rejects.jsonl`` or ``done``), sorted."""
    return sorted(work_dir(root, stage).glob("shard-*" + (f".{kind}" if kind else "")))


def shard_of(path: Path) -> tuple[str, str]:
    """``shard-00001.page-rejects.jsonl`` -> ``("shard-00001", "page-rejects.jsonl")``."""
    name, _, kind = Path(path).name.partition(".")
    return name, kind


def corpus_context(root: str | Path) -> Path:
    """``work/corpus/context.parquet``: the writer context (step details, tips, categories) of the kept
    documents, which the query writer may know beyond a document."""
    return work_dir(root, "corpus") / "context.parquet"


def corpus_image_blobs(root: str | Path) -> Path:
    """``work/corpus/images/``: every normalized corpus picture once, by content, where the offline
    renderer reads the few it picks (:func:`corpus_image_blob`)."""
    return work_dir(root, "corpus") / "images"


def corpus_image_blob(root: str | Path, sha256: str) -> Path:
    """``work/corpus/images/<sha[:2]>/<sha256>.jpg``: one picture of the blob folder."""
    return blob_in(corpus_image_blobs(root), sha256)


def blob_in(folder: str | Path, sha256: str) -> Path:
    """``<folder>/<sha[:2]>/<sha256>.jpg``: a picture of a blob folder, by content."""
    return Path(folder) / sha256[:2] / f"{sha256}.jpg"


def corpus_id_file(root: str | Path) -> Path:
    """``work/corpus/corpus-id``: the corpus's identity for the query shards' fingerprints."""
    return work_dir(root, "corpus") / "corpus-id"


def scorer_work(root: str | Path) -> Path:
    """``work/scorer/``: the scorer stage's markers, training checkpoint and image store."""
    return work_dir(root, SCORER)


def filter_kept(root: str | Path) -> Path:
    return work_dir(root, "filter") / "kept.jsonl"


def filter_embeddings(root: str | Path) -> Path:
    """The filter's embedding cache (its ``cache_dir``/embeddings), which the difficulty table shares."""
    return work_dir(root, "filter") / "embeddings"


def generate_step_markers(root: str | Path, shard: str) -> list[Path]:
    """``work/generate/<stage>/<shard>.done``: the markers of one query shard's generation stages, sorted."""
    return sorted(work_dir(root, "generate").glob(f"*/{shard}.done"))


def files_under(root: str | Path) -> list[Path]:
    """Every file under ``root``, sorted: a local copy of a folder on object storage is synced file by file
    (:mod:`wikihow_tiir.remote`)."""
    return sorted(p for p in Path(root).rglob("*") if p.is_file())


def embedding_sidecars(cache_dir: str | Path) -> list[Path]:
    """The ``<key>.texts`` files of an embedding cache folder (the digests of each ``<key>.npy``'s texts),
    sorted."""
    return sorted(Path(cache_dir).glob("*.texts"))


def generate_cli_dir(root: str | Path) -> Path:
    """The default output folder of ``wikihow-tiir generate`` on a dataset folder. That folder holds the
    query stage of a build (``work/queries/``, ``work/generate/``) and the two files below."""
    return work_root(root) / "generate-cli"


def generate_cli_rejects(out: str | Path) -> Path:
    """``wikihow-tiir generate``'s rejects of all its shards."""
    return Path(out) / "rejects.jsonl"


def generate_cli_stats(out: str | Path) -> Path:
    """``wikihow-tiir generate``'s prompts, seed and generation statistics."""
    return Path(out) / "stats.json"
