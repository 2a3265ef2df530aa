"""Typed build configuration and the three profiles (sample | live | vgsi).

A build is fully described by a :class:`BuildConfig`; its JSON form goes into the manifest, and
each stage fingerprints the part of it that it reads, so a changed setting re-runs that stage and
the ones after it. Load order: profile defaults < YAML/JSON file < ``--set key.path=value``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ARCHIVE = Path("data/sample/archive")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class CrawlConfig(_Section):
    """Live crawling of wikiHow (issue: acquisition). Used when ``source.kind == "live"``."""

    base_url: str = "https://www.wikihow.com"
    discovery: Literal["sitemap", "category", "urls"] = "sitemap"
    sitemap_url: str | None = None  # default: <base_url>/sitemap_index.xml
    categories: list[str] = Field(default_factory=list)  # for discovery == "category"
    category_depth: int = 2
    url_file: Path | None = None  # for discovery == "urls": one URL per line
    max_articles: int | None = 100
    changed_since: str | None = None  # ISO date: only sitemap entries with a newer lastmod
    user_agent: str = "wikihow-tiir/0.1 (research dataset builder)"
    contact: str | None = None  # required for a live crawl: e-mail or URL put in the User-Agent
    requests_per_second: float = 1.0  # per host
    max_concurrency: int = 4  # across hosts
    timeout_s: float = 30.0
    max_retries: int = 5
    backoff_base_s: float = 1.0
    max_backoff_s: float = 900.0
    max_page_bytes: int = 8 * 1024 * 1024
    max_image_bytes: int = 16 * 1024 * 1024
    allowed_hosts: list[str] = Field(default_factory=lambda: [
        "www.wikihow.com", "wikihow.com", "*.wikihow.com", "*.whstatic.com", "whstatic.com",
    ])
    respect_robots: bool = True
    skip_noai_images: bool = True  # X-Robots-Tag: noai / noimageai
    fetch_images: bool = True
    allow_private_addresses: bool = False  # only tests set this (loopback mirror)


class VgsiConfig(_Section):
    """The wikiHow-VGSI release (``WikihowText_data.json`` + images)."""

    text_file: Path | None = None
    images: Path | None = None  # a folder of {step_id}.png or wiki_images.zip
    max_articles: int | None = None


class SourceConfig(_Section):
    kind: Literal["archive", "live", "vgsi"] = "archive"
    archive: Path = DEFAULT_ARCHIVE  # read from (archive) or written to (live)
    crawl: CrawlConfig = Field(default_factory=CrawlConfig)
    vgsi: VgsiConfig = Field(default_factory=VgsiConfig)
    pages_per_shard: int = 8  # work unit of the parse/segment/image stage


class SegmentConfig(_Section):
    min_images: int = 2
    max_images: int = 64
    include_detail: bool = False  # the paper uses step summaries only
    detail_max_chars: int = 600


class ImageConfig(_Section):
    max_side: int = 728
    min_side: int = 32
    max_aspect_ratio: float = 8.0
    max_pixels: int = 40_000_000  # decompression-bomb guard (before decoding)
    max_bytes: int = 16 * 1024 * 1024
    jpeg_quality: int = 90


class BackendConfig(_Section):
    """One generation stage's backend (issue: query generation)."""

    kind: Literal["offline", "openai"] = "offline"
    base_url: str | None = None
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.0
    max_tokens: int = 512
    timeout_s: float = 60.0
    concurrency: int = 8
    retries: int = 3
    json_mode: bool = True
    extra: dict[str, Any] = Field(default_factory=dict)


class GenerateConfig(_Section):
    enabled: bool = True
    queries_per_document: int = 1
    documents_per_shard: int = 64
    min_query_images: int = 2
    max_query_images: int = 4
    caption: BackendConfig = Field(default_factory=BackendConfig)
    write: BackendConfig = Field(default_factory=BackendConfig)
    visualize: BackendConfig = Field(default_factory=BackendConfig)
    render: BackendConfig = Field(default_factory=BackendConfig)
    cache: bool = True  # SQLite request cache under the build's work folder


class FilterConfig(_Section):
    enabled: bool = True
    embed_batch_size: int = 64
    relevance_min: float = 0.25
    easiness_max_similarity: float = 0.95
    easiness_percentile: float | None = None  # e.g. 95: also drop the top (100-p)% most similar
    lexical_overlap_max: float = 0.9
    answerability_top_k: int = 20
    false_negative_margin: float = 0.05
    near_duplicate_cosine: float = 0.97
    phash_max_distance: int = 6
    min_text_tokens: int = 20
    max_text_tokens: int = 400
    check_language: bool = True
    llm_judge: BackendConfig | None = None  # off by default


class SplitConfig(_Section):
    test_share: float = 0.2
    seed: int = 13


class OutputConfig(_Section):
    rows_per_file: int = 1000
    stand_in_disclosure: bool = True


class RunnerConfig(_Section):
    kind: Literal["thread", "dask"] = "thread"
    workers: int = 2
    dask_address: str | None = None


class BuildConfig(_Section):
    profile: Literal["sample", "live", "vgsi"] = "sample"
    seed: int = 13
    source: SourceConfig = Field(default_factory=SourceConfig)
    segment: SegmentConfig = Field(default_factory=SegmentConfig)
    images: ImageConfig = Field(default_factory=ImageConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    filter: FilterConfig = Field(default_factory=FilterConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
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
        raise ValueError(f"override {item!r} is not of the form key.path=value")
    key, raw = item.split("=", 1)
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    out: dict[str, Any] = value
    for part in reversed(key.strip().split(".")):
        out = {part: out}
    return out  # type: ignore[return-value]


def load_config(path: str | Path | None = None, profile: str = "sample",
                overrides: list[str] | None = None) -> BuildConfig:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    data: dict[str, Any] = {"profile": profile}
    data = _deep_update(data, PROFILES[profile])
    if path is not None:
        text = Path(path).read_text(encoding="utf-8")
        if str(path).endswith((".yaml", ".yml")):
            import yaml

            loaded = yaml.safe_load(text) or {}
        else:
            loaded = json.loads(text)
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: the configuration must be a mapping")
        data = _deep_update(data, loaded)
    for item in overrides or []:
        data = _deep_update(data, parse_override(item))
    return BuildConfig.model_validate(data)
