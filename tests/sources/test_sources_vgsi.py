"""The wikiHow-VGSI source: JSON lines + {step_id}.png (folder or zip) -> Articles -> documents."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from wikihow_tiir.config import BuildConfig, VgsiConfig
from wikihow_tiir.sources.vgsi import VgsiError, VgsiImageStore, iter_vgsi_articles

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "wikihow_data" / "rakibulislam_wikihow-py_2019"
CC = "License: Creative Commons<br>\n<a href='https://creativecommons.org/licenses/by-nc-sa/3.0/'>by-nc-sa</a>"
WH = "© 2019 wikiHow, Inc. All rights reserved."

HANDWRITTEN = [
    {"file_id": 10000798, "goal": "How to Make a Paper Airplane",
     "goal_description": "Paper airplanes are fun to fold.",
     "category_hierarchy": ["Hobbies and Crafts", "Crafts", "Paper Craft"],
     "methods": [
         {"name": "Folding a Dart", "steps": [
             {"headline": "Fold the paper in half.", "description": "Crease it well.",
              "img": "https://www.wikihow.com/images/thumb/a/aa/Paper-Airplane-Step-1.jpg/aid1-v4-728px-Paper-Airplane-Step-1.jpg",
              "img_license": CC, "step_id": "10000798_0_0"},
             {"headline": "Fold the corners in.", "description": "",
              "img": "https://www.wikihow.com/images/thumb/b/bb/Paper-Airplane-Step-2.jpg/aid1-v4-728px-Paper-Airplane-Step-2.jpg",
              "img_license": WH, "step_id": "10000798_0_1"}]},
         {"name": "Part 2: Flying", "steps": [
             {"headline": "Throw it gently.", "description": "Aim slightly up.", "img": "", "img_license": "",
              "step_id": "10000798_1_0"},
             {"headline": "Adjust the wings.", "description": "Bend the back edges.",
              "img": "https://www.wikihow.com/images/thumb/c/cc/Paper-Airplane-Step-4.jpg/aid1-v4-728px-Paper-Airplane-Step-4.jpg",
              "img_license": CC, "step_id": "10000798_1_1"}]}]},
    {"file_id": "20000001", "goal": "Boil an Egg", "goal_description": "", "category_hierarchy": [],
     "methods": [{"name": "", "steps": [
         {"headline": "Boil water.", "description": "", "img": "https://www.wikihow.com/images/egg-1.jpg",
          "img_license": CC, "step_id": "20000001_0_0"},
         {"headline": "Add the egg.", "description": "", "img": "https://www.wikihow.com/images/egg-2.jpg",
          "img_license": CC, "step_id": "20000001_0_1"}]}]},
]


def png(seed: int) -> bytes:
    colour = ((seed * 37) % 256, (seed * 91) % 256, (seed * 13) % 256)
    img = Image.new("RGB", (96, 64), colour)
    img.paste(tuple((c + 128) % 256 for c in colour), (0, 0, 24, 64))  # flat pictures: "blank-image"
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def step_ids(records) -> list[str]:
    return [s["step_id"] for r in records for m in r["methods"] for s in m["steps"]]


def write_vgsi(tmp_path: Path, records: list[dict], as_zip: bool) -> VgsiConfig:
    text = tmp_path / "WikihowText_data.json"
    text.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    ids = step_ids(records)
    if as_zip:
        images = tmp_path / "wiki_images.zip"
        with zipfile.ZipFile(images, "w") as z:
            for n, sid in enumerate(ids):
                z.writestr(f"wiki_images/{sid}.png", png(n))
    else:
        images = tmp_path / "images"
        (images / "sub").mkdir(parents=True)
        for n, sid in enumerate(ids):
            (images / ("sub" if n % 2 else "") / f"{sid}.png").write_bytes(png(n))
    return VgsiConfig(text_file=text, images=images)


def test_records_map_to_articles(tmp_path):
    cfg = write_vgsi(tmp_path, HANDWRITTEN, as_zip=False)
    a, b = list(iter_vgsi_articles(cfg))
    assert (a.id, a.source, a.layout, a.lang) == ("10000798", "vgsi", "vgsi", "en")
    assert a.title == a.goal == "How to Make a Paper Airplane"
    assert a.url == "https://www.wikihow.com/Make-a-Paper-Airplane"
    assert a.categories == ["Hobbies and Crafts", "Crafts", "Paper Craft"] and a.intro.startswith("Paper")
    assert [(s.index, s.kind, s.title) for s in a.sections] == [(1, "method", "Folding a Dart"),
                                                                 (2, "part", "Part 2: Flying")]
    step = a.sections[0].steps[1]
    assert (step.index, step.summary) == (2, "Fold the corners in.")
    assert step.media[0].kind == "image" and step.media[0].license == WH
    assert step.media[0].url.endswith("Paper-Airplane-Step-2.jpg")
    assert a.sections[1].steps[0].media[0].url == "vgsi:10000798_1_0"  # no URL given: keyed by step id
    assert len(a.sha256) == 64
    assert b.title == "How to Boil an Egg" and b.sections[0].kind == "steps"
    again = [x.to_dict() for x in iter_vgsi_articles(cfg)]
    assert again == [a.to_dict(), b.to_dict()]  # deterministic
    assert [x.id for x in iter_vgsi_articles(cfg.model_copy(update={"max_articles": 1}))] == ["10000798"]


@pytest.mark.parametrize("as_zip", [False, True])
def test_image_store_finds_every_step_image_by_url(tmp_path, as_zip):
    cfg = write_vgsi(tmp_path, HANDWRITTEN, as_zip=as_zip)
    store = VgsiImageStore(cfg)
    ids = step_ids(HANDWRITTEN)
    for article in iter_vgsi_articles(cfg):
        for section in article.sections:
            for step in section.steps:
                url = step.media[0].url
                sid = store.step_id(url)
                assert sid in ids and store.get_bytes(url) == png(ids.index(sid))
    assert store.get_bytes("https://www.wikihow.com/images/unknown.jpg") is None
    store.close()


def test_vgsi_articles_build_documents_with_the_same_corpus_stage(tmp_path):
    from wikihow_tiir.corpus import documents_from_articles

    cfg = BuildConfig.model_validate({"profile": "vgsi", "source": {"kind": "vgsi"}})
    vgsi = write_vgsi(tmp_path, HANDWRITTEN, as_zip=True)
    shard = documents_from_articles(iter_vgsi_articles(vgsi), VgsiImageStore(vgsi), cfg)
    ids = sorted(d.id for d in shard.documents)
    assert ids == ["wh-10000798-s1", "wh-10000798-s2", "wh-20000001-s1"]
    doc = next(d for d in shard.documents if d.id == "wh-10000798-s1")
    assert doc.content.texts[0] == "How to Make a Paper Airplane" and doc.content.n_images == 2
    assert [m.license for m in doc.content.image_meta if m] == [CC, WH]
    assert all(b for b, m in zip(doc.content.images, doc.content.image_meta, strict=True) if m)
    part2 = next(d for d in shard.documents if d.id == "wh-10000798-s2")
    assert [m.source_url for m in part2.content.image_meta if m][0] == "vgsi:10000798_1_0"
    assert not [r for r in shard.rejects if r.stage == "images"]  # every step image was found

    # an image file missing from the release: the picture is dropped with a reason, nothing silent
    (tmp_path / "egg-only.zip").write_bytes(b"")
    with zipfile.ZipFile(tmp_path / "egg-only.zip", "w") as z:
        z.writestr("20000001_0_0.png", png(1))
    partial = vgsi.model_copy(update={"images": tmp_path / "egg-only.zip"})
    shard = documents_from_articles(iter_vgsi_articles(partial), VgsiImageStore(partial), cfg)
    assert shard.documents == []
    assert {r.reason for r in shard.rejects if r.stage == "images"} == {"image-missing"}


def scrape_2019_as_vgsi(path: Path) -> dict:
    """The real 2019 wikihow-py scrape (per-step text + image URL) written in VGSI's schema."""
    parts = json.loads(path.read_text(encoding="utf-8"))
    first_img = parts[0]["Part"][0]["image"]
    file_id = re.search(r"/aid(\d+)-", first_img).group(1)
    methods = []
    for mi, part in enumerate(parts):
        steps = []
        for si, st in enumerate(part["Part"]):
            headline, _, rest = st["description"].partition(". ")
            steps.append({"headline": headline + ".", "description": rest, "img": st["image"],
                          "img_license": CC, "step_id": f"{file_id}_{mi}_{si}"})
        methods.append({"name": f"Part {mi + 1}", "steps": steps})
    return {"file_id": int(file_id), "goal": "How to " + path.stem.replace("-", " ").title(),
            "goal_description": "", "category_hierarchy": [], "methods": methods}


def test_real_2019_scrape_samples_through_the_vgsi_reader(tmp_path):
    records = [scrape_2019_as_vgsi(p) for p in sorted(FIXTURES.glob("*.json"))]
    assert len(records) == 4
    cfg = write_vgsi(tmp_path, records, as_zip=True)
    articles = list(iter_vgsi_articles(cfg))
    assert [a.id for a in articles] == [str(r["file_id"]) for r in records]
    by_title = {a.title: a for a in articles}
    assert [len(s.steps) for s in by_title["How to Draw A Brain"].sections] == [5, 9]
    assert by_title["How to Love"].id == "34524"
    store = VgsiImageStore(cfg)
    urls = [m.url for a in articles for s in a.sections for st in s.steps for m in st.media]
    assert len(urls) == sum(len(p["Part"]) for r in FIXTURES.glob("*.json") for p in json.loads(r.read_text()))
    assert all(u.startswith("https://www.wikihow.com/images/") for u in urls)
    # video-step posters and 728-px stills alike resolve to their step's file
    assert all(store.get_bytes(u) is not None for u in urls)


def test_bad_input_names_file_line_and_reason(tmp_path):
    good = json.dumps(HANDWRITTEN[0])
    text = tmp_path / "WikihowText_data.json"
    text.write_text(good + "\n{not json\n" + json.dumps({"file_id": 5, "goal": "X", "methods": "no"}) + "\n"
                    + good + "\n", encoding="utf-8")
    cfg = VgsiConfig(text_file=text, images=tmp_path)
    with pytest.raises(VgsiError, match=r"WikihowText_data.json:2: not JSON") as err:
        list(iter_vgsi_articles(cfg))
    assert err.value.reason == "bad-json"
    rejects = []
    articles = list(iter_vgsi_articles(cfg, on_reject=rejects.append))
    assert [a.id for a in articles] == ["10000798"]
    assert [(r.item_id, r.reason) for r in rejects] == [("line-2", "bad-json"), ("line-3", "bad-methods"),
                                                        ("line-4", "duplicate-file-id")]
    with pytest.raises(VgsiError, match="does not exist"):
        list(iter_vgsi_articles(VgsiConfig(text_file=tmp_path / "nope.json")))
    with pytest.raises(VgsiError, match="text_file is not set"):
        list(iter_vgsi_articles(VgsiConfig()))
    with pytest.raises(VgsiError, match="neither a folder nor a zip"):
        VgsiImageStore(VgsiConfig(text_file=text, images=text))


def test_a_broken_record_is_rejected_and_the_vgsi_build_goes_on(tmp_path):
    """A malformed line in the middle of the release: logged in rejects/vgsi.jsonl, the other articles
    are built; each corpus shard reads only its own records (by byte offset)."""
    from wikihow_tiir.build import run_build
    from wikihow_tiir.io import read_jsonl
    from wikihow_tiir.storage import read_rows

    vgsi = write_vgsi(tmp_path, HANDWRITTEN, as_zip=True)
    lines = vgsi.text_file.read_text(encoding="utf-8").splitlines(keepends=True)
    vgsi.text_file.write_text(lines[0] + '{"file_id": 3, "goal": "Cut\n' + lines[1], encoding="utf-8")
    cfg = BuildConfig.model_validate({
        "profile": "vgsi",
        "source": {"kind": "vgsi", "pages_per_shard": 1,
                   "vgsi": {"text_file": str(vgsi.text_file), "images": str(vgsi.images)}},
        "generate": {"enabled": False}})
    result = run_build(cfg, tmp_path / "out")
    assert result["documents"] == 3 and result["rejects"]["vgsi"] == {"bad-json": 1}
    (bad,) = read_jsonl(tmp_path / "out" / "rejects" / "vgsi.jsonl")
    assert bad["item_id"] == "line-2" and "WikihowText_data.json:2" in bad["detail"]
    rows = read_rows(sorted((tmp_path / "out" / "corpus").glob("*.parquet")))
    assert sorted(r["id"] for r in rows) == ["wh-10000798-s1", "wh-10000798-s2", "wh-20000001-s1"]


def test_a_release_without_one_usable_record_is_a_clear_error(tmp_path):
    from wikihow_tiir.build import BuildError, plan_corpus

    text = tmp_path / "WikihowText_data.json"
    text.write_text("not json\n[]\n", encoding="utf-8")
    cfg = BuildConfig.model_validate({"profile": "vgsi", "source": {"kind": "vgsi", "vgsi": {"text_file": str(text)}}})
    with pytest.raises(BuildError, match="no usable article.*bad record"):
        plan_corpus(cfg)
