"""Adaptations and perturbations for any model (Table 3 / Figure 4 tables), screenshots, --paper-table,
languages from the data."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from eval_synth import make_dataset, make_items, torch_one_thread, write_dataset  # noqa: F401 (autouse)
from PIL import Image

from wikihow_tiir.evaluate.families import tiny
from wikihow_tiir.evaluate.perturb import perturb_content, perturb_items
from wikihow_tiir.evaluate.runner import evaluate_models
from wikihow_tiir.evaluate.screenshot import ScreenshotStyle, render_page, wrap


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return tiny.tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


# ---------------------------------------------------------------- perturbations


def _shape(content):
    return ["t" if t is not None else "i" for t in content.texts]


def test_shuffle_order_moves_pictures_among_picture_positions_only():
    _, queries, _ = make_items()
    c = queries[0].content
    for seed in range(20):
        out = perturb_content(c, "shuffle-order", random.Random(seed))
        assert _shape(out) == _shape(c)
        assert [t for t in out.texts if t] == [t for t in c.texts if t]
        assert sorted(m.sha256 for m in out.image_meta if m) == sorted(m.sha256 for m in c.image_meta if m)
    orders = {tuple(m.sha256 for m in perturb_content(c, "shuffle-order", random.Random(s)).image_meta if m)
              for s in range(20)}
    assert len(orders) == 2  # both orders of two pictures occur


def test_shuffle_positions_keeps_both_orders_and_moves_pictures():
    docs, _, _ = make_items()
    c = docs[0].content  # t i t i t t
    shapes = set()
    for seed in range(30):
        out = perturb_content(c, "shuffle-positions", random.Random(seed))
        assert [t for t in out.texts if t] == [t for t in c.texts if t]
        assert [m.sha256 for m in out.image_meta if m] == [m.sha256 for m in c.image_meta if m]
        assert [b for b in out.images if b] == [b for b in c.images if b]  # bytes travel with their metadata
        shapes.add(tuple(_shape(out)))
    assert len(shapes) > 3


def test_perturbations_are_seeded_per_item_not_per_batch():
    docs, _, _ = make_items()
    one = perturb_items(docs, "both", seed=7)
    again = perturb_items(docs[3:] + docs[:3], "both", seed=7)
    by_id = {d.id: d for d in again}
    assert all(d.content.texts == by_id[d.id].content.texts for d in one)
    assert [d.content.texts for d in perturb_items(docs, "both", seed=8)] != [d.content.texts for d in one]
    with pytest.raises(ValueError, match="unknown perturbation 'reverse'"):
        perturb_items(docs, "reverse", seed=0)


class OrderSensitive:
    """A sequence model whose vector depends on where each picture sits: position-weighted colour."""

    name = "order-sensitive"

    def encode_sequences(self, sequences, role):
        out = []
        for seq in sequences:
            v = np.zeros(8)
            for pos, part in enumerate(seq):
                if isinstance(part, str):
                    v[len(part) % 4] += 1
                else:
                    v[4:7] += (pos + 1) * np.asarray(part.resize((1, 1)).getpixel((0, 0)), dtype=float) / 255
                    v[7] += pos
            out.append(v)
        return np.asarray(out)


def test_perturb_all_writes_a_figure_4_table_and_names_each_run(dataset, tmp_path):
    from wikihow_tiir.evaluate.adapters import NativeInterleaved

    model = NativeInterleaved(OrderSensitive())
    summary = evaluate_models(dataset, ["seq", "bm25"], output=tmp_path, perturbs=["all"], seed=3,
                              prebuilt={"seq": model})
    runs = list(summary["models"])
    assert runs == ["seq", "seq+shuffle-order", "seq+shuffle-positions", "seq+both",
                    "bm25", "bm25+shuffle-order", "bm25+shuffle-positions", "bm25+both"]
    result = json.loads((tmp_path / "results" / "seq+both.json").read_text())
    assert result["model_name"] == "seq+both"
    assert result["wikihow_tiir"] == {"perturbation": "both", "perturbation_seed": 3}
    table = (tmp_path / "ablations.md").read_text()
    assert "| seq | - | none |" in table and "| seq | - | shuffle-positions |" in table
    assert table.count("| +0.00 |") >= 2  # each model's first run, and bm25 (text order is kept)
    bm25 = [summary["models"][r]["metrics"] for r in runs if r.startswith("bm25")]
    assert all(m == bm25[0] for m in bm25)  # BM25 reads the text positions, whose order is kept
    seq = [summary["models"][r]["metrics"]["mrr_at_10"] for r in runs if r.startswith("seq")]
    assert len(set(seq)) > 1  # the order-sensitive model sees the perturbation


# ---------------------------------------------------------------- adaptations, Table 3 style


def test_adapt_all_runs_every_adaptation_of_a_family_once_loaded(dataset, tiny_clip, tmp_path):
    spec = f"clip:{tiny_clip}"
    summary = evaluate_models(dataset, [spec], output=tmp_path, adapts=["all"])
    assert list(summary["models"]) == [f"{spec}+text", f"{spec}+fusion", f"{spec}+screenshot"]
    assert summary["models"][f"{spec}+fusion"]["adaptation"] == "fusion"
    table = (tmp_path / "ablations.md").read_text()
    for a in ("text", "fusion", "screenshot"):
        assert f"| {spec} | {a} | none |" in table
    assert (tmp_path / "runs" / f"clip-{str(tiny_clip).strip('/').replace('/', '-')}+screenshot.trec").is_file()


def test_cli_adapt_and_perturb(dataset, tiny_clip, tmp_path):
    from typer.testing import CliRunner

    from wikihow_tiir.cli import app

    res = CliRunner().invoke(app, ["evaluate", "-d", str(dataset), "-m", f"clip:{tiny_clip}", "--adapt", "text",
                                   "--adapt", "fusion", "--perturb", "shuffle-order", "--fusion", "NCNorm",
                                   "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "ablations.md" in res.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert sorted(summary["models"]) == sorted(f"clip:{tiny_clip}+{a}+shuffle-order" for a in ("text", "fusion"))
    bad = CliRunner().invoke(app, ["evaluate", "-d", str(dataset), "-m", "bm25", "--perturb", "sideways",
                                   "-o", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "unknown perturbation 'sideways'" in bad.output


# ---------------------------------------------------------------- screenshots


def test_page_rendering_is_deterministic_and_in_reading_order():
    red, blue = Image.new("RGB", (100, 50), (255, 0, 0)), Image.new("RGB", (2000, 400), (0, 0, 255))
    seq = ["How to Grill Zucchini", red, "Step 1: Slice the zucchini " * 12, blue]
    page = render_page(seq)
    assert page.width == 768 and render_page(seq).tobytes() == page.tobytes()
    column = [page.getpixel((30, y)) for y in range(page.height)]
    first_red = column.index((255, 0, 0))
    first_blue = column.index((0, 0, 255))
    assert 24 < first_red < first_blue  # the title above the red picture, the long step between them
    assert page.getpixel((24 + 720 - 1, first_blue + 5)) == (0, 0, 255)  # scaled down to the text width
    assert page.getpixel((24 + 100 + 5, first_red + 5)) == (255, 255, 255)  # small pictures are not scaled up
    style = ScreenshotStyle()
    from wikihow_tiir.evaluate.screenshot import _font

    lines = wrap("手を洗う方法" * 40, _font(None, 20), 720)
    assert len(lines) > 1 and "".join(lines) == "手を洗う方法" * 40  # no spaces: wrapped anywhere
    assert style.width == 768


def test_screenshot_font_that_is_not_a_font_is_a_clear_error(tmp_path):
    bad = tmp_path / "font.ttf"
    bad.write_text("not a font")
    with pytest.raises(ValueError, match="not a readable TrueType/OpenType font"):
        render_page(["x"], ScreenshotStyle(font=bad))


# ---------------------------------------------------------------- --paper-table and languages


def test_paper_table_puts_our_runs_under_the_matching_paper_rows(dataset, tiny_clip, tmp_path):
    spec = f"clip:{tiny_clip}"
    summary = evaluate_models(dataset, [spec, "bm25"], output=tmp_path, paper_table=True)
    text = (tmp_path / "comparison.md").read_text()
    assert "## Beside the paper's Table 2" in text and "over **12 documents**" in text
    lines = text.splitlines()
    paper_clip = next(i for i, x in enumerate(lines) if "CLIP-large fine-tuned" in x)
    assert "paper (7,654 q / 155,262 docs) | 69.41 | 53.06 | 54.73 | 54.25 | 57.15 |" in lines[paper_clip]
    assert f"`{spec}`" in lines[paper_clip + 1] and "ours (6 q / 12 docs)" in lines[paper_clip + 1]
    assert any("(not in the paper) | `bm25`" in x for x in lines)
    assert sum("| paper (" in x for x in lines) == 11
    assert summary["paper_table"] is True


def test_result_languages_come_from_the_data(tmp_path):
    docs, queries, qrels = make_items()
    for d in docs[:4]:
        d.lang = "ja"
    root = write_dataset(tmp_path / "d", docs, queries, qrels)
    summary = evaluate_models(root, ["bm25"], output=tmp_path / "o")
    assert summary["dataset"]["languages"] == ["eng-Latn", "jpn-Jpan"]
    result = json.loads((tmp_path / "o" / "results" / "bm25.json").read_text())
    assert result["scores"]["test"][0]["languages"] == ["eng-Latn", "jpn-Jpan"]
