"""The wikiHow-VGSI release (Yang et al., EMNLP 2021): the corpus wikiHow-TIIR was built from.

Input: ``WikihowText_data.json`` - JSON lines, one article per line::

    {"file_id": ..., "goal": "How to ...", "goal_description": ..., "category_hierarchy": [...],
     "methods": [{"name": ..., "steps": [{"headline", "description", "img" (URL),
                                          "img_license", "step_id": "<file_id>_<method>_<step>"}]}]}

and the images, ``{step_id}.png``, either in a folder or in ``wiki_images.zip``. Articles map onto
the same :class:`~wikihow_tiir.model.Article` the HTML parser produces (one ``method`` section per
VGSI method, the headline as the step summary, the image URL and its licence on the Media), so the
rest of the build does not know where they came from. Images are looked up by the step's image URL
through :class:`VgsiImageStore` (URL -> step_id -> file). A step without an image URL but with an
image file gets the URL ``vgsi:<step_id>``. Same input => same Articles, in file order.
"""

from __future__ import annotations

import json
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from wikihow_tiir.config import VgsiConfig
from wikihow_tiir.errors import WikihowTiirError
from wikihow_tiir.io import sha256_bytes
from wikihow_tiir.model import Article, Media, Reject, Section, Step

_IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp")


class VgsiError(WikihowTiirError, ValueError):
    """Bad VGSI input, with the file, line and reason."""

    reason = "bad-vgsi-input"


def _goal_title(goal: str) -> str:
    goal = " ".join(goal.split())
    return goal if goal.lower().startswith("how to ") else f"How to {goal}"


def _article_url(base_url: str, title: str) -> str:
    slug = title[len("How to "):] if title.lower().startswith("how to ") else title
    return base_url.rstrip("/") + "/" + quote(slug.replace(" ", "-"), safe="-()'!,")


def _str(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def record_to_article(rec: dict[str, Any], line_bytes: bytes, cfg: VgsiConfig,
                      image_ids: list[tuple[str, str]] | None = None) -> Article:
    """One VGSI JSON record -> Article. Raises VgsiError (with ``.reason``) when it cannot.

    ``image_ids``, when given, receives the (image URL, step_id) pairs of the article.
    """
    if not isinstance(rec, dict):
        raise VgsiError("record is not a JSON object", "not-an-object")
    file_id = rec.get("file_id")
    if file_id in (None, ""):
        raise VgsiError("record has no file_id", "no-file-id")
    goal = _str(rec.get("goal"))
    if not goal:
        raise VgsiError(f"article {file_id}: no goal", "no-goal")
    methods = rec.get("methods")
    if not isinstance(methods, list):
        raise VgsiError(f"article {file_id}: 'methods' is not a list", "bad-methods")
    title = _goal_title(goal)
    sections: list[Section] = []
    for mi, method in enumerate(methods):
        if not isinstance(method, dict) or not isinstance(method.get("steps"), list):
            raise VgsiError(f"article {file_id}: method {mi} has no steps list", "bad-methods")
        steps: list[Step] = []
        for si, st in enumerate(method["steps"]):
            if not isinstance(st, dict):
                raise VgsiError(f"article {file_id}: method {mi} step {si} is not an object", "bad-step")
            step_id = _str(st.get("step_id")) or f"{file_id}_{mi}_{si}"
            img = _str(st.get("img")) or f"vgsi:{step_id}"
            media = [Media(kind="image", url=img, license=_str(st.get("img_license")))]
            if image_ids is not None:
                image_ids.append((img, step_id))
            steps.append(Step(index=si + 1, summary=_str(st.get("headline")),
                              detail=_str(st.get("description")), media=media))
        name = _str(method.get("name"))
        kind = "part" if name.lower().startswith("part ") else "method"
        sections.append(Section(index=mi + 1, kind=kind, title=name, steps=steps))
    if len(sections) == 1 and not sections[0].title:
        sections[0].kind = "steps"
    categories = [c for c in (rec.get("category_hierarchy") or []) if isinstance(c, str)]
    return Article(id=str(file_id), url=_article_url(cfg.base_url, title), lang=cfg.lang, title=title,
                   goal=title, intro=_str(rec.get("goal_description")), categories=categories,
                   sections=sections, layout="vgsi", source="vgsi", sha256=sha256_bytes(line_bytes))


def _text_path(cfg: VgsiConfig) -> Path:
    if cfg.text_file is None:
        raise VgsiError("source.vgsi.text_file is not set (the path of WikihowText_data.json)", "no-text-file")
    path = Path(cfg.text_file)
    if not path.is_file():
        raise VgsiError(f"VGSI text file {path} does not exist", "no-text-file")
    return path


def _iter_lines_at(cfg: VgsiConfig) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset, line) of every non-blank line."""
    with open(_text_path(cfg), "rb") as f:
        offset = 0
        for n, line in enumerate(f, 1):
            if line.strip():
                yield n, offset, line.rstrip(b"\r\n")
            offset += len(line)


def scan_vgsi(cfg: VgsiConfig, on_reject: Callable[[Reject], None]) -> list[int]:
    """Byte offsets of the usable articles of the text file, in file order (at most ``cfg.max_articles``).

    Bad lines go to ``on_reject`` and are skipped, so one broken record never stops a build; the
    offsets let each corpus shard read just its own lines (:func:`read_vgsi_articles`).
    """
    return [offset for _, _, offset in _iter_records(cfg, on_reject)]


def read_vgsi_articles(cfg: VgsiConfig, offsets: list[int]) -> list[Article]:
    """The articles starting at these byte offsets (found by :func:`scan_vgsi`)."""
    out = []
    with open(_text_path(cfg), "rb") as f:
        for offset in offsets:
            f.seek(offset)
            line = f.readline().rstrip(b"\r\n")
            out.append(record_to_article(json.loads(line), line, cfg))
    return out


def iter_vgsi_articles(cfg: VgsiConfig, on_reject: Callable[[Reject], None] | None = None) -> Iterator[Article]:
    """Articles of the VGSI text file, in file order, at most ``cfg.max_articles``.

    A bad line raises :class:`VgsiError` naming file, line and reason - unless ``on_reject`` is
    given, which then receives a :class:`Reject` (stage ``"vgsi"``) and the reading goes on.
    """
    for article, _, _ in _iter_records(cfg, on_reject):
        yield article


def _iter_records(cfg: VgsiConfig, on_reject: Callable[[Reject], None] | None
                  ) -> Iterator[tuple[Article, list[tuple[str, str]], int]]:
    """(article, its (image URL, step_id) pairs, byte offset of its line) of every usable record."""
    count = 0
    seen: set[str] = set()
    for n, offset, line in _iter_lines_at(cfg):
        where = f"{cfg.text_file}:{n}"
        try:
            try:
                rec = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise VgsiError(f"not JSON ({exc})", "bad-json") from exc
            image_ids: list[tuple[str, str]] = []
            article = record_to_article(rec, line, cfg, image_ids)
            if article.id in seen:
                raise VgsiError(f"article {article.id} appears twice", "duplicate-file-id")
        except VgsiError as exc:
            if on_reject is None:
                raise VgsiError(f"{where}: {exc}", exc.reason) from exc
            on_reject(Reject(stage="vgsi", item_id=f"line-{n}", reason=exc.reason, detail=f"{where}: {exc}"))
            continue
        seen.add(article.id)
        yield article, image_ids, offset
        count += 1
        if cfg.max_articles and count >= cfg.max_articles:
            return


class VgsiImageStore:
    """Step images of VGSI by the step's image URL (the image-store protocol: ``get_bytes(url)``).

    ``cfg.images`` is a folder holding ``{step_id}.png`` (at any depth) or ``wiki_images.zip``.
    """

    def __init__(self, cfg: VgsiConfig):
        self.cfg = cfg
        self._lock = threading.Lock()
        self._url_to_step: dict[str, str] | None = None
        self._files: dict[str, Path] | None = None
        self._zip: zipfile.ZipFile | None = None
        self._zip_names: dict[str, str] = {}
        if cfg.images is None:
            raise VgsiError("source.vgsi.images is not set (a folder of {step_id}.png or wiki_images.zip)",
                            "no-images")
        root = Path(cfg.images)
        if root.is_file() and zipfile.is_zipfile(root):
            self._zip = zipfile.ZipFile(root)
            for name in self._zip.namelist():
                stem, ext = _split(name)
                if ext in _IMAGE_EXTS:
                    self._zip_names.setdefault(stem, name)
        elif root.is_dir():
            self._root = root
        else:
            raise VgsiError(f"VGSI images {root} is neither a folder nor a zip file", "no-images")

    def _map(self) -> dict[str, str]:
        with self._lock:
            if self._url_to_step is None:
                mapping: dict[str, str] = {}
                for _, image_ids, _ in _iter_records(self.cfg, on_reject=lambda r: None):
                    for url, step_id in image_ids:
                        mapping.setdefault(url, step_id)  # a picture reused by later steps: same file
                self._url_to_step = mapping
            return self._url_to_step

    def step_id(self, url: str) -> str | None:
        return self._map().get(url)

    def get_bytes(self, url: str) -> bytes | None:
        step_id = self.step_id(url)
        if step_id is None:
            return None
        if self._zip is not None:
            name = self._zip_names.get(step_id)
            return None if name is None else self._zip.read(name)
        with self._lock:
            if self._files is None:
                self._files = {}
                for p in sorted(self._root.rglob("*")):
                    stem, ext = _split(p.name)
                    if ext in _IMAGE_EXTS and p.is_file():
                        self._files.setdefault(stem, p)
        path = self._files.get(step_id)
        return None if path is None else path.read_bytes()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def _split(name: str) -> tuple[str, str]:
    base = name.rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    return (stem, f".{ext.lower()}") if dot else (base, "")
