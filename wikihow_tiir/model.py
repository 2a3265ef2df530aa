"""The data contracts every stage speaks, and the on-disk schemas derived from them.

One place only: parsers produce :class:`Article`, segmentation produces :class:`Document`,
query generation produces :class:`Query`, the filter/split stage produces :class:`Qrel`. The
Parquet/`datasets` schemas (``CORPUS_FEATURES``, ``QUERY_FEATURES``, ``QREL_FEATURES``) and the
row converters (``document_to_row`` ...) are derived here; writers never re-declare columns.

Interleaved sequences are stored OBELICS-style as parallel lists of equal length:
``texts[i]`` is set at a text position, ``image_meta[i]`` at an image position (never both), and
``images[i]`` holds the normalized image bytes at image positions once the image stage has run.
The ``text`` column of ``corpus`` and ``queries`` (schema 1.1) is derived: the text positions joined
in reading order (:func:`interleaved_text`), so MTEB's loader and any text-only tool read the rows
unchanged. It is computed when a row is written (:func:`with_derived_columns`), never edited.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

# 1.1: corpus and queries carry the derived ``text`` column (1.0 builds stay readable: it is ignored on
# reading and recomputed from ``texts`` where needed)
SCHEMA_VERSION = "1.1"
TEXT_LICENSE = "CC BY-NC-SA 3.0"
TEXT_LICENSE_URL = "https://creativecommons.org/licenses/by-nc-sa/3.0/"

SectionKind = Literal["method", "part", "steps"]
MediaKind = Literal["image", "video"]


def _from_dict(cls, data: dict[str, Any]):
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def interleaved_text(texts: list[str | None]) -> str:
    """The text positions of an interleaved sequence joined with newlines, in reading order."""
    return "\n".join(t for t in texts if t)


# --------------------------------------------------------------------------- articles


@dataclass(slots=True)
class Media:
    """One step image or step video as found on the page (URLs only, no bytes)."""

    kind: MediaKind
    url: str  # image: the small (460 px) URL; video: the full clip URL
    large_url: str | None = None  # image: the 728 px variant when known
    poster_url: str | None = None  # video: the still shown before playback (550 px)
    width: int | None = None
    height: int | None = None
    license: str = ""  # text of the per-image licence ("" when the page gives none)
    alt: str = ""

    @property
    def still_url(self) -> str | None:
        """The URL of the picture that represents this step in a document."""
        if self.kind == "video":
            return self.poster_url
        return self.large_url or self.url

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Media:
        return _from_dict(cls, data)


@dataclass(slots=True)
class Step:
    index: int  # 1-based within its section
    summary: str  # the bold lead sentence ("" when the step has none)
    detail: str = ""  # the rest of the step text; nested bullets as "- " lines
    media: list[Media] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "summary": self.summary, "detail": self.detail,
                "media": [m.to_dict() for m in self.media]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Step:
        return cls(index=data["index"], summary=data.get("summary", ""), detail=data.get("detail", ""),
                   media=[Media.from_dict(m) for m in data.get("media", [])])


@dataclass(slots=True)
class Section:
    index: int  # 1-based position among the article's step sections
    kind: SectionKind  # "method" (alternatives), "part" (sequential), "steps" (one unnamed block)
    title: str  # "" for an unnamed steps block
    steps: list[Step] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "kind": self.kind, "title": self.title,
                "steps": [s.to_dict() for s in self.steps]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Section:
        return cls(index=data["index"], kind=data["kind"], title=data.get("title", ""),
                   steps=[Step.from_dict(s) for s in data.get("steps", [])])


@dataclass(slots=True)
class Article:
    id: str  # wikiHow article id when known, else a stable hash of the canonical URL
    url: str
    lang: str
    title: str  # "How to ..." as the page shows it
    goal: str  # the goal as one string ("How to Grill Zucchini"), used as a document's first text
    intro: str = ""
    categories: list[str] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    tips: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    things_needed: list[str] = field(default_factory=list)
    revision: str | None = None
    layout: str = ""  # detected page layout, e.g. "responsive-2019", "desktop-2010", "classic-2008"
    parse_notes: list[str] = field(default_factory=list)  # non-fatal findings (JSON-LD mismatch ...)
    # provenance
    source: str = ""  # "archive", "live", "vgsi", "file"
    fetched_at: str | None = None  # ISO-8601 UTC
    sha256: str = ""  # of the raw page bytes

    @property
    def n_steps(self) -> int:
        return sum(len(s.steps) for s in self.sections)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["sections"] = [s.to_dict() for s in self.sections]
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Article:
        obj = _from_dict(cls, {k: v for k, v in data.items() if k != "sections"})
        obj.sections = [Section.from_dict(s) for s in data.get("sections", [])]
        return obj


# --------------------------------------------------------------------------- interleaved records


@dataclass(slots=True)
class ImageMeta:
    """What we know about one image position of an interleaved sequence."""

    source_url: str  # where the image came from (step image URL, or a query image's origin)
    license: str = ""
    sha256: str = ""  # of the normalized bytes (empty until the image stage ran)
    width: int = 0
    height: int = 0
    phash: str = ""  # 64-bit perceptual hash, hex
    stand_in: bool = False  # True when the bytes are a locally rendered stand-in, not the real image

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageMeta:
        return _from_dict(cls, data)


@dataclass(slots=True)
class Interleaved:
    """Parallel lists; at each position exactly one of ``texts[i]`` / ``image_meta[i]`` is set."""

    texts: list[str | None] = field(default_factory=list)
    images: list[bytes | None] = field(default_factory=list)
    image_meta: list[ImageMeta | None] = field(default_factory=list)

    def add_text(self, text: str) -> None:
        self.texts.append(text)
        self.images.append(None)
        self.image_meta.append(None)

    def add_image(self, meta: ImageMeta, data: bytes | None = None) -> None:
        self.texts.append(None)
        self.images.append(data)
        self.image_meta.append(meta)

    @property
    def n_images(self) -> int:
        return sum(m is not None for m in self.image_meta)

    @property
    def text(self) -> str:
        """All text positions joined with newlines (what a text-only model sees; the ``text`` column)."""
        return interleaved_text(self.texts)

    def image_positions(self) -> list[int]:
        return [i for i, m in enumerate(self.image_meta) if m is not None]

    def check(self) -> None:
        if not (len(self.texts) == len(self.images) == len(self.image_meta)):
            raise ValueError("interleaved lists differ in length")
        for i, (t, m) in enumerate(zip(self.texts, self.image_meta, strict=True)):
            if (t is None) == (m is None):
                raise ValueError(f"position {i}: exactly one of text / image must be set")


@dataclass(slots=True)
class Document:
    """One method/part of an article, interleaved as in the paper (Figure 1)."""

    id: str  # wh-<article_id>-s<section_index>
    article_id: str
    url: str
    lang: str
    goal: str
    section_title: str
    section_kind: str
    section_index: int
    content: Interleaved = field(default_factory=Interleaved)
    categories: list[str] = field(default_factory=list)

    @staticmethod
    def make_id(article_id: str, section_index: int) -> str:
        return f"wh-{article_id}-s{section_index}"

    def step_texts(self) -> list[str]:
        """The step texts: every text position after the goal and the section title."""
        texts = [t for t in self.content.texts if t]
        skip = 1 + (1 if self.section_title and len(texts) > 1 and texts[1] == self.section_title else 0)
        return texts[skip:]


@dataclass(slots=True)
class Query:
    id: str
    positive_id: str  # the document this query was generated from
    article_id: str
    lang: str
    content: Interleaved = field(default_factory=Interleaved)
    image_prompts: list[str] = field(default_factory=list)  # one per image, in order
    provenance: dict[str, Any] = field(default_factory=dict)  # backend, models, prompt sha256, seed ...
    scores: dict[str, float] = field(default_factory=dict)  # filter scores by check name
    split: str = ""  # "train" | "test" once split


@dataclass(slots=True)
class Qrel:
    query_id: str
    corpus_id: str
    score: int = 1


@dataclass(slots=True)
class Reject:
    """Something a stage refused, with the reason; written to ``rejects/`` and counted."""

    stage: str
    item_id: str
    reason: str  # short machine-friendly code, e.g. "too-few-images"
    detail: str = ""  # human explanation
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- on-disk schemas


def _features():
    # imported lazily: `datasets` costs ~0.6 s to import and most stages never need it
    from datasets import Features, Image, List, Value

    image_meta = {
        "source_url": Value("string"),
        "license": Value("string"),
        "sha256": Value("string"),
        "width": Value("int32"),
        "height": Value("int32"),
        "phash": Value("string"),
        "stand_in": Value("bool"),
    }
    interleaved = {
        "text": Value("string"),  # derived: the text positions joined with newlines (MTEB, text-only tools)
        "texts": List(Value("string")),
        "images": List(Image()),
        "image_meta": List(image_meta),
    }
    corpus = Features({
        "id": Value("string"),
        "article_id": Value("string"),
        "url": Value("string"),
        "lang": Value("string"),
        "goal": Value("string"),
        "section_title": Value("string"),
        "section_kind": Value("string"),
        "section_index": Value("int32"),
        "categories": List(Value("string")),
        **interleaved,
    })
    queries = Features({
        "id": Value("string"),
        "positive_id": Value("string"),
        "article_id": Value("string"),
        "lang": Value("string"),
        **interleaved,
        "image_prompts": List(Value("string")),
        "provenance": Value("string"),  # JSON object
        "scores": Value("string"),  # JSON object {check: score}
    })
    qrels = Features({
        "query-id": Value("string"),
        "corpus-id": Value("string"),
        "score": Value("int32"),
    })
    return corpus, queries, qrels


_FEATURES_CACHE: tuple | None = None


def features(config: Literal["corpus", "queries", "qrels"]):
    """The `datasets.Features` of one dataset config."""
    global _FEATURES_CACHE
    if _FEATURES_CACHE is None:
        _FEATURES_CACHE = _features()
    return dict(zip(("corpus", "queries", "qrels"), _FEATURES_CACHE, strict=True))[config]


def arrow_schema(config: Literal["corpus", "queries", "qrels"]):
    """Arrow schema with the `huggingface` metadata so `load_dataset` decodes images."""
    return features(config).arrow_schema


def legacy_features(config: Literal["corpus", "queries", "qrels"]):
    """The features of schema 1.0 (before the derived ``text`` column), which old builds declare."""
    from datasets import Features

    return Features({k: v for k, v in features(config).items() if k != "text"})


DERIVED_COLUMNS = ("text",)


def with_derived_columns(row: dict[str, Any], config: str) -> dict[str, Any]:
    """``row`` with its derived columns (re)computed: a row read back, edited and written again never
    carries a stale ``text``. Qrels rows are returned as they are."""
    if config in ("corpus", "queries") and "texts" in row:
        return {**row, "text": interleaved_text(row["texts"] or [])}
    return row


def _interleaved_to_row(c: Interleaved) -> dict[str, Any]:
    return {
        "text": c.text,
        "texts": list(c.texts),
        "images": [None if b is None else {"bytes": b, "path": None} for b in c.images],
        "image_meta": [None if m is None else m.to_dict() for m in c.image_meta],
    }


def _interleaved_from_row(row: dict[str, Any]) -> Interleaved:
    images: list[bytes | None] = []
    for im in row["images"]:
        if im is None:
            images.append(None)
        elif isinstance(im, dict):
            images.append(im.get("bytes"))
        else:  # a decoded PIL image (datasets with decode=True): re-encode losslessly
            import io

            buf = io.BytesIO()
            im.save(buf, format="PNG")
            images.append(buf.getvalue())
    return Interleaved(
        texts=list(row["texts"]),
        images=images,
        image_meta=[None if m is None else ImageMeta.from_dict(m) for m in row["image_meta"]],
    )


def document_to_row(d: Document) -> dict[str, Any]:
    return {
        "id": d.id, "article_id": d.article_id, "url": d.url, "lang": d.lang, "goal": d.goal,
        "section_title": d.section_title, "section_kind": d.section_kind,
        "section_index": d.section_index, "categories": list(d.categories),
        **_interleaved_to_row(d.content),
    }


def document_from_row(row: dict[str, Any]) -> Document:
    return Document(
        id=row["id"], article_id=row["article_id"], url=row["url"], lang=row["lang"], goal=row["goal"],
        section_title=row["section_title"], section_kind=row["section_kind"],
        section_index=int(row["section_index"]), categories=list(row.get("categories") or []),
        content=_interleaved_from_row(row),
    )


def query_to_row(q: Query) -> dict[str, Any]:
    return {
        "id": q.id, "positive_id": q.positive_id, "article_id": q.article_id, "lang": q.lang,
        **_interleaved_to_row(q.content),
        "image_prompts": list(q.image_prompts),
        "provenance": json.dumps(q.provenance, sort_keys=True, ensure_ascii=False),
        "scores": json.dumps(q.scores, sort_keys=True),
    }


def query_from_row(row: dict[str, Any], split: str = "") -> Query:
    return Query(
        id=row["id"], positive_id=row["positive_id"], article_id=row["article_id"], lang=row["lang"],
        content=_interleaved_from_row(row), image_prompts=list(row.get("image_prompts") or []),
        provenance=json.loads(row.get("provenance") or "{}"), scores=json.loads(row.get("scores") or "{}"),
        split=split,
    )


def qrel_to_row(q: Qrel) -> dict[str, Any]:
    return {"query-id": q.query_id, "corpus-id": q.corpus_id, "score": int(q.score)}


def qrel_from_row(row: dict[str, Any]) -> Qrel:
    return Qrel(query_id=row["query-id"], corpus_id=row["corpus-id"], score=int(row["score"]))
