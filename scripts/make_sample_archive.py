"""Build the bundled offline archive ``data/sample/archive/`` from the real wikiHow fixture pages.

    .venv/bin/python scripts/make_sample_archive.py            # (re)build data/sample/archive
    .venv/bin/python scripts/make_sample_archive.py --check    # rebuild in a temp dir, compare, exit 1 on a difference
    .venv/bin/python scripts/make_sample_archive.py -o /tmp/a  # build somewhere else

What goes in (format: ``wikihow_tiir/sources/archive.py``):

* one ``kind="page"`` record per page in ``tests/fixtures/wikihow_html/*.html``, keyed by the
  page's real URL (its canonical link, else its wiki page name on the wiki of its language), the
  body byte-identical to the fixture, ``fetched_at`` the capture date from the fixtures'
  SOURCES.md (a fixed string, so the output never depends on when the script ran);
* one ``kind="image"`` record per step-image URL the parser finds (the still of each step image
  or video, and the other size variant of a step image, sharing one blob), whose body is a
  locally rendered stand-in card (``wikihow_tiir.sources.standins``), ``stand_in=True``;
* ``ARCHIVE.md`` (what this is, attribution, licences) and ``manifest.json`` (counts and the
  renderer fingerprint the stand-in bytes depend on).

The output is byte-identical on every run with the same Pillow build.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(REPO))

from wikihow_tiir.io import atomic_write_text, dumps, sha256_bytes  # noqa: E402
from wikihow_tiir.sources.archive import Archive  # noqa: E402
from wikihow_tiir.sources.standins import ORIGIN, render_stand_in, renderer_fingerprint  # noqa: E402

DEFAULT_FIXTURES = Path("tests/fixtures/wikihow_html")
DEFAULT_OUTPUT = Path("data/sample/archive")
SCRIPT = "scripts/make_sample_archive.py"
PAGE_CONTENT_TYPE = "text/html; charset=utf-8"
IMAGE_CONTENT_TYPE = "image/jpeg"

# Capture dates, from tests/fixtures/wikihow_html/SOURCES.md. Where it gives only a month or a
# year, the first day of it; for the ja pages the upstream commit date (2022-08-23; the pages'
# dateModified values go up to 2022-06-21), i.e. the latest date the capture can have.
CAPTURED = {
    "administer-first-aid-to-a-choking-child.fragment.html": ("2009-04-01T00:00:00Z", "2009-04 (iPhone app cache)"),
    "clean-gold-jewelry.html": ("2010-01-01T00:00:00Z", "~2010 (last edited 2009-12-31)"),
    "cook-lamb-steaks.html": ("2020-08-15T00:00:00Z", "2020-08-15 crawl"),
    "cope-with-the-stress-of-homeschooling.html": ("2020-08-21T00:00:00Z", "2020-08-21 crawl"),
    "determine-if-an-information-source-is-reliable.html": ("2020-08-15T00:00:00Z", "2020-08-15 crawl"),
    "find-good-exercises-for-kids-online.html": ("2020-08-21T00:00:00Z", "2020-08-21 crawl"),
    "grill-fish.html": ("2020-08-15T00:00:00Z", "2020-08-15 crawl"),
    "grill-zucchini.html": ("2020-08-21T00:00:00Z", "2020-08-21 crawl"),
    "ja-apply-foundation.html": ("2022-08-23T00:00:00Z", "2022 (committed 2022-08-23)"),
    "ja-cook-adobo-quality-review.html": ("2022-08-23T00:00:00Z", "2022 (committed 2022-08-23)"),
    "ja-deal-with-people-who-ignore-you.html": ("2022-08-23T00:00:00Z", "2022 (committed 2022-08-23)"),
    "ja-get-your-crush-to-like-you.html": ("2022-08-23T00:00:00Z", "2022 (committed 2022-08-23)"),
    "ja-prepare-for-job-hunting.html": ("2022-08-23T00:00:00Z", "2022 (committed 2022-08-23)"),
    "ja-remove-grease-and-oil-from-a-car-interior.html": ("2022-08-23T00:00:00Z", "2022 (committed 2022-08-23)"),
    "know-if-you-are-in-ketosis.html": ("2020-08-21T00:00:00Z", "2020-08-21 crawl"),
    "make-ube-halaya.html": ("2020-08-15T00:00:00Z", "2020-08-15 crawl"),
    "marinate-pork.html": ("2020-08-21T00:00:00Z", "2020-08-21 crawl"),
    "prevent-cardio-from-burning-muscle.html": ("2020-08-15T00:00:00Z", "2020-08-15 crawl"),
    "unclog-a-toilet.fragment.html": ("2011-09-01T00:00:00Z", "2011-09 (Android app cache)"),
    "verify-your-youtube-account.html": ("2020-08-15T00:00:00Z", "2020-08-15 crawl"),
}

_CANONICAL = re.compile(rb"""<link\s+rel=["']canonical["']\s+href=["']([^"']+)["']""", re.I)
_WG_PAGE = re.compile(rb"""["']?wgPageName["']?\s*[:=]\s*"((?:[^"\\]|\\.)*)\"""")
_EDIT_TITLE = re.compile(rb"index\.php\?title=([^&\"'#\s]+)&(?:amp;)?action=edit")


class BuildError(RuntimeError):
    pass


@dataclass(slots=True)
class PageInfo:
    file: str
    url: str
    fetched_at: str
    captured: str
    sha256: str
    size: int
    title: str = ""
    parse: str = ""  # "ok" or the parser's reject reason
    media: int = 0  # step media items with a still
    image_urls: int = 0  # image records keyed to this page


def page_url(file_name: str, body: bytes) -> str:
    """The page's real URL: its canonical link, else its wiki page name on the wiki of its language."""
    m = _CANONICAL.search(body)
    if m:
        return m.group(1).decode("utf-8")
    host = "https://www.wikihow.jp" if file_name.startswith("ja-") else "https://www.wikihow.com"
    m = _WG_PAGE.search(body)
    if m:
        name = json.loads(b'"' + m.group(1) + b'"')
    else:
        m = _EDIT_TITLE.search(body)
        if not m:
            raise BuildError(f"{file_name}: no canonical link and no page name; add its URL to the script")
        name = unquote(m.group(1).decode("utf-8").replace("&amp;", "&"))
    # the same quoting as wikihow_tiir.parse (page.canonical_url), so both name the page alike
    return f"{host}/{quote(name.replace(' ', '-'), safe='-()_.,:~!*')}"


def _step_caption(step) -> str:
    """What the card says about the step: its bold summary, else the first line of its text."""
    if step.summary:
        return step.summary
    return step.detail.split("\n", 1)[0] if step.detail else ""


def build(output: Path, fixtures: Path) -> dict:
    """Build the archive into ``output`` (which must not exist yet); return the manifest."""
    from wikihow_tiir.parse import ParseError, parse_html

    files = sorted(p for p in fixtures.glob("*.html") if p.is_file())
    if not files:
        raise BuildError(f"{fixtures}: no *.html fixture pages")
    unknown = sorted({p.name for p in files} - set(CAPTURED))
    if unknown:
        raise BuildError(f"no capture date for {', '.join(unknown)}: add them to CAPTURED (from SOURCES.md)")
    archive = Archive(output, create=True)
    pages: list[PageInfo] = []
    image_records = 0
    blobs: set[str] = set()
    stored: dict[str, str] = {}  # image URL -> page URL that claimed it first

    for path in files:
        body = path.read_bytes()
        fetched_at, captured = CAPTURED[path.name]
        info = PageInfo(file=path.name, url=page_url(path.name, body), fetched_at=fetched_at, captured=captured,
                        sha256=sha256_bytes(body), size=len(body))
        if any(p.url == info.url for p in pages):
            raise BuildError(f"{path.name}: URL {info.url} already used by another fixture")
        archive.put(info.url, body, "page", status=200, fetched_at=fetched_at, content_type=PAGE_CONTENT_TYPE,
                    origin=f"fixture:{path.name}")
        try:
            article = parse_html(body, url=info.url)
        except ParseError as exc:
            info.parse = exc.reason
            pages.append(info)
            continue
        info.parse, info.title = "ok", article.title
        goal = article.goal or article.title
        for section in article.sections:
            for step in section.steps:
                for media in step.media:
                    still = media.still_url
                    if not still:
                        continue
                    info.media += 1
                    # every URL a lookup may try for this picture; a video's clip URL is not a picture
                    variants = [still] + ([media.url, media.large_url] if media.kind == "image" else [])
                    new = [u for u in dict.fromkeys(v for v in variants if v) if u not in stored]
                    if still not in new:
                        continue  # the same picture is used again (or by another page): one record is enough
                    card = render_stand_in(goal, _step_caption(step), seed_key=still)
                    blobs.add(sha256_bytes(card))
                    for url in new:
                        archive.put(url, card, "image", status=200, fetched_at=fetched_at,
                                    content_type=IMAGE_CONTENT_TYPE, stand_in=True, license=media.license,
                                    page_url=info.url, origin=ORIGIN)
                        stored[url] = info.url
                        info.image_urls += 1
                        image_records += 1
        pages.append(info)
    archive.compact()

    manifest = {
        "built_by": SCRIPT,
        "fixtures": str(DEFAULT_FIXTURES),
        "pages": len(pages),
        "pages_parsed": sum(p.parse == "ok" for p in pages),
        "image_records": image_records,
        "stand_in_images": len(blobs),
        "renderer": renderer_fingerprint(),
        "index_sha256": sha256_bytes((output / "index.jsonl").read_bytes()),
        "page_list": [{"file": p.file, "url": p.url, "sha256": p.sha256, "fetched_at": p.fetched_at,
                       "parse": p.parse, "step_media": p.media, "image_urls": p.image_urls} for p in pages],
    }
    atomic_write_text(output / "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(output / "ARCHIVE.md", render_readme(manifest, pages))
    return manifest


def render_readme(manifest: dict, pages: list[PageInfo]) -> str:
    fp = manifest["renderer"]
    rows = "\n".join(
        f"| `{p.file}` | {unquote(p.url)} | {p.captured} | {p.parse} | {p.media} | {p.image_urls} |" for p in pages)
    return f"""# The bundled sample archive

This folder is the offline source of `make build-dataset` (profile `sample`): **{manifest['pages']} real
wikiHow pages** and **{manifest['stand_in_images']} stand-in step images** under {manifest['image_records']}
image URLs. It is generated by `{SCRIPT}`; do not edit it by hand.

## Every image here is a stand-in

wikiHow's image CDN cannot be reached from where this archive was built, and no real step-image
bytes exist in any reachable source. Every `kind="image"` record therefore holds a **locally
rendered card**, not the picture its URL serves: a background and shapes derived from a hash of
the URL, the article goal, the step's summary, the image file name, and a red banner
"STAND-IN - real image not available offline". Such records have `"stand_in": true` and
`"origin": "{ORIGIN}"`; the flag is carried into every image position of the built dataset
(`image_meta.stand_in`), its manifest and its dataset card. Scores on a dataset built from this
archive say nothing about real wikiHow images. A live crawl (`wikihow-tiir crawl`) fills an
archive of the same format with the real pictures.

Each step picture is stored under all the URLs a lookup may use for it (the still: the 728 px
`large_url` or the 460 px `url` of a step image, or the `poster_url` of a step video; and the
other size variant of an image), all pointing to one blob.

## Format

```
index.jsonl                one JSON record per URL, sorted by URL (see wikihow_tiir/sources/archive.py)
blobs/<sha[:2]>/<sha256>   the exact bodies, named by their sha256
manifest.json              counts, per-page results and the renderer fingerprint
```

Record fields: `url`, `kind` (`page` | `image`), `sha256`, `size`, `status`, `fetched_at`,
`content_type`, `headers`, `stand_in`, `license`, `page_url`, `origin`, `error`. Page records have
`origin: "fixture:<file>"` and the exact bytes of `tests/fixtures/wikihow_html/<file>`;
`fetched_at` is the capture date from that folder's `SOURCES.md` (first day of the month or year
where only that is known; for the ja pages the upstream commit date, 2022-08-23). Image records
have `page_url` (the article that uses the picture) and `license`: the per-image licence text
the page gives for **the real picture** the card stands in for.

## Pages

| fixture | URL | captured | parse | step media | image URLs |
|---|---|---|---|---|---|
{rows}

`parse` is `ok` or the parser's reject reason: the set deliberately includes a ja page that is
only a "quality review" notice and two article-body fragments from 2009/2011 app caches, so a
build shows how such pages are handled.

## Attribution and licences

* **Article text**: wikiHow, Inc., licensed under **Creative Commons BY-NC-SA 3.0**
  (https://creativecommons.org/licenses/by-nc-sa/3.0/); authors are listed on each article's
  wikiHow page ("Author Info"). Non-commercial use, share-alike, attribution to wikiHow required.
  The stand-in cards quote article goals and step summaries and are under the same licence.
* **Step images and videos are not uniformly CC**: each real step image carries its own licence
  (the `licensing` field of its hidden `.image_details` JSON), copied into each image record's
  `license`. In this set most 2020 English step images say "(c) 2020 wikiHow, Inc. All rights
  reserved ... not licensed under the Creative Commons license"; some say "License: Creative
  Commons", screenshots "Fair Use (screenshot)", and the 2022 Japanese pages leave it empty. No
  real image bytes are included.
* **Where the pages come from** (unmodified copies of pages committed in public GitHub
  repositories; full table with paths and blob ids in `tests/fixtures/wikihow_html/SOURCES.md`):
  * MahsaSeifikar/wikihow-data-pipeline, commits `1cbdca5c3d5af43772d914d1b08957619453b323`
    (crawl 2020-08-15) and `f52936d98abf30198f8b31009e33a51b7a9de235` (crawl 2020-08-21): the 2020
    English pages (repository licence: none stated);
  * TingxuanLiAcademia/wikihow_qa_dataset, commit `bf0a7b6c2302d414662cf855eaf920e094b3ee69`: the six
    ja.wikihow.jp pages (none stated);
  * lewiscawte/wikihow (a mirror of wikiHow's own source tree), commit
    `b174faefe2ac1251d28457b5348937b727ce0606`: `clean-gold-jewelry.html` (none stated);
  * keishi/wikihow-iphone-app, commit `37bd0f16db3ddacb6dae67e3ca96315a3025c442`: the 2009 fragment
    ("wikiHow iPhone App (c) 2009 wikiHow.com and Keishi Hattori (MIT)" per Credits.txt);
  * rziegler/wikiHowAndroid, commit `a4e96dbf9705bac2b4dff2e326c946d69e728f4c`: the 2011 fragment
    (none stated).

  In all cases the page content itself is wikiHow's (CC BY-NC-SA 3.0 for text).

## Regenerate

```
.venv/bin/python {SCRIPT}            # rewrites this folder
.venv/bin/python {SCRIPT} --check    # verifies it is up to date (exit 1 when not)
```

The bytes depend only on the fixtures, the parser and the Pillow build (it bundles FreeType and
libjpeg-turbo; the card text uses Pillow's built-in font, never a system font). This copy was
made with {fp['renderer']}, Pillow {fp['pillow']}, FreeType {fp['freetype']}, libjpeg-turbo {fp['libjpeg_turbo']}.
"""


def _same_tree(a: Path, b: Path) -> list[str]:
    """Relative paths that differ between two folders (missing on either side or other bytes)."""
    def files(root: Path) -> set[str]:
        return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}

    fa, fb = files(a), files(b)
    diff = sorted(fa ^ fb)
    diff += sorted(f for f in fa & fb if not filecmp.cmp(a / f, b / f, shallow=False))
    return diff


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", type=Path, default=REPO / DEFAULT_OUTPUT, help="archive folder to write")
    ap.add_argument("--fixtures", type=Path, default=REPO / DEFAULT_FIXTURES, help="folder of wikiHow pages")
    ap.add_argument("--check", action="store_true", help="compare a fresh build with --output; write nothing")
    args = ap.parse_args(argv)
    output: Path = args.output
    with tempfile.TemporaryDirectory(prefix="wikihow-tiir-sample-archive-") as tmp:
        fresh = Path(tmp) / "archive"
        try:
            manifest = build(fresh, args.fixtures)
        except BuildError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if args.check:
            if not output.is_dir():
                print(f"{output} does not exist; run without --check to build it", file=sys.stderr)
                return 1
            diff = _same_tree(fresh, output)
            if diff:
                print(f"{output} is out of date ({len(diff)} files differ, e.g. {diff[:3]}); "
                      f"run {SCRIPT} to rebuild", file=sys.stderr)
                return 1
            print(f"{output} is up to date ({manifest['pages']} pages, {manifest['image_records']} image URLs)")
            return 0
        if output.exists():
            shutil.rmtree(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(fresh, output)
    print(dumps({k: manifest[k] for k in ("pages", "pages_parsed", "image_records", "stand_in_images")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
