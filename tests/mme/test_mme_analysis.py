"""`mme compare` (Rand / MRL / Mean / DPR in one table) and `mme ablate` (the paper's Figure 4 shuffles)."""

from __future__ import annotations

import json
import random

from typer.testing import CliRunner

from wikihow_tiir.mme.analysis import ABLATIONS, compare, shuffle_image_order, shuffle_image_positions
from wikihow_tiir.model import ImageMeta, Interleaved

QUIET = {"log": lambda s: None}


def _content() -> Interleaved:
    c = Interleaved()
    c.add_text("How to Do It")
    for i in range(4):
        c.add_text(f"Step {i}.")
        c.add_image(ImageMeta(source_url=f"x://{i}", sha256=str(i)), f"img{i}".encode())
    return c


def _sequence(c: Interleaved) -> list[str]:
    return [t if t is not None else d.decode() for t, d in zip(c.texts, c.images, strict=True)]


def test_shuffling_the_image_order_moves_pictures_not_texts():
    c = _content()
    out = shuffle_image_order(c, random.Random(0))
    out.check()
    assert out.texts == c.texts and out.image_positions() == c.image_positions()
    assert [d for d in out.images if d] != [d for d in c.images if d]  # another order ...
    assert sorted(d for d in out.images if d) == sorted(d for d in c.images if d)  # ... of the same pictures
    assert [m.sha256 for m in out.image_meta if m] == [d.decode()[3:] for d in out.images if d]  # meta follows


def test_shuffling_the_image_positions_keeps_both_orders():
    c = _content()
    out = shuffle_image_positions(c, random.Random(0))
    out.check()
    assert out.image_positions() != c.image_positions()
    assert [t for t in out.texts if t is not None] == [t for t in c.texts if t is not None]
    assert [d for d in out.images if d] == [d for d in c.images if d]
    assert len(_sequence(out)) == len(_sequence(c))
    single = Interleaved()
    single.add_image(ImageMeta(source_url="x://only"), b"img")
    assert _sequence(shuffle_image_positions(single, random.Random(0))) == ["img"]  # nothing to move


def test_compare_trains_every_strategy_and_writes_one_table(mme_split_dataset, tmp_path):
    result = compare(mme_split_dataset, tmp_path / "cmp", seed=0, epochs=1, backbone="tiny:deepseek_vl",
                     batch_size=7, **QUIET)
    rows = {r["strategy"]: r for r in result["rows"]}
    assert list(rows) == ["rand", "mrl", "mean", "dpr"]
    assert rows["dpr"]["trained_ns"] == [8] and rows["dpr"]["n"] == 8  # the full grid, every visual token
    assert rows["mean"]["trained_ns"] == [1, 2] and rows["mean"]["n"] == 2  # N=3 clipped to the 8x8 grid
    assert all(0 <= r["metrics"]["ndcg_at_10"] <= 1 and r["steps"] == 1 for r in rows.values())
    table = (tmp_path / "cmp" / "compare.md").read_text()
    assert table.count("\n| ") == 5 and "| dpr | [8] | 8 | 64 |" in table
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["rows"][2]["strategy"] == "mean"
    again = compare(mme_split_dataset, tmp_path / "cmp", seed=0, epochs=1, backbone="tiny:deepseek_vl",
                    batch_size=7, strategies=["mean"], **QUIET)  # resumed: nothing retrained, same numbers
    assert again["rows"][0]["metrics"] == rows["mean"]["metrics"]


def test_ablate_writes_the_table_and_the_plot(mme_split_dataset, tmp_path):
    from wikihow_tiir.mme.cli import mme_app
    from wikihow_tiir.mme.train import train

    train(mme_split_dataset, tmp_path / "ck", epochs=1, backbone="tiny:deepseek_vl", evaluate_pairs=0, **QUIET)
    result = CliRunner().invoke(mme_app, ["ablate", str(tmp_path / "ck"), "--dataset", str(mme_split_dataset),
                                          "--output", str(tmp_path / "abl")])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "abl" / "ablation.json").read_text())
    assert [r["variant"] for r in data["rows"]] == list(ABLATIONS) and data["queries"] == 3
    assert (tmp_path / "abl" / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| image positions shuffled |" in (tmp_path / "abl" / "ablation.md").read_text()
    bad = CliRunner().invoke(mme_app, ["ablate", str(tmp_path), "--dataset", str(mme_split_dataset)])
    assert bad.exit_code == 2 and "not an MME checkpoint" in bad.output
