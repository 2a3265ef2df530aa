"""Tiny randomly initialized MLLM configs (no download): DeepSeek-VL, Qwen2-VL, Qwen2.5-VL."""

from __future__ import annotations

import pytest
import torch

from wikihow_tiir.mme.backbones import HF_KINDS
from wikihow_tiir.mme.model import CheckpointError, load_encoder, new_encoder


@pytest.fixture(scope="module", params=HF_KINDS)
def tiny(request):
    return new_encoder(f"tiny:{request.param}", seed=0).eval()


def _prepare(enc, items):
    docs, queries, _ = items
    return enc.prepare_many([(d.id, d.content) for d in docs])


def test_visual_tokens_per_image_are_n_squared_for_every_n(tiny, mme_items):
    prep = _prepare(tiny, mme_items)
    seen = {}
    real_run = tiny.backbone.run_lm

    def spy(embeds, mask, spans):
        seen["lengths"] = mask.sum(1).tolist()
        seen["spans"] = spans
        return real_run(embeds, mask, spans)

    tiny.backbone.run_lm = spy
    try:
        for n in tiny.ns:
            with torch.no_grad():
                tiny.encode(prep, n)
            for p, length, spans in zip(prep, seen["lengths"], seen["spans"], strict=True):
                images = [s for s in spans if s[0] == "image"]
                assert len(images) == p.n_images == 3
                text = sum(len(part.ids) for part in p.parts if hasattr(part, "ids"))
                # the language model sees exactly N^2 tokens per image, plus text and specials
                assert length == tiny.n_special + text + 3 * n * n
    finally:
        tiny.backbone.run_lm = real_run
    assert tiny.ns[-1] == tiny.grid_side  # the largest N is the full grid


def test_projected_grid_is_the_models_own_image_features(tiny, mme_items):
    """Pooling sits after the projector: our (tower, projector) split reproduces the model's features."""
    from wikihow_tiir.mme.model import decode_image

    docs = mme_items[0]
    images = [decode_image(docs[0].content.images[i]) for i in docs[0].content.image_positions()]
    bb = tiny.backbone
    pixels = bb.pixels(images)
    with torch.no_grad():
        ours = bb.project(bb.vision_features(pixels))  # (k, g, g, D)
        if bb.kind == "deepseek_vl":
            theirs = bb.hf.model.get_image_features(pixels).pooler_output
        else:
            flat, grid = bb._qwen_patches(pixels)
            theirs = torch.cat(bb.hf.model.get_image_features(flat, image_grid_thw=grid).pooler_output)
    assert torch.allclose(ours.reshape(-1, ours.shape[-1]), theirs.reshape(-1, ours.shape[-1]), atol=1e-5)


def test_output_shape_norm_and_eval_determinism(tiny, mme_items):
    prep = _prepare(tiny, mme_items)
    with torch.no_grad():
        a = tiny.encode(prep, tiny.ns[1])
        b = tiny.encode(prep, tiny.ns[1])
    assert a.shape == (len(prep), tiny.backbone.hidden_size)
    assert torch.allclose(a.norm(dim=1), torch.ones(len(prep)), atol=1e-5)
    assert torch.equal(a, b)
    twin = new_encoder(f"tiny:{tiny.kind}", seed=0).eval()  # same seed, same weights, same vectors
    with torch.no_grad():
        assert torch.equal(twin.encode(_prepare(twin, mme_items), tiny.ns[1]), a)


def test_gradients_reach_the_projector_not_the_frozen_tower(tiny, mme_items):
    prep = _prepare(tiny, mme_items)
    tiny.train()
    try:
        tiny.zero_grad()
        vecs = tiny.encode(prep[:2], tiny.ns[1])
        (vecs[0] @ vecs[1]).backward()
        proj = tiny.backbone.projector_parameters()
        assert all(p.grad is not None for p in proj)
        assert sum(float(p.grad.abs().sum()) for p in proj) > 0
        proj_ids = {id(p) for p in proj}
        tower = [p for p in tiny.backbone.vision_tower.parameters() if id(p) not in proj_ids]
        assert tower and all(p.grad is None and not p.requires_grad for p in tower)
    finally:
        tiny.zero_grad()
        tiny.eval()


def test_save_load_round_trip_and_backbone_refusal(tiny, mme_items, tmp_path):
    prep = _prepare(tiny, mme_items)
    tiny.save(tmp_path / "ckpt")
    loaded = load_encoder(tmp_path / "ckpt", device="cpu")
    assert loaded.kind == tiny.kind and loaded.ns == tiny.ns
    with torch.no_grad():
        assert torch.equal(loaded.encode(loaded.prepare_many([(p.id, c) for p, c in zip(
            prep, [d.content for d in mme_items[0]], strict=True)]), 1), tiny.encode(prep, 1))
    other = "mme-mini" if tiny.kind != "mme-mini" else "qwen2_vl"
    with pytest.raises(CheckpointError, match=rf"checkpoint is for backbone '{tiny.kind}', not '{other}'"):
        load_encoder(tmp_path / "ckpt", expect_backbone=other)


def test_not_a_checkpoint_is_refused_clearly(tmp_path):
    with pytest.raises(CheckpointError, match="not an MME checkpoint"):
        load_encoder(tmp_path)
    (tmp_path / "mme.json").write_text('{"format": "wikihow-tiir-mme", "backbone": "llava"}')
    with pytest.raises(CheckpointError, match="unknown backbone 'llava'"):
        load_encoder(tmp_path)


@pytest.mark.parametrize("kind", ["qwen2_vl", "qwen2_5_vl"])
def test_qwen_positions_match_the_models_own_rope_index_at_full_grid(kind):
    """At N = grid side our M-RoPE positions equal Qwen's get_rope_index for the unpooled image."""
    enc = new_encoder(f"tiny:{kind}", seed=0)
    bb = enc.backbone
    g, merge = bb.grid_side, bb.hf.config.vision_config.spatial_merge_size
    image_id = bb.hf.config.image_token_id
    ids = torch.tensor([[5] * 3 + [image_id] * (g * g) + [6] * 4])
    types = (ids == image_id).int()
    grid_thw = torch.tensor([[1, g * merge, g * merge]])
    theirs, _ = bb.hf.model.get_rope_index(ids, mm_token_type_ids=types, image_grid_thw=grid_thw)
    ours = bb._mrope_positions([[("text", 3), ("image", g), ("text", 4)]], ids.shape[1], "cpu")
    assert torch.equal(ours, theirs)


def _photo(width: int, height: int, seed: int = 0):
    """A non-square RGB picture with detail everywhere (so any misplaced pixel shows)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


@pytest.mark.parametrize("size", [(53, 31), (31, 53), (40, 40)])
def test_deepseek_vl_pixels_are_its_processors_pad_to_square(size):
    """DeepSeek-VL's own image processor (transformers): longest side resized, padded to a square with the
    mean colour; our pixels are its pixel_values (no stretching)."""
    from transformers.models.deepseek_vl.image_processing_pil_deepseek_vl import DeepseekVLImageProcessorPil

    bb = new_encoder("tiny:deepseek_vl", seed=0).backbone
    image = _photo(*size)
    processor = DeepseekVLImageProcessorPil(size={"height": bb.image_size, "width": bb.image_size},
                                            image_mean=list(bb.image_mean), image_std=list(bb.image_std))
    theirs = torch.as_tensor(processor(images=[image], return_tensors="np")["pixel_values"])
    ours = bb.pixels([image])
    assert ours.shape == theirs.shape == (1, 3, bb.image_size, bb.image_size)
    assert torch.allclose(ours, theirs.float(), atol=1e-5)
    if size[0] != size[1]:  # the padding is the processor's mean colour, not stretched picture
        from wikihow_tiir.mme.backbones import background_colour

        corner = ours[0, :, 0, 0]  # portrait or landscape, the top-left corner is padding
        pad = (torch.tensor(background_colour(bb.image_mean)) / 255 - torch.tensor(bb.image_mean)) / torch.tensor(
            bb.image_std)
        assert torch.allclose(corner, pad, atol=1e-5)


@pytest.mark.parametrize("kind", ["qwen2_vl", "qwen2_5_vl"])
def test_qwen_patches_are_its_processors_output_for_the_padded_square(kind):
    """Qwen's processor keeps the aspect ratio on a grid of any shape; MME pads to a square first (with the
    mean colour, as DeepSeek-VL's processor does) and then prepares it exactly as Qwen's processor does."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from wikihow_tiir.mme.backbones import pad_to_square

    bb = new_encoder(f"tiny:{kind}", seed=0).backbone
    vc = bb.hf.config.vision_config
    image = _photo(61, 27, seed=1)
    side = bb.image_size
    processor = Qwen2VLImageProcessorPil(
        min_pixels=side * side, max_pixels=side * side, patch_size=vc.patch_size,
        temporal_patch_size=vc.temporal_patch_size, merge_size=vc.spatial_merge_size,
        image_mean=list(bb.image_mean), image_std=list(bb.image_std))
    out = processor(images=[pad_to_square(image, side, bb.image_mean)], return_tensors="np")
    theirs = torch.as_tensor(out["pixel_values"]).float()
    assert out["image_grid_thw"].tolist() == [[1, side // vc.patch_size, side // vc.patch_size]]
    ours, grid = bb._qwen_patches(bb.pixels([image]))
    assert ours.shape == theirs.shape and grid.tolist() == out["image_grid_thw"].tolist()
    assert torch.allclose(ours, theirs, atol=1e-5)
