"""Small hand-made documents for the generation tests (Pillow pictures, normalized for real).

A uniquely named module (not ``conftest``) so test modules can import it unambiguously.
"""

from __future__ import annotations

import hashlib
import io
import random

from PIL import Image, ImageDraw

from wikihow_tiir.config import BackendConfig, GenerateConfig
from wikihow_tiir.images import normalize_image
from wikihow_tiir.model import Document, Interleaved

ARTICLES = [
    ("101", "en", "How to Clean Car Rims", "Washing the Rims", [
        "Use a hose to rinse the rims.", "Spray an even layer of wheel cleaner onto the wheel.",
        "Scrub the rims with a soft brush.", "Rinse off the cleaner with clean water.",
        "Dry the rims with a microfiber towel."]),
    ("102", "en", "How to Repot a Houseplant", "Moving the Plant", [
        "Water the plant a day before repotting.", "Tip the pot and slide the plant out gently.",
        "Loosen the roots with your fingers.", "Put fresh potting soil in the new pot.",
        "Set the plant in the pot and fill around it with soil.", "Water the plant thoroughly."]),
    ("103", "en", "How to Make Pancakes", "Cooking the Batter", [
        "Whisk flour, sugar and baking powder in a bowl.", "Add milk and an egg and stir until smooth.",
        "Heat a buttered pan over medium heat.", "Pour a ladle of batter into the pan."]),
    ("104", "en", "How to Fix a Flat Bike Tire", "Patching the Tube", [
        "Remove the wheel from the bike frame.", "Lever the tire off the rim with tire levers.",
        "Find the hole by pumping air into the tube.", "Glue a patch over the hole and press firmly.",
        "Put the tube back and inflate the tire."]),
    ("105", "ja", "靴を磨く方法", "革靴の手入れ", [
        "靴ひもを外してブラシでほこりを落とす。", "柔らかい布にクリームを少量取る。",
        "円を描くようにクリームを塗り込む。", "乾いた布で表面を磨いて艶を出す。"]),
    ("106", "en", "How to Paint a Wall", "Preparing and Painting", [
        "Move furniture away from the wall.", "Tape the edges along the ceiling and trim.",
        "Roll primer onto the wall in a W pattern.", "Apply two coats of paint with a roller."]),
]


def picture(seed: str, side: int = 120) -> bytes:
    """A distinct, deterministic picture (random rectangles and discs) as PNG bytes."""
    rng = random.Random(hashlib.sha256(seed.encode()).hexdigest())
    im = Image.new("RGB", (side, side), tuple(rng.randrange(256) for _ in range(3)))
    d = ImageDraw.Draw(im)
    for _ in range(8):
        x0, y0 = rng.randrange(side), rng.randrange(side)
        x1, y1 = x0 + rng.randrange(10, 60), y0 + rng.randrange(10, 60)
        fill = tuple(rng.randrange(256) for _ in range(3))
        (d.rectangle if rng.random() < 0.5 else d.ellipse)([x0, y0, x1, y1], fill=fill)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def make_document(article_id: str, lang: str, goal: str, section: str, steps: list[str],
                  section_index: int = 1) -> Document:
    content = Interleaved()
    content.add_text(goal)
    content.add_text(section)
    for i, step in enumerate(steps, 1):
        content.add_text(step)
        img = normalize_image(picture(f"{article_id}-{section_index}-{i}"))
        content.add_image(img.meta(source_url=f"https://example.org/{article_id}/{i}.jpg",
                                   license="CC BY-NC-SA 3.0", stand_in=True), img.data)
    return Document(id=Document.make_id(article_id, section_index), article_id=article_id,
                    url=f"https://example.org/{article_id}", lang=lang, goal=goal, section_title=section,
                    section_kind="method", section_index=section_index, content=content)


# --------------------------------------------------------------------------- against the test server

STEPS = ["Fill a bucket with warm soapy water.", "Soak the sponge in the bucket.",
         "Scrub the surface in small circles.", "Rinse the soap away with the hose.",
         "Dry everything with a clean towel."]


def remote_config(server, stages=("caption", "write", "visualize", "render"), **over) -> GenerateConfig:
    """Every named stage on the scripted OpenAI-compatible server (tests/servers/openai_server.py)."""
    backend = {"kind": "openai", "base_url": server.base_url, "model": "scripted-1", "timeout_s": 0.5,
               "retries": 2, "backoff_s": 0.05, "concurrency": 4, **over}
    return GenerateConfig(**{s: BackendConfig(**backend) for s in stages})


def doc(article: str, marker: str = "", lang: str = "en") -> Document:
    """A document whose goal and first step carry a fault marker for the scripted server."""
    steps = [f"{STEPS[0]} {marker}".strip(), *STEPS[1:]]
    return make_document(article, lang, f"How to Wash a Car {marker}".strip(), "Washing by Hand", steps)


# What the writer may know beyond each document (segment.section_context): step details, tips,
# warnings and the category path, most specific category first. Some detail sentences give the answer
# away on purpose (they name the goal or copy a step): the writer must skip them.
DETAILS = {
    "101": ["Brake dust builds up fast, so start with a strong jet of water.",
            "Most wheel cleaners work best on cool metal, never in full sun.",
            "Work the bristles into every corner between the spokes.",
            "This is how to clean car rims: rinse off the cleaner with clean water.",
            "Water spots dry quickly and leave marks on shiny metal."],
    "102": ["Moist soil holds together when you lift it out of the old container.",
            "Support the base of the stem with one hand while you turn it over.",
            "Circling roots will keep growing in circles unless you tease them apart.",
            "Choose a mix made for indoor plants, with good drainage.",
            "Keep the top of the root ball about an inch below the rim.",
            "Let the excess drain away before you put it back on a saucer."],
    "103": ["Sift the dry ingredients if they have lumps.",
            "A few small lumps are fine and keep the result fluffy.",
            "A drop of water should sizzle when the surface is ready.",
            "Flip when bubbles form on the surface and the edges look dry."],
    "104": ["Open the brake quick release first so the tyre fits past the pads.",
            "Hook one lever under the bead and clip it to a spoke.",
            "Listen for a hiss, or hold it under water and watch for bubbles.",
            "Rough up the area with sandpaper so the glue holds.",
            "Check that the bead sits evenly before you pump it up fully."],
    "105": ["ひもを外すと、細かいところまで手入れができます。", "つけすぎると、べたついてしまいます。",
            "小さな円を描くように、全体になじませます。", "最後に乾いた布で軽くこすります。"],
    "106": ["Cover anything you cannot move with a drop cloth.", "Press the edges down so paint cannot seep under.",
            "Primer helps the colour look even on patched spots.", "Wait until the first coat is dry to the touch."],
}
TIPS = {
    "101": ["A dedicated wheel brush reaches behind the spokes much better than a sponge."],
    "102": ["Spring is the best season for this, when plants start growing again."],
    "103": ["Keep the finished ones warm in a low oven while you cook the rest."],
    "104": ["Carry a spare tube on long rides; patching by the road takes longer."],
    "105": ["クリームは靴の色に合わせて選びましょう。"],
    "106": ["Open a window so the room stays ventilated while you work."],
}
CATEGORIES = {"101": ["Car Cleaning", "Cars & Other Vehicles"], "102": ["Houseplants", "Home and Garden"],
              "103": ["Breakfast", "Food and Entertaining"], "104": ["Bicycle Repair", "Sports and Fitness"],
              "105": ["靴の手入れ", "趣味と工芸"], "106": ["Painting", "Home and Garden"]}


def make_context(article_id: str, steps: list[str]) -> dict:
    return {"categories": CATEGORIES[article_id],
            "steps": [{"text": s, "detail": d, "pictured": True} for s, d in zip(steps, DETAILS[article_id], strict=True)],
            "tips": TIPS[article_id], "warnings": [], "things_needed": []}


def contexts_of(articles=ARTICLES) -> dict:
    return {Document.make_id(a[0], 1): make_context(a[0], a[4]) for a in articles}
