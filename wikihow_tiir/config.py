"""Typed build configuration and the three profiles (sample | live | vgsi).

A build is fully described by a :class:`BuildConfig`; its JSON form goes into the manifest, and
each stage fingerprints the part of it that it reads, so a changed setting re-runs that stage and
the ones after it. Load order: profile defaults < YAML/JSON file < ``--set key.path=value``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from wikihow_tiir.errors import ConfigError, RetiredSettingWarning, validation_message

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ARCHIVE = Path("data/sample/archive")
log = logging.getLogger(__name__)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _check_range(section: BaseModel, low: str, high: str) -> None:
    """A ``min_x``/``max_x`` pair that cannot both hold would refuse everything, and only after the work."""
    lo, hi = getattr(section, low), getattr(section, high)
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"{low} ({lo}) is above {high} ({hi}): nothing could pass")


class CrawlConfig(_Section):
    """Live crawling of wikiHow. Used when ``source.kind == "live"``.

    The defaults are the polite ones: 1 request/s per host, robots.txt honoured, opt-out headers
    honoured, only wikiHow's own hosts. A live crawl refuses to start without ``contact``.
    """

    base_url: str = "https://www.wikihow.com"
    discovery: Literal["sitemap", "category", "urls"] = "sitemap"
    sitemap_url: str | None = None  # default: <base_url>/sitemap_index.xml
    api_url: str | None = None  # MediaWiki API for category discovery; default: <base_url>/api.php
    categories: list[str] = Field(default_factory=list)  # for discovery == "category" ("Food and Entertaining")
    category_depth: int = Field(2, ge=0)  # how many levels of subcategories to recurse into
    max_categories: int = Field(200, ge=1)  # cap on categories visited in one discovery
    url_file: Path | None = None  # for discovery == "urls": one URL per line ('#' starts a comment)
    max_articles: int | None = Field(100, ge=1)
    changed_since: str | None = None  # ISO date: only sitemap entries with a newer lastmod
    rediscover: bool = False  # re-run discovery even when a finished discovery with these settings exists
    user_agent: str = "wikihow-tiir/0.1 (research dataset builder)"
    contact: str | None = None  # required for a live crawl: e-mail or URL put in the User-Agent
    requests_per_second: float = Field(1.0, ge=0)  # per host; 0 = no limit (local mirrors/benchmarks only)
    max_concurrency: int = Field(4, ge=1)  # requests in flight, all hosts together
    timeout_s: float = Field(30.0, gt=0)  # connect and read timeout; a whole body must arrive within 4x this
    max_retries: int = Field(5, ge=0)  # on timeouts, connection errors, cut bodies and 5xx
    backoff_base_s: float = Field(1.0, ge=0)  # retry n waits backoff_base_s * 2**n + jitter
    max_backoff_s: float = Field(900.0, ge=0)  # cap on one wait, Retry-After included
    pause_on_429_s: float = Field(900.0, ge=0)  # host-wide pause after a 429 without Retry-After
    max_redirects: int = Field(5, ge=0)
    max_page_bytes: int = Field(8 * 1024 * 1024, ge=1)
    max_image_bytes: int = Field(16 * 1024 * 1024, ge=1)
    allowed_hosts: list[str] = Field(default_factory=lambda: [
        "www.wikihow.com", "wikihow.com", "*.wikihow.com", "*.whstatic.com", "whstatic.com",
    ])
    respect_robots: bool = True
    skip_noai_images: bool = True  # X-Robots-Tag: noai / noimageai
    noai_directives: list[str] = Field(default_factory=lambda: ["noai", "noimageai"])
    fetch_images: bool = True
    retry_failed: bool = True  # a re-run retries URLs that failed for a transient reason (5xx, timeout ...)
    allow_private_addresses: bool = False  # only tests set this (loopback mirror); link-local is always refused
    # Route requests for an origin to another one, e.g. {"https://www.wikihow.com": "http://127.0.0.1:8080"}
    # for a local mirror: allowlist, robots and rate limits apply to the original URL, which is also the
    # archive key; the address check applies to where we really connect.
    origin_map: dict[str, str] = Field(default_factory=dict)


class VgsiConfig(_Section):
    """The wikiHow-VGSI release (``WikihowText_data.json`` + images)."""

    text_file: Path | None = None  # JSON lines, one article per line
    images: Path | None = None  # a folder of {step_id}.png or wiki_images.zip
    max_articles: int | None = Field(None, ge=1)
    base_url: str = "https://www.wikihow.com"  # article URLs are rebuilt from the goal ("How to X" -> /X)
    lang: str = "en"


class SourceConfig(_Section):
    kind: Literal["archive", "live", "vgsi"] = "archive"
    # read from (archive) or written to (live): a folder, or an fsspec URL (s3://bucket/archive: see
    # wikihow_tiir/remote.py), kept as the URL string
    archive: Path | str = DEFAULT_ARCHIVE

    @field_validator("archive", mode="before")
    @classmethod
    def _location(cls, value: Any) -> Any:
        if isinstance(value, str | Path):
            from wikihow_tiir.remote import location

            return location(value)
        return value
    crawl: CrawlConfig = Field(default_factory=CrawlConfig)
    vgsi: VgsiConfig = Field(default_factory=VgsiConfig)
    pages_per_shard: int = Field(8, ge=1)  # work unit of the parse/segment/image stage


class SegmentConfig(_Section):
    min_images: int = Field(2, ge=0)
    max_images: int = Field(64, ge=1)
    include_detail: bool = False  # the paper uses step summaries only
    detail_max_chars: int = Field(600, ge=1)

    @model_validator(mode="after")
    def _ranges(self):
        _check_range(self, "min_images", "max_images")
        return self


class ImageConfig(_Section):
    """Image normalization (``wikihow_tiir.images``): every stored picture is an RGB JPEG."""

    max_side: int = Field(728, ge=16)  # longest side after resizing (wikiHow's large step images: 728 px)
    min_side: int = Field(32, ge=1)  # shorter side below this: "too-small"
    max_aspect_ratio: float = Field(8.0, ge=1.0)  # longer/shorter side above this: "bad-aspect-ratio"
    max_pixels: int = Field(40_000_000, ge=1)  # decompression-bomb guard, checked on the header before decoding
    max_bytes: int = Field(16 * 1024 * 1024, ge=1)  # larger bodies: "too-large-bytes"
    jpeg_quality: int = Field(90, ge=1, le=95)  # Pillow advises against > 95
    # a picture whose every channel spans at most this many levels (0-255) is one flat colour:
    # "blank-image" (so is a fully transparent one); None keeps flat pictures
    blank_max_spread: int | None = Field(4, ge=0, le=255)


class BackendConfig(_Section):
    """One generation stage's backend, or the filter's LLM judge (``wikihow_tiir.llm``)."""

    kind: Literal["offline", "openai"] = "offline"
    base_url: str | None = None
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = Field(0.0, ge=0)
    max_tokens: int = Field(512, ge=1)
    timeout_s: float = Field(60.0, gt=0)
    concurrency: int = Field(8, ge=1)
    retries: int = Field(3, ge=0)
    backoff_s: float = Field(1.0, ge=0)  # first retry delay (doubles); a 429's Retry-After takes precedence
    json_mode: bool = True  # ask for a JSON object (response_format); off for servers without it
    # how the output schema travels with the request: not at all, OpenAI/vLLM "json_schema",
    # or llama.cpp's {"type": "json_object", "schema": ...} (grammar-constrained decoding)
    json_schema: Literal["none", "openai", "llama-cpp"] = "none"
    image_size: str = "1024x1024"  # render stage (images API)
    extra: dict[str, Any] = Field(default_factory=dict)  # passed through as extra_body
    # the longest chat answer a stage accepts (max_tokens 512 is ~2,000): longer is rejected as
    # answer-too-long and never cached or recorded (a runaway model once wrote a 100 MB answer)
    max_answer_chars: int = Field(100_000, ge=1)
    max_response_mb: float = Field(32.0, gt=0)  # the most of an HTTP body read (an image is a few MB)
    # the most one request waits for 429 pauses in all before its item is rejected as rate-limited
    rate_limit_max_wait_s: float = Field(300.0, ge=0)

    @model_validator(mode="after")
    def _endpoint(self):
        if self.kind == "openai" and (not self.base_url or not self.model):  # refused before any work
            raise ValueError("the openai backend needs base_url and model")
        return self


# generate's length limits count words, not the filter's WordPiece tokens: renamed in 0.2, the old
# names are still read (with a warning) so existing config files keep working
_GENERATE_RENAMED = {"min_text_tokens": "min_text_words", "max_text_tokens": "max_text_words"}


def _renamed_settings(data: Any, section: str, renamed: dict[str, str]) -> Any:
    """``data`` with deprecated setting names replaced by their new ones (a warning for each); both
    names at once is refused, since it is unclear which one is meant."""
    if not isinstance(data, dict) or not any(old in data for old in renamed):
        return data
    data = dict(data)
    for old, new in renamed.items():
        if old not in data:
            continue
        if new in data:
            raise ValueError(f"{old} and {new} are both set; {old} is the old name of {new}: keep only {new}")
        log.warning("%s.%s is deprecated: it is now called %s.%s (same value, same unit); rename it in "
                    "your configuration", section, old, section, new)
        data[new] = data.pop(old)
    return data


class GenerateConfig(_Section):
    enabled: bool = True
    queries_per_document: int = Field(1, ge=1)
    documents_per_shard: int = Field(64, ge=1)
    min_query_images: int = Field(2, ge=0)
    max_query_images: int = Field(4, ge=0)
    caption: BackendConfig = Field(default_factory=BackendConfig)
    write: BackendConfig = Field(default_factory=BackendConfig)
    visualize: BackendConfig = Field(default_factory=BackendConfig)
    render: BackendConfig = Field(default_factory=BackendConfig)
    cache: bool = True  # SQLite request cache under the build's work folder
    # WORDS (each CJK character counts as one; wikihow_tiir.tokens.count_tokens) of the generated query
    # text; outside the range it is rejected at generation (paper: ~105 on average). The filter re-checks
    # in MiniLM WordPiece TOKENS (filter.min_text_tokens / max_text_tokens), ~1.3x more for English.
    min_text_words: int = Field(20, ge=0)
    max_text_words: int = Field(300, ge=1)
    max_copied_share: float = Field(0.6, ge=0, le=1)  # share of the document's step text found verbatim in the query
    salient_sentences: int = Field(4, ge=1)  # BM25-salient sentences shown to the visualize stage
    near_copy_phash_distance: int = Field(6, ge=0, le=64)  # a query image this close to a positive image is refused

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        return _renamed_settings(data, "generate", _GENERATE_RENAMED)

    @model_validator(mode="after")
    def _ranges(self):
        _check_range(self, "min_query_images", "max_query_images")
        _check_range(self, "min_text_words", "max_text_words")
        return self


class FilterConfig(_Section):
    """Query filter thresholds (``wikihow_tiir.filter``). Scores are cosines of the shared
    all-MiniLM-L6-v2 embeddings unless said otherwise; the calibration notes are in
    ``wikihow_tiir/filter/__init__.py`` (distribution of each score on the bundled build)."""

    enabled: bool = True
    embed_batch_size: int = Field(32, ge=1)  # 16-32 is ~10% faster than 64 on 2 CPU cores (less padding)
    embed_shard_size: int = Field(4096, ge=1)  # texts per cached embedding shard
    embed_device: str = "cpu"  # torch device of the MiniLM embedder ("cuda" where there is a GPU)
    query_block_size: int = Field(1024, ge=1)  # queries per exact corpus-search block (memory ~ block x corpus x 4 B)
    relevance_min: float = Field(0.30, ge=-1, le=1)  # query (text + image prompts) vs its positive: floor
    easiness_max_similarity: float = Field(0.95, ge=-1, le=1)  # same cosine: ceiling (the query copies the doc)
    # NeMo-Curator style: also drop queries above this percentile (0-100) of that cosine, computed over the
    # whole query set at once (never per batch); None = off
    easiness_percentile: float | None = Field(None, gt=0, le=100)
    lexical_overlap_max: float = Field(0.6, ge=0, le=1)  # share of the query's word n-grams found in its positive
    lexical_ngram: int = Field(3, ge=1)  # n of those n-grams (CJK: characters)
    # answer leaks in the query TEXT (image prompts describe pictures and are not checked); tokens are
    # words, or characters for Japanese/Chinese (wikihow_tiir.tokens)
    leak_min_phrase_words: int = Field(1, ge=1)  # a goal/section title shorter than this never counts as a leak
    leak_min_phrase_cjk_chars: int = Field(2, ge=1)
    step_copy_max_words: int = Field(8, ge=1)  # this many consecutive words of one step text copied: step-copy
    step_copy_max_cjk_chars: int = Field(12, ge=1)
    # picture necessity: the text alone ranks the positive first by this cosine margin over the next document
    text_sufficient_margin: float = Field(0.15, ge=0)
    # reject-test: rejected from the test split, flagged in train; reject: rejected everywhere; flag: reported only
    text_sufficient_action: Literal["reject-test", "reject", "flag"] = "reject-test"
    # quality flags from the text embedder. No rule may select TEST queries by a text model's success, so by
    # default they are flags for review (the human audit); "reject-train" / "train-only" apply them to train only
    answerability_top_k: int = Field(20, ge=1)  # positive ranked below top-k of the whole corpus: flagged
    answerability_action: Literal["flag", "reject-train"] = "flag"
    false_negative_margin: float = Field(0.05, ge=0)  # another article's doc above the positive by this: flagged
    false_negative_action: Literal["flag", "train-only"] = "flag"  # train-only: the article goes to train
    near_duplicate_cosine: float = Field(0.97, ge=-1, le=1)  # two queries above this: keep the first (by id)
    min_query_images: int = Field(2, ge=0)
    max_query_images: int = Field(4, ge=0)
    phash_max_distance: int = Field(6, ge=0, le=64)  # two images this close (Hamming bits) are near-copies
    min_text_tokens: int = Field(20, ge=0)  # MiniLM WordPiece tokens of the query text
    max_text_tokens: int = Field(400, ge=1)
    check_language: bool = True
    language_min: float = Field(0.5, ge=0, le=1)  # estimated share/probability of the article's language
    llm_judge: BackendConfig | None = None  # off by default

    @model_validator(mode="after")
    def _ranges(self):
        _check_range(self, "min_query_images", "max_query_images")
        _check_range(self, "min_text_tokens", "max_text_tokens")
        return self


class SplitConfig(_Section):
    """Train/test split by article (``wikihow_tiir.split``). The paper has 7,654 test vs 73,084 train
    queries (9.5 %); our default keeps a larger test share because sample builds are small."""

    test_share: float = Field(0.2, ge=0, le=1)  # share of articles (hence about of queries) put in test
    seed: int = 13


class DifficultyConfig(_Section):
    """Difficulty evidence scored by every build (``wikihow_tiir.difficulty``): BM25, MiniLM text only and
    MiniLM text + image prompts on the test split and on all kept queries."""

    enabled: bool = True
    # a plain warning in the manifest, card and report when a text-only model's Recall@1 on the test split
    # is above this (the paper's text models reach ~40 % Recall@5 over 155,262 documents)
    max_text_only_recall_at_1: float = Field(0.6, ge=0, le=1)


class ScorerConfig(_Section):
    """The reference MME scorer trained and scored by every build (``wikihow_tiir.mme.scorer``): trained on
    the train split, scored with the offline baselines on the test split, written to ``scorer/`` and
    released with the data. The defaults are the paper's recipe (§3) on the CPU stand-in backbone."""

    enabled: bool = True
    # mme-mini (offline, CPU) or an MLLM hub id / folder (DeepSeek-VL, Qwen2-VL, Qwen2.5-VL; meant for a GPU)
    backbone: str = "mme-mini"
    strategy: Literal["mean", "mrl", "rand", "dpr"] = "mean"  # dpr: the full grid only (the paper's DPR row)
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(32, ge=1)  # pairs per optimizer step; in-batch negatives span all of them
    micro_batch_size: int = Field(8, ge=1)  # sequences per forward pass (memory only: the loss is the batch's)
    lr: float = Field(5e-5, gt=0)  # every pretrained part, a pretrained aligner/merger included
    projector_lr: float | None = Field(None, gt=0)  # None: 2e-4 for mme-mini's fresh projector, else ``lr``
    # None: N <= 3 on CPU (the paper's best region), every N of the grid on a GPU
    train_ns: list[int] | None = None
    hard_negatives: Literal["random", "minilm-top-k"] = "random"  # random: as the paper samples it
    hard_negative_k: int = Field(5, ge=1)  # pool of minilm-top-k
    seed: int = 0
    image_size: int | None = None  # None: the backbone's own (mme-mini 384 px: a 12 x 12 grid)
    vision_cache_mb: int = Field(1024, ge=1)  # frozen vision features kept in memory, least recently used out
    threads: int | None = Field(None, ge=1)  # torch CPU threads while the scorer trains; None: torch's default
    # bf16 autocast (fp32 weights) on CUDA and on CPUs with native bf16 (AVX512-BF16, AMX), else fp32
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    device: str | None = None  # None: CUDA when available, else CPU
    baselines: list[str] = Field(default_factory=lambda: ["bm25", "minilm", "fusion-effnet"])


class OutputConfig(_Section):
    rows_per_file: int = Field(1000, ge=1)  # rows per Parquet file of corpus/, queries/ and qrels/

    @model_validator(mode="before")
    @classmethod
    def _retired(cls, data: Any) -> Any:
        # settings of older versions that nothing reads any more: accepted with a message, not an error,
        # so an old config file (or an old manifest's config) still loads
        if isinstance(data, dict) and "stand_in_disclosure" in data:
            import warnings

            data = {k: v for k, v in data.items() if k != "stand_in_disclosure"}
            warnings.warn(RETIRED_SETTINGS["output.stand_in_disclosure"], RetiredSettingWarning, stacklevel=2)
        return data


RETIRED_SETTINGS = {
    "output.stand_in_disclosure": "the setting output.stand_in_disclosure is ignored and will be refused in a "
                                  "later version: nothing read it (stand-in images are always disclosed, in "
                                  "image_meta.stand_in, the manifest and the card); remove it from your config",
}


class RunnerConfig(_Section):
    kind: Literal["thread", "dask"] = "thread"
    workers: int = Field(2, ge=1)
    dask_address: str | None = None
    # the flow's local copy of a build folder on object storage (default: ~/.cache/wikihow-tiir/staging/<hash>)
    staging: Path | None = None


class BuildConfig(_Section):
    profile: Literal["sample", "live", "vgsi"] = "sample"
    seed: int = 13
    source: SourceConfig = Field(default_factory=SourceConfig)
    segment: SegmentConfig = Field(default_factory=SegmentConfig)
    images: ImageConfig = Field(default_factory=ImageConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    filter: FilterConfig = Field(default_factory=FilterConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    difficulty: DifficultyConfig = Field(default_factory=DifficultyConfig)
    scorer: ScorerConfig = Field(default_factory=ScorerConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    runner: RunnerConfig = Field(default_factory=RunnerConfig)

    def section_json(self, *names: str) -> dict[str, Any]:
        """The JSON of some sections (for stage fingerprints)."""
        data = self.model_dump(mode="json")
        return {n: data[n] for n in names}


PROFILES: dict[str, dict[str, Any]] = {
    "sample": {"source": {"kind": "archive"}},
    "live": {"source": {"kind": "live", "archive": "data/crawl/archive"}},
    "vgsi": {"source": {"kind": "vgsi"}},
}


def _deep_update(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_update(out[k], v)
        else:
            out[k] = v
    return out


def parse_override(item: str) -> dict[str, Any]:
    """``"filter.relevance_min=0.3"`` -> ``{"filter": {"relevance_min": 0.3}}`` (value parsed as JSON if it can be)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not of the form key.path=value", "bad-override")
    key, raw = item.split("=", 1)
    try:
        value: Any = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        value = raw
    out: dict[str, Any] = value
    for part in reversed(key.strip().split(".")):
        out = {part: out}
    return out  # type: ignore[return-value]


# A real configuration has a few hundred values. YAML aliases let a small file stand for an
# exponentially large one ("billion laughs": 9 levels of 9 aliases are 387 million strings, which
# the stages would expand when they hash or dump the settings), so a file is refused when its
# values, with every alias expanded, are more than this.
MAX_CONFIG_VALUES = 100_000


def _expanded_size(root, limit: int, where: str) -> int:
    """The number of YAML nodes under ``root`` with every alias expanded, counted on the (shared) node
    graph without expanding it; stops at ``limit`` and refuses a recursive alias. Iterative: a deep
    file must not exhaust the Python stack."""
    import yaml

    def children(node) -> list[Any]:
        if isinstance(node, yaml.MappingNode):
            return [n for pair in node.value for n in pair]
        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        return []

    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # the path from the root to the node being counted
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children(node))
            if sizes[key] > limit:
                return sizes[key]
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise ConfigError(f"{where}: a YAML alias refers to a value that contains it (a recursive alias)",
                              "recursive-alias")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children(node) if id(c) not in sizes)
    return sizes.get(id(root), 0)


def _load_yaml(text: str, where: str) -> Any:
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        def construct_document(self, node):
            if _expanded_size(node, MAX_CONFIG_VALUES, where) > MAX_CONFIG_VALUES:
                raise ConfigError(f"{where}: more than {MAX_CONFIG_VALUES:,} values once its YAML aliases are "
                                  "expanded (an alias bomb?); write the settings out", "config-too-large")
            return super().construct_document(node)

    try:
        return yaml.load(text, Loader=BoundedLoader)  # a SafeLoader: no Python objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        raise ConfigError(f"{where}: not valid YAML: {context + ', ' if context else ''}{problem}{at}",
                          "bad-yaml") from None


def load_config(path: str | Path | None = None, profile: str = "sample",
                overrides: list[str] | None = None) -> BuildConfig:
    """The build configuration; a :class:`ConfigError` (one line) for anything that cannot be used."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}", "unknown-profile")
    data: dict[str, Any] = {"profile": profile}
    data = _deep_update(data, PROFILES[profile])
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file", "missing-config") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not UTF-8 text", "bad-config-encoding") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot be read ({exc.strerror})", "unreadable-config") from None
        try:
            if str(path).endswith((".yaml", ".yml")):
                loaded = _load_yaml(text, str(path)) or {}
            else:
                try:
                    loaded = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{path}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
                                      "bad-json") from None
        except RecursionError:
            raise ConfigError(f"{path}: nested too deeply", "config-too-deep") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the configuration must be a mapping", "bad-config")
        data = _deep_update(data, loaded)
    for item in overrides or []:
        data = _deep_update(data, parse_override(item))
    try:
        return BuildConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration: {validation_message(exc)}") from exc
