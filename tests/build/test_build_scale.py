"""Issue 15: the build at growing size. The synthetic wikiHow-VGSI source of the `scale` bench is seeded,
nests by size and builds unchanged with the `vgsi` profile."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from benchmarks.synth_vgsi import GENERATOR_VERSION, IMAGES, TEXT_FILE, generate
from wikihow_tiir import build
from wikihow_tiir.config import load_config


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and p.name != "synth.json"}


def test_synthetic_vgsi_source_is_seeded_nests_by_size_and_builds_unchanged(tmp_path):
    small = generate(tmp_path / "small", 3, seed=5)
    again = generate(tmp_path / "again", 3, seed=5)
    assert _files(tmp_path / "small") == _files(tmp_path / "again")  # same seed and size: same bytes
    assert small["generator"] == GENERATOR_VERSION and small["articles"] == again["articles"] == 3
    large = generate(tmp_path / "large", 6, seed=5, images_from=tmp_path / "small")
    lines = (tmp_path / "large" / TEXT_FILE).read_text(encoding="utf-8").splitlines()
    assert lines[:3] == (tmp_path / "small" / TEXT_FILE).read_text(encoding="utf-8").splitlines()
    assert large["pictures_drawn"] < large["image_files"]  # the first 3 articles' pictures were linked
    generate(tmp_path / "other", 3, seed=6)
    assert _files(tmp_path / "other") != _files(tmp_path / "small")
    # real pictures at wikiHow's step-image sizes; VGSI's record schema
    for p in sorted((tmp_path / "large" / IMAGES).iterdir())[:10]:
        with Image.open(p) as im:
            im.load()
            assert im.format in ("JPEG", "PNG") and max(im.size) in (460, 728)
    rec = json.loads(lines[0])
    assert rec["goal"].startswith("How to ") and rec["methods"]
    assert {"headline", "description", "img", "img_license", "step_id"} <= set(rec["methods"][0]["steps"][0])
    cfg = load_config(profile="vgsi", overrides=[
        f'source.vgsi.text_file="{tmp_path / "large" / TEXT_FILE}"',
        f'source.vgsi.images="{tmp_path / "large" / IMAGES}"', "generate.enabled=false"])
    result = build.run_build(cfg, tmp_path / "out")
    assert result["documents"] >= 6 and "vgsi" not in result["rejects"]  # every record reads as VGSI
