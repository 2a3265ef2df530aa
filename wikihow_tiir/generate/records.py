"""The typed records the generation stages pass on and persist: one :class:`Record` per work item.

A record is the item's value (captions, the written text, the :class:`Visual` layout, the
:class:`RenderedImage` list) or the reason it failed, with the tokens and images it cost. Each stage
stores its records as JSON lines (``{"id", "ok", "value" | "reason", "detail", ["answer"], "usage"}``)
through its :class:`Codec`; reading them back checks every field, so a record file that parses but
holds anything else is recomputed, never trusted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from wikihow_tiir.llm.usage import Usage, total_usage
from wikihow_tiir.model import Document
from wikihow_tiir.redact import redact

V = TypeVar("V")

# how much of a refused answer a reject keeps (enough to read what went wrong with a prompt)
REJECT_ANSWER_CHARS = 2000
DETAIL_CHARS = 500


@dataclass(frozen=True)
class Unit:
    """One query to make: document ``doc`` and its ``k``-th query."""

    id: str
    doc: Document
    k: int


@dataclass
class Record(Generic[V]):
    """One work item's outcome in one stage: ``value`` when it worked, else ``reason`` + ``detail``
    (and ``answer``, the model's refused answer, redacted and capped)."""

    id: str
    value: V | None = None
    reason: str | None = None
    detail: str = ""
    answer: str | None = None
    usage: Usage = field(default_factory=Usage)

    @property
    def ok(self) -> bool:
        return self.reason is None

    @classmethod
    def success(cls, item_id: str, value: V, usage: Usage | None = None) -> Record[V]:
        return cls(item_id, value=value, usage=usage or Usage())

    @classmethod
    def failure(cls, item_id: str, reason: str, detail: str, usage: Usage | None = None,
                answer: str | None = None) -> Record[V]:
        return cls(item_id, reason=reason, detail=redact(detail)[:DETAIL_CHARS], usage=usage or Usage(),
                   answer=redact(answer)[:REJECT_ANSWER_CHARS] if answer is not None else None)


def combined(item_id: str, parts: list[Record[V]], value: Callable[[list[V]], Any]) -> Record[Any]:
    """One record from the records of an item's parts (a document's captions, a query's pictures):
    the first failed part's reason, else ``value`` of the parts' values; the usage of all."""
    usage = total_usage(p.usage for p in parts)
    bad = next((p for p in parts if not p.ok), None)
    if bad is not None:
        return Record.failure(item_id, bad.reason or "", f"{bad.id}: {bad.detail}", usage, bad.answer)
    return Record.success(item_id, value([p.value for p in parts]), usage)  # type: ignore[misc]


# --------------------------------------------------------------------------- stage values


@dataclass(frozen=True)
class Segment:
    """Text shown before one picture, and the prompt the picture is drawn or chosen by."""

    text: str
    image_prompt: str


@dataclass(frozen=True)
class Visual:
    """The visualize stage's layout of a query: segments (text, picture) and a closing text."""

    segments: tuple[Segment, ...]
    closing: str = ""

    @property
    def text(self) -> str:
        """The query's text without its pictures (what the length and copy checks measure)."""
        return "\n".join(t for t in [*(s.text for s in self.segments), self.closing] if t.strip())

    @property
    def image_prompts(self) -> list[str]:
        return [s.image_prompt for s in self.segments]

    def to_json(self) -> dict[str, Any]:
        return {"segments": [{"text": s.text, "image_prompt": s.image_prompt} for s in self.segments],
                "closing": self.closing}

    @classmethod
    def from_json(cls, data: Any) -> Visual:
        if not isinstance(data, dict) or not isinstance(data.get("segments"), list):
            raise ValueError("not a visual layout")
        segments = tuple(Segment(_str(s.get("text")), _str(s.get("image_prompt"))) if isinstance(s, dict)
                         else _bad("a segment is not an object") for s in data["segments"])
        return cls(segments, _str(data.get("closing", "")))


@dataclass(frozen=True)
class PooledImage:
    """A picture chosen from the corpus's image pool (``key``: :attr:`PoolImage.key`)."""

    key: str

    def to_json(self) -> dict[str, Any]:
        return {"pool": self.key}


@dataclass(frozen=True)
class DrawnImage:
    """A picture an images API drew, stored as ``render/blobs/<blob>.jpg`` (``blob``: its sha256)."""

    blob: str
    width: int
    height: int
    phash: str

    def to_json(self) -> dict[str, Any]:
        return {"blob": self.blob, "width": self.width, "height": self.height, "phash": self.phash}


RenderedImage = PooledImage | DrawnImage


def rendered_from_json(data: Any) -> tuple[RenderedImage, ...]:
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError("not a list of rendered images")
    out: list[RenderedImage] = []
    for im in data["images"]:
        if isinstance(im, dict) and "pool" in im:
            out.append(PooledImage(_str(im["pool"])))
        elif isinstance(im, dict) and "blob" in im:
            out.append(DrawnImage(_str(im["blob"]), _int(im.get("width")), _int(im.get("height")),
                                  _str(im.get("phash"))))
        else:
            raise ValueError("a rendered image is neither pooled nor drawn")
    return tuple(out)


def _bad(problem: str) -> Any:
    raise ValueError(problem)


def _str(value: Any) -> str:
    return value if isinstance(value, str) else _bad(f"{type(value).__name__} where a string belongs")


def _int(value: Any) -> int:
    return value if type(value) is int else _bad(f"{type(value).__name__} where an integer belongs")


def _strs(value: Any) -> list[str]:
    return [_str(v) for v in value] if isinstance(value, list) else _bad("not a list of strings")


# --------------------------------------------------------------------------- record files


@dataclass(frozen=True)
class Codec(Generic[V]):
    """How one stage's values travel as JSON (``decode`` raises ValueError for anything else)."""

    encode: Callable[[V], Any]
    decode: Callable[[Any], V]

    def dump(self, r: Record[V]) -> dict[str, Any]:
        out: dict[str, Any] = {"id": r.id, "ok": r.ok, "usage": r.usage.to_dict()}
        if r.ok:
            out["value"] = self.encode(r.value)  # type: ignore[arg-type]
        else:
            out.update(reason=r.reason, detail=r.detail)
            if r.answer is not None:
                out["answer"] = r.answer
        return out

    def load(self, data: Any) -> Record[V]:
        if not isinstance(data, dict) or not isinstance(data.get("ok"), bool):
            raise ValueError("not a stage record")
        usage = Usage.from_dict(data.get("usage"))
        if data["ok"]:
            if "value" not in data:
                raise ValueError("a record without its value")
            return Record(_str(data.get("id")), value=self.decode(data["value"]), usage=usage)
        answer = data.get("answer")
        return Record(_str(data.get("id")), reason=_str(data.get("reason")), detail=_str(data.get("detail")),
                      answer=None if answer is None else _str(answer), usage=usage)


CAPTIONS: Codec[list[str]] = Codec(list, _strs)
WRITTEN: Codec[str] = Codec(str, _str)
VISUAL: Codec[Visual] = Codec(Visual.to_json, Visual.from_json)
RENDERED: Codec[tuple[RenderedImage, ...]] = Codec(lambda images: {"images": [im.to_json() for im in images]},
                                                   rendered_from_json)


def values(records: Iterable[Record[V]]) -> dict[str, V]:
    """Item id -> value of the records that worked."""
    return {r.id: r.value for r in records if r.ok}  # type: ignore[misc]
