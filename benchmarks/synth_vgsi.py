"""A wikiHow-VGSI-shaped synthetic source of any size, from a seed (issue 15: the `scale` bench).

Writes what ``wikihow-tiir build --profile vgsi`` reads, unchanged::

    <out>/WikihowText_data.json     JSON lines, one article per line (VGSI's schema)
    <out>/images/<step_id>.jpg|.png  step pictures (one flat folder, as in VGSI's wiki_images.zip)

Where the shapes come from:

* **methods per article, steps per method, lengths of headlines, descriptions, goal descriptions,
  method names; category paths, image licences**: the empirical distributions of the bundled English
  wikiHow pages (``data/sample/archive``, parsed with the project's parser). They agree with the
  VGSI statistics of ``shared/research/paper.md``: 53,189 articles, 772,294 step images (14.5 per
  article), 155,262 documents (2.9 methods per article), 4.97 images per document; the generator
  reports its own means beside those (:func:`summary`).
* **text**: a word bigram chain trained on the same pages (headlines from headline starts, method
  names from method names, goals "How to ..." from the titles), so texts are English, varied and
  never copies of one page: the language check passes, near-duplicate checks find what they would
  find on real text.
* **pictures**: real PNG/JPEG bytes drawn with Pillow from the seed (smooth colour fields, shapes,
  fine grain, like wikiHow's painted step illustrations), at wikiHow's step-image dimensions (728x546
  and 460x345 4:3 mostly, some 3:2, 16:9, portrait and square); about 85 % JPEG (what wikiHow serves)
  and 15 % PNG (what VGSI's ``{step_id}.png`` names suggest), so both decoders are exercised.
* **faults**, as a real release has: about 0.5 % of step pictures missing from the folder
  (``image-missing``), 0.1 % of files cut short (undecodable), 0.2 % of steps without an image URL.

Article ``i`` depends only on (seed, i): the first k articles of a larger source are the k articles of
a smaller one, so sizes nest and a smaller source can hard-link the pictures of a larger one
(``images_from``). Same seed and size => byte-identical files.

``python -m benchmarks.synth_vgsi --articles 2000 --out data/builds/synth-2000 [--seed 13] [--workers 2]``
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GENERATOR_VERSION = "2"
REPO = Path(__file__).resolve().parent.parent
ARCHIVE = REPO / "data" / "sample" / "archive"
TEXT_FILE = "WikihowText_data.json"
IMAGES = "images"

# VGSI statistics (shared/research/paper.md, section 1.1 and the corpus row of the statistics table)
VGSI = {"articles": 53_189, "step_images": 772_294, "documents": 155_262,
        "images_per_article": 772_294 / 53_189, "methods_per_article": 155_262 / 53_189,
        "images_per_document": 4.97}

# wikiHow step-image sizes (width, height, weight): the 728 px "large" and 460 px images are 4:3; videos'
# stills 16:9; some 3:2 photos, portrait and square pictures
IMAGE_SIZES = ((728, 546, 0.62), (460, 345, 0.18), (728, 485, 0.06), (728, 410, 0.06), (546, 728, 0.04),
               (728, 728, 0.04))
JPEG_SHARE = 0.85
MISSING_IMAGE = 0.005  # the file is absent
CUT_IMAGE = 0.001  # the file is cut short
NO_IMAGE_URL = 0.002  # the step has no "img" (the reader keys it as vgsi:<step_id>)
_WORD = re.compile(r"\S+")


# --------------------------------------------------------------------------- the model of the bundled pages


_END = "\x00"  # after a text's last word


@dataclass
class _Chain:
    """A word bigram chain with text ends: next words of each word (``_END`` closes a text) and starts."""

    next: dict[str, list[str]] = field(default_factory=dict)
    starts: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        words = _WORD.findall(text)
        if not words:
            return
        self.starts.append(words[0])
        for a, b in zip(words, [*words[1:], _END], strict=True):
            self.next.setdefault(a, []).append(b)

    def sentence(self, rng: random.Random, n_words: int, start: str | None = None, end: str = ".") -> str:
        """A walk from ``start`` (or a random text start) to a text end, of about ``n_words`` words
        (the closest of a few walks: the chain ends where its pages' sentences end)."""
        best: list[str] = []
        for _ in range(8):
            words = [start or rng.choice(self.starts)]
            while len(words) < 2 * n_words + 2:
                nxt = rng.choice(self.next.get(words[-1]) or [_END])
                if nxt == _END:
                    break
                words.append(nxt)
            if not best or abs(len(words) - n_words) < abs(len(best) - n_words) or len(best) < 2 <= len(words):
                best = words
            if abs(len(best) - n_words) <= max(1, n_words // 5):
                break
        text = " ".join(best).rstrip(".,;:!?")
        return text[0].upper() + text[1:] + end


@dataclass
class PageModel:
    """The distributions of the bundled English wikiHow pages the generator samples from."""

    methods_per_article: list[int]
    steps_per_method: list[int]
    headline_words: list[int]
    description_words: list[int]
    intro_words: list[int]
    method_name_words: list[int]
    goal_words: list[int]
    categories: list[list[str]]
    licences: list[str]
    headline: _Chain
    text: _Chain
    method_name: _Chain
    goal: _Chain
    articles: int


def page_model(archive: Path = ARCHIVE) -> PageModel:
    """The distributions of the English pages of the bundled archive (parsed with the project's parser)."""
    from wikihow_tiir.parse import ParseError, parse_html
    from wikihow_tiir.sources.archive import Archive

    arc = Archive(archive)
    m = PageModel([], [], [], [], [], [], [], [], [], _Chain(), _Chain(), _Chain(), _Chain(), 0)
    for rec in arc.pages():
        try:
            art = parse_html(arc.read(rec).decode("utf-8", "replace"), url=rec.url)
        except ParseError:
            continue
        if art.lang != "en":
            continue
        m.articles += 1
        m.methods_per_article.append(len(art.sections))
        goal = art.title.removeprefix("How to ").split(" (")[0]
        m.goal.add(goal)
        m.goal_words.append(len(_WORD.findall(goal)))
        m.intro_words.append(len(_WORD.findall(art.intro)))
        m.text.add(art.intro)
        if art.categories:
            m.categories.append(list(art.categories))
        for sec in art.sections:
            m.steps_per_method.append(len(sec.steps))
            if sec.title:
                m.method_name.add(sec.title)
                m.method_name_words.append(len(_WORD.findall(sec.title)))
            for st in sec.steps:
                m.headline.add(st.summary)
                m.headline_words.append(max(1, len(_WORD.findall(st.summary))))
                m.description_words.append(len(_WORD.findall(st.detail)))
                for line in st.detail.splitlines():
                    m.text.add(line.lstrip("- "))
    for rec in arc.records():
        if rec.kind == "image":
            m.licences.append(rec.license)
    for values in (m.methods_per_article, m.steps_per_method, m.headline_words, m.description_words,
                   m.intro_words, m.method_name_words, m.goal_words, m.licences):
        values.sort()
    m.categories.sort()
    return m


# --------------------------------------------------------------------------- one article


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-") or "Step"


def article_record(model: PageModel, seed: int, index: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """VGSI record of article ``index`` and the pictures of its steps (step_id, format, size, fault, seed).

    Depends only on (seed, index), never on the other articles."""
    rng = random.Random(f"vgsi-synth:{seed}:{index}")
    # wikiHow article ids, unique and in no particular order (a release is not sorted by id)
    file_id = 10_000_000 + ((index + 1_000_003 * seed) * 2_654_435_761) % (1 << 24)
    # a goal: a walk of the headline chain (imperative like the titles; the 14 titles alone are too few)
    goal = model.headline.sentence(rng, max(2, rng.choice(model.goal_words)), end="")
    slug = _slug(goal)
    methods = []
    pictures = []
    n_methods = rng.choice(model.methods_per_article)
    for mi in range(n_methods):
        steps = []
        for si in range(rng.choice(model.steps_per_method)):
            step_id = f"{file_id}_{mi}_{si}"
            k = len(pictures) + 1
            name = f"{slug}-Step-{k}"
            h = f"{(file_id * 31 + k) % 16:x}"
            img = "" if rng.random() < NO_IMAGE_URL else (
                f"https://www.wikihow.com/images/thumb/{h}/{h}{(k * 7) % 16:x}/{name}.jpg/"
                f"aid{file_id}-v4-728px-{name}.jpg")
            desc_n = rng.choice(model.description_words)
            description = " ".join(model.text.sentence(rng, max(3, min(25, desc_n - d)))
                                   for d in range(0, desc_n, 25)) if desc_n else ""
            steps.append({"headline": model.headline.sentence(rng, rng.choice(model.headline_words)),
                          "description": description, "img": img,
                          "img_license": rng.choice(model.licences), "step_id": step_id})
            w, hgt = rng.choices([(a, b) for a, b, _ in IMAGE_SIZES], [p for _, _, p in IMAGE_SIZES])[0]
            fault = rng.random()
            pictures.append({"step_id": step_id, "width": w, "height": hgt,
                             "format": "JPEG" if rng.random() < JPEG_SHARE else "PNG",
                             "fault": "missing" if fault < MISSING_IMAGE else
                             "cut" if fault < MISSING_IMAGE + CUT_IMAGE else None,
                             "seed": rng.getrandbits(32)})
        name = "" if n_methods == 1 and rng.random() < 0.5 else \
            model.method_name.sentence(rng, rng.choice(model.method_name_words), end="")
        methods.append({"name": name, "steps": steps})
    intro_n = rng.choice(model.intro_words)
    record = {"file_id": file_id, "goal": f"How to {goal}",
              "goal_description": " ".join(model.text.sentence(rng, max(3, min(25, intro_n - d)))
                                           for d in range(0, intro_n, 25)),
              "category_hierarchy": list(rng.choice(model.categories)) if model.categories else [],
              "methods": methods}
    return record, pictures


def picture_bytes(pic: dict[str, Any]) -> bytes:
    """A painted-looking picture of the given size and format, from its seed (Pillow + numpy, ~10 ms)."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(pic["seed"])
    w, h = pic["width"], pic["height"]
    # smooth colour field: a coarse random grid scaled up (the flat-shaded backgrounds of wikiHow art)
    coarse = Image.fromarray(rng.integers(40, 230, (6, 8, 3), dtype=np.uint8), "RGB")
    img = coarse.resize((w, h), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(6, 14))):  # objects: hands, tools, food ... as coloured shapes
        x0, y0 = int(rng.integers(0, w - 8)), int(rng.integers(0, h - 8))
        x1, y1 = x0 + int(rng.integers(8, w // 2)), y0 + int(rng.integers(8, h // 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        outline = tuple(max(0, c - 70) for c in colour)
        shape = int(rng.integers(0, 3))
        if shape == 0:
            draw.ellipse((x0, y0, x1, y1), fill=colour, outline=outline, width=3)
        elif shape == 1:
            draw.rounded_rectangle((x0, y0, x1, y1), radius=12, fill=colour, outline=outline, width=3)
        else:
            draw.line((x0, y0, x1, y1), fill=outline, width=int(rng.integers(3, 12)))
    # brush texture: fine grain (what keeps JPEG at wikiHow's ~60-110 KB for 728x546)
    arr = np.asarray(img, dtype=np.int16) + rng.integers(-6, 7, (h, w, 1), dtype=np.int16)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    buf = io.BytesIO()
    if pic["format"] == "JPEG":
        img.save(buf, format="JPEG", quality=85)
    else:
        img.save(buf, format="PNG", compress_level=1)  # fast to write; decoding costs the same
    data = buf.getvalue()
    return data[: len(data) // 3] if pic["fault"] == "cut" else data


def picture_path(images: Path, step_id: str, fmt: str) -> Path:
    return images / f"{step_id}{'.jpg' if fmt == 'JPEG' else '.png'}"


# --------------------------------------------------------------------------- the whole source


def _write_pictures(args: tuple[str, list[dict[str, Any]], str | None]) -> int:
    images, pictures, images_from = args
    written = 0
    for pic in pictures:
        if pic["fault"] == "missing":
            continue
        path = picture_path(Path(images), pic["step_id"], pic["format"])
        if path.is_file():
            continue
        if images_from is not None:
            src = picture_path(Path(images_from), pic["step_id"], pic["format"])
            if src.is_file():
                try:
                    os.link(src, path)
                    continue
                except OSError:
                    pass
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(picture_bytes(pic))
        tmp.replace(path)
        written += 1
    return written


def generate(out: str | Path, articles: int, seed: int = 13, workers: int = 1,
             images_from: str | Path | None = None) -> dict[str, Any]:
    """Write a synthetic VGSI source of ``articles`` articles into ``out``; returns :func:`summary`'s figures.

    A finished source (``<out>/synth.json`` with the same seed, size and generator version) is kept as is;
    an interrupted one is completed (pictures already written are not drawn again). ``images_from``: the
    folder of another source of the same seed whose pictures are hard-linked instead of drawn again."""
    out = Path(out)
    stamp = {"generator": GENERATOR_VERSION, "seed": seed, "articles": articles}
    done = out / "synth.json"
    if done.is_file():
        old = json.loads(done.read_text(encoding="utf-8"))
        if {k: old.get(k) for k in stamp} == stamp:
            return old
    started = time.perf_counter()
    model = page_model()
    images = out / IMAGES
    images.mkdir(parents=True, exist_ok=True)
    records, all_pictures = [], []
    for i in range(articles):
        rec, pics = article_record(model, seed, i)
        records.append(rec)
        all_pictures.append(pics)
    text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records).encode("utf-8")
    tmp = out / f".{TEXT_FILE}.tmp"
    tmp.write_bytes(text)
    tmp.replace(out / TEXT_FILE)
    src = None
    if images_from is not None:  # only pictures of the same generator and seed are the same pictures
        other = Path(images_from) / "synth.json"
        theirs = json.loads(other.read_text(encoding="utf-8")) if other.is_file() else {}
        if (theirs.get("generator"), theirs.get("seed")) == (GENERATOR_VERSION, seed):
            src = str(Path(images_from) / IMAGES)
    jobs = [(str(images), [p for pics in all_pictures[i:i + 50] for p in pics], src)
            for i in range(0, articles, 50)]
    if workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            drawn = sum(pool.imap_unordered(_write_pictures, jobs))
    else:
        drawn = sum(map(_write_pictures, jobs))
    figures = {**stamp, **summary(records, [p for pics in all_pictures for p in pics], images),
               "text_bytes": len(text), "pages_modelled": model.articles, "pictures_drawn": drawn,
               "generate_s": round(time.perf_counter() - started, 1)}
    done.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return figures


def summary(records: list[dict[str, Any]], pictures: list[dict[str, Any]], images: Path) -> dict[str, Any]:
    """The generated distributions beside VGSI's (means), and the bytes of the pictures."""
    methods = [len(r["methods"]) for r in records]
    steps = [len(m["steps"]) for r in records for m in r["methods"]]
    headline = [len(s["headline"].split()) for r in records for m in r["methods"] for s in m["steps"]]
    two_plus = sum(1 for n in steps if n >= 2)
    files = [p for p in images.rglob("*") if p.is_file()]
    sizes = Counter(f"{p['width']}x{p['height']}" for p in pictures)
    n = max(1, len(records))
    return {
        "steps": len(headline),
        "methods_per_article": round(sum(methods) / n, 2),
        "documents_per_article_2plus_steps": round(two_plus / n, 2),
        "steps_per_article": round(len(headline) / n, 2),
        "steps_per_method": round(sum(steps) / max(1, len(steps)), 2),
        "headline_words_mean": round(sum(headline) / max(1, len(headline)), 2),
        "image_sizes": {k: round(v / max(1, len(pictures)), 3) for k, v in sorted(sizes.items())},
        "image_formats": dict(sorted(Counter(p["format"] for p in pictures).items())),
        "image_faults": dict(sorted(Counter(p["fault"] for p in pictures if p["fault"]).items())),
        "image_files": len(files),
        "image_bytes": sum(p.stat().st_size for p in files),
        "vgsi": {"methods_per_article": round(VGSI["methods_per_article"], 2),
                 "steps_per_article": round(VGSI["images_per_article"], 2),
                 "images_per_document": VGSI["images_per_document"]},
    }


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--articles", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--images-from", default=None)
    a = ap.parse_args(argv)
    print(json.dumps(generate(a.out, a.articles, a.seed, a.workers, a.images_from), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
