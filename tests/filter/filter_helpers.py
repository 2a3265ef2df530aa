"""Small hand-written corpora and queries for the filter and split tests.

Five English articles (two of them with two methods) and one Japanese article; each query is a
first-person paraphrase of its positive document, as the paper's generator writes them.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from wikihow_tiir.model import Document, ImageMeta, Interleaved, Query

ARTICLES = {
    "rims": ("en", "How to Clean Car Rims", {
        1: ("Washing the Rims", ["Rinse the rims with a hose.", "Spray wheel cleaner on each rim.",
                                 "Scrub the rims with a soft brush.", "Dry the rims with a microfiber towel."]),
        2: ("Polishing the Rims", ["Apply metal polish to a cloth.", "Rub the polish over the rim in circles.",
                                   "Buff the rims until they shine."]),
    }),
    "zucchini": ("en", "How to Grill Zucchini", {
        1: ("Grilling Zucchini Slices", ["Cut the zucchini into long slices.", "Brush the slices with olive oil.",
                                         "Season with salt and pepper.", "Grill each side for four minutes."]),
    }),
    "toilet": ("en", "How to Unclog a Toilet", {
        1: ("Using a Plunger", ["Put on rubber gloves.", "Place a flange plunger over the drain hole.",
                                "Push and pull the plunger firmly ten times.", "Flush to check the drain."]),
        2: ("Using Hot Water and Soap", ["Squirt dish soap into the bowl.", "Pour a bucket of hot water from waist height.",
                                         "Wait twenty minutes and flush."]),
    }),
    "tomatoes": ("en", "How to Plant Tomatoes", {
        1: ("Planting Seedlings", ["Choose a sunny spot in the garden.", "Dig a deep hole for each seedling.",
                                   "Bury the stem up to the first leaves.", "Water the plants deeply."]),
    }),
    "letter": ("en", "How to Write a Cover Letter", {
        1: ("Drafting the Letter", ["Address the hiring manager by name.", "Open with the job you are applying for.",
                                    "Describe two achievements that match the job.", "Close by asking for an interview."]),
    }),
    "foundation": ("ja", "ファンデーションを塗る方法", {
        1: ("肌を整える", ["洗顔して肌を清潔にする。", "化粧水で肌を保湿する。", "化粧下地を顔全体に薄く伸ばす。"]),
    }),
}

QUERY_TEXTS = {
    "rims": [
        "My car wheels are covered in brown brake dust after a long road trip and they look terrible.",
        "I tried the automatic car wash but the grime between the spokes is still there.",
        "What should I do to get the wheels really clean without scratching them?",
    ],
    "zucchini": [
        "I bought a big green squash at the farmers market and want to cook it on my barbecue tonight.",
        "Last time the pieces stuck to the hot grate and turned mushy.",
        "How do I prepare and cook it so it gets nice char marks?",
    ],
    "toilet": [
        "Water in my bathroom bowl keeps rising every time someone flushes and it almost spilled over.",
        "I do not have any chemical drain cleaner in the house.",
        "What can I do right now to get the water draining again?",
    ],
    "tomatoes": [
        "I bought a few young tomato plants from the nursery and have an empty patch in my backyard.",
        "I have never grown vegetables before and worry they will wilt.",
        "How should I put them in the ground so they grow strong?",
    ],
    "letter": [
        "I found a marketing job posting that I really want, and the application asks for a one page introduction.",
        "I have no idea how to start it or what to say about my experience.",
        "How do I write something that gets me an interview?",
    ],
    "foundation": [
        "化粧をするといつも肌がかさかさして、ファンデーションがきれいにのりません。",
        "朝の忙しい時間でも、顔の準備をきちんとしたいです。",
        "どうすれば肌をなめらかに整えられますか？",
    ],
}
QUERY_DOC = {"rims": 1, "zucchini": 1, "toilet": 1, "tomatoes": 1, "letter": 1, "foundation": 1}


def phash_of(i: int) -> str:
    """Well-separated 64-bit hashes: i-th hash differs from the others in many bits."""
    import hashlib

    return hashlib.sha256(f"img-{i}".encode()).hexdigest()[:16]


def make_doc(article: str, section: int, image_base: int = 0) -> Document:
    lang, goal, sections = ARTICLES[article]
    title, steps = sections[section]
    content = Interleaved()
    content.add_text(goal)
    content.add_text(title)
    for k, step in enumerate(steps):
        content.add_text(step)
        content.add_image(ImageMeta(source_url=f"doc://{article}/{section}/{k}",
                                    phash=phash_of(1000 + image_base + 100 * section + k)))
    return Document(id=Document.make_id(article, section), article_id=article, url=f"https://example/{article}",
                    lang=lang, goal=goal, section_title=title, section_kind="method", section_index=section,
                    content=content)


def make_corpus() -> list[Document]:
    docs = []
    for a, (_, _, sections) in ARTICLES.items():
        base = 10_000 * len(docs)
        docs.extend(make_doc(a, s, base) for s in sections)
    return docs


def make_query(article: str, qid: str | None = None, texts: list[str] | None = None, n_images: int = 2,
               prompts: list[str] | None = None, image_hashes: list[str] | None = None,
               lang: str | None = None) -> Query:
    texts = list(texts if texts is not None else QUERY_TEXTS[article])
    content = Interleaved()
    for k, t in enumerate(texts):
        content.add_text(t)
        if k < n_images:
            h = image_hashes[k] if image_hashes else phash_of(hash_index(article, k))
            content.add_image(ImageMeta(source_url=f"gen://{article}/{k}", phash=h))
    for k in range(len(texts), n_images):
        h = image_hashes[k] if image_hashes else phash_of(hash_index(article, k))
        content.add_image(ImageMeta(source_url=f"gen://{article}/{k}", phash=h))
    prompts = prompts if prompts is not None else [f"a photo about {ARTICLES[article][1].lower()}"] * n_images
    return Query(id=qid or f"q-{article}", positive_id=Document.make_id(article, QUERY_DOC[article]),
                 article_id=article, lang=lang or ARTICLES[article][0], content=content, image_prompts=prompts)


def hash_index(article: str, k: int) -> int:
    return 500 + 10 * list(ARTICLES).index(article) + k


def make_queries() -> list[Query]:
    return [make_query(a) for a in QUERY_TEXTS]


# one embedding cache for the whole test session: the same corpus is not re-encoded by every test
SHARED_CACHE = Path(tempfile.mkdtemp(prefix="wikihow-tiir-filter-tests-"))
atexit.register(shutil.rmtree, SHARED_CACHE, True)
