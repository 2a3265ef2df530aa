"""The model families on tiny random checkpoints of their architectures: inputs assembled as the
paper's scripts assemble them, outputs equal to those scripts' code run on the same checkpoint."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from eval_synth import make_dataset, make_items, torch_one_thread  # noqa: F401 (autouse)
from PIL import Image

from wikihow_tiir.evaluate.adapters import decode_images, merge_images, paper_text
from wikihow_tiir.evaluate.baselines import ModelOptions
from wikihow_tiir.evaluate.clip import ModelUnavailableError
from wikihow_tiir.evaluate.families import assemble, load_family, tiny
from wikihow_tiir.evaluate.runner import evaluate_models


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-models")
    return {"gme": tiny.tiny_gme(root / "gme"), "e5v": tiny.tiny_e5v(root / "e5v"),
            "clip": tiny.tiny_clip(root / "clip"), "jina": tiny.tiny_jina_clip(root / "jina")}


@pytest.fixture(scope="module")
def items():
    docs, queries, _ = make_items()
    return docs[:3], queries[:3]


def unit(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ---------------------------------------------------------------- GME (Qwen2-VL)


def paper_fetch_image(image: Image.Image) -> Image.Image:
    """qwen_vl_utils' fetch_image as GME's inference file uses it (factor 28, 4*28*28 .. 16384*28*28 pixels)."""
    factor, lo, hi = 28, 4 * 28 * 28, 16384 * 28 * 28
    image = image.convert("RGB")
    w, h = image.size
    hb, wb = max(factor, round(h / factor) * factor), max(factor, round(w / factor) * factor)
    if hb * wb > hi:
        beta = math.sqrt(h * w / hi)
        hb, wb = math.floor(h / beta / factor) * factor, math.floor(w / beta / factor) * factor
    elif hb * wb < lo:
        beta = math.sqrt(lo / (h * w))
        hb, wb = math.ceil(h * beta / factor) * factor, math.ceil(w * beta / factor) * factor
    return image.resize((wb, hb))


def paper_gme(enc, texts, images, is_query: bool) -> np.ndarray:
    """gen_embeddings_multigpu.py -> GmeQwen2VL.get_embeddings/embed/forward, transcribed onto transformers 5
    (``base.model.language_model`` is what ``base.model`` was: the text model, called without position ids)."""
    instruction = "Find a wikiHow tutorial that matches the given query." if is_query else None
    input_texts, input_images = [], []
    for t, i in zip(texts, images, strict=True):
        if not is_query or instruction is None:
            instruction = "You are a helpful assistant."
        input_str = ""
        if i is None:
            input_images = None
        else:
            input_str += "<|vision_start|><|image_pad|><|vision_end|>"
            input_images.append(paper_fetch_image(i))
        if t is not None:
            input_str += t
        input_texts.append(f"<|im_start|>system\n{instruction}<|im_end|>\n<|im_start|>user\n{input_str}<|im_end|>\n"
                           f"<|im_start|>assistant\n<|endoftext|>")
    inputs = enc.processor(text=input_texts, images=input_images, padding=True, truncation=True, max_length=1800,
                           return_tensors="pt")
    base = enc.base
    with torch.no_grad():
        embeds = base.model.language_model.embed_tokens(inputs["input_ids"])
        if input_images is not None:
            image_embeds = base.model.visual(inputs["pixel_values"], grid_thw=inputs["image_grid_thw"]).pooler_output
            embeds[inputs["input_ids"] == base.config.image_token_id] = image_embeds
        out = base.model.language_model(inputs_embeds=embeds, attention_mask=inputs["attention_mask"])
        mask = inputs["attention_mask"]
        if mask[:, -1].sum() == mask.shape[0]:
            emb = out.last_hidden_state[:, -1]
        else:
            emb = out.last_hidden_state[torch.arange(mask.shape[0]), mask.sum(dim=1) - 1]
    return F.normalize(emb, p=2, dim=1).numpy()


class SpyProcessor:
    """The processor, recording the keyword arguments of every call."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        return self.inner(**kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_gme_assembles_the_paper_inputs(models, items):
    from wikihow_tiir.evaluate.adapters import MergedImage
    from wikihow_tiir.evaluate.families.gme import GME

    enc = GME(str(models["gme"]), batch_size=8)
    enc.processor = spy = SpyProcessor(enc.processor)
    seen = spy.calls
    docs, queries = items
    fam_model = MergedImage(enc)  # the family's default: text w/ merged image
    got_q = fam_model.encode_queries(queries)
    text = seen[0]["text"][0]
    assert text == ("<|im_start|>system\nFind a wikiHow tutorial that matches the given query.<|im_end|>\n"
                    "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|> I want to grill zucchini today. "
                    "Should I slice the zucchini and brush with oil?<|im_end|>\n<|im_start|>assistant\n<|endoftext|>")
    assert (seen[0]["padding"], seen[0]["truncation"], seen[0]["max_length"]) == (True, True, 1800)
    assert enc.processor.tokenizer.padding_side == "right"
    assert [im.size for im in seen[0]["images"]][0] == paper_fetch_image(merge_images(decode_images(queries[0]))).size
    paper_q = paper_gme(enc, [paper_text(q.content.texts) for q in queries],
                        [merge_images(decode_images(q)) for q in queries], is_query=True)
    np.testing.assert_allclose(unit(got_q), paper_q, atol=2e-5)
    # the processor's own bound: at least 256 visual tokens per image (min_pixels = 256*28*28)
    batch = enc.inputs([" x"], [merge_images(decode_images(queries[0]))], "query")
    assert int(batch["image_grid_thw"][0].prod()) // 4 >= 256
    got_d = fam_model.encode_documents(docs)
    assert "<|im_start|>system\nYou are a helpful assistant.<|im_end|>" in seen[-1]["text"][0]
    paper_d = paper_gme(enc, [paper_text(d.content.texts) for d in docs],
                        [merge_images(decode_images(d)) for d in docs], is_query=False)
    np.testing.assert_allclose(unit(got_d), paper_d, atol=2e-5)
    # text only (the paper's task_type only_text): no image, same instruction
    texts = [paper_text(q.content.texts) for q in queries]
    np.testing.assert_allclose(unit(enc.encode_texts(texts, "query")), paper_gme(enc, texts, [None] * 3, True),
                               atol=2e-5)


def test_gme_smart_resize_bounds():
    from wikihow_tiir.evaluate.families.gme import smart_resize

    assert smart_resize(60, 200) == (56, 196)  # rounded to multiples of 28
    assert smart_resize(10, 10) == (56, 56)  # scaled up to 4*28*28 pixels
    h, w = smart_resize(5000, 300000)
    assert max(h, w) / min(h, w) <= 200 and h % 28 == 0 and h * w <= 16384 * 28 * 28


# ---------------------------------------------------------------- E5-V (LLaVA-NeXT)


E5V_Q = ("<|start_header_id|>user<|end_header_id|>\n\n<image>\n{}\nSummary above query in one word: <|eot_id|>"
         "<|start_header_id|>assistant<|end_header_id|>\n\n \n")


def test_e5v_assembles_the_paper_prompts(models, items):
    from transformers import AutoProcessor, LlavaNextForConditionalGeneration

    from wikihow_tiir.evaluate.families.e5v import E5V

    enc = E5V(str(models["e5v"]), batch_size=8)
    seen = []
    real = enc.inputs
    enc.inputs = lambda prompts, images: seen.append((list(prompts), images)) or real(prompts, images)
    docs, queries = items
    texts = [paper_text(q.content.texts) for q in queries]
    images = [merge_images(decode_images(q)) for q in queries]
    got = enc.encode_pairs(texts, images, "query")
    assert seen[0][0][0] == E5V_Q.format(" I want to grill zucchini today. Should I slice the zucchini and brush with oil?")
    enc.encode_pairs([paper_text(d.content.texts) for d in docs[:1]], [merge_images(decode_images(docs[0]))],
                     "document")
    assert "\nSummary above tutorial in one word: " in seen[-1][0][0] and seen[-1][0][0].count("<image>") == 1
    enc.encode_texts(texts[:1], "query")
    assert seen[-1] == ([E5V_Q.replace("<image>\n", "").format(texts[0])], None)
    # the paper's code on the same checkpoint: processor(prompts, images, padding=True), last layer, last position
    processor = AutoProcessor.from_pretrained(models["e5v"])
    processor.tokenizer.padding_side = "left"  # E5-V's last-position embedding needs left padding
    model = LlavaNextForConditionalGeneration.from_pretrained(models["e5v"]).eval()
    inputs = processor(text=[E5V_Q.format(t) for t in texts], images=images, return_tensors="pt", padding=True)
    inputs.pop("token_type_ids", None)
    with torch.no_grad():
        paper = model(**inputs, output_hidden_states=True, return_dict=True).hidden_states[-1][:, -1, :]
    np.testing.assert_allclose(got, paper.numpy(), atol=2e-5)


# ---------------------------------------------------------------- sentence-transformers text models


@pytest.fixture(scope="module")
def st_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("st")
    return {name: tiny.tiny_sentence_transformer(root / name, pooling="mean", seed=1)
            for name in ("bge-large-en-v1.5-tiny", "gte-large-en-v1.5-tiny", "gte-Qwen2-7B-instruct-tiny",
                         "e5-large-tiny", "plain-tiny")}


def paper_text_model(folder, branch: str, texts, is_query: bool, maxtoken: int = 64) -> np.ndarray:
    """gen_embeddings_text.py: the branch's prefix, tokenizer(max_length=maxtoken, padding, truncation), its pooling."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    if branch == "gte-inst" and is_query:
        texts = [f"Instruct: Given a query, retrieve relevant wikiHow document that answer the query\nQuery: {t}"
                 for t in texts]
    elif branch == "gte-large":
        texts = [("query:" if is_query else "passage:") + t for t in texts]
    elif branch == "bge-large" and is_query:
        texts = [f"Represent this query for searching relevant wikiHow passages: {t}" for t in texts]
    inputs = tok(texts, max_length=maxtoken, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**inputs).last_hidden_state
    mask = inputs["attention_mask"]
    if branch == "gte-inst":
        if mask[:, -1].sum() == mask.shape[0]:
            emb = hidden[:, -1]
        else:
            emb = hidden[torch.arange(hidden.shape[0]), mask.sum(dim=1) - 1]
    elif branch == "e5-large":
        emb = hidden.masked_fill(~mask[..., None].bool(), 0.0).sum(dim=1) / mask.sum(dim=1)[..., None]
    else:
        emb = hidden[:, 0]
    return F.normalize(emb, p=2, dim=1).numpy()


@pytest.mark.parametrize(("name", "branch"), [("bge-large-en-v1.5-tiny", "bge-large"),
                                              ("gte-large-en-v1.5-tiny", "gte-large"),
                                              ("gte-Qwen2-7B-instruct-tiny", "gte-inst"),
                                              ("e5-large-tiny", "e5-large")])
def test_st_models_use_the_paper_prefixes_and_pooling(st_models, items, name, branch):
    docs, queries = items
    fam = load_family(f"st:{st_models[name]}", ModelOptions())
    model = assemble(fam, None, ModelOptions())
    texts_q = [q.content.text for q in queries]  # newline-joined text positions, as the paper's text script
    np.testing.assert_allclose(unit(model.encode_queries(queries)),
                               paper_text_model(st_models[name], branch, texts_q, True), atol=1e-5)
    np.testing.assert_allclose(unit(model.encode_documents(docs)),
                               paper_text_model(st_models[name], branch, [d.content.text for d in docs], False),
                               atol=1e-5)


def test_st_other_models_keep_their_pooling_and_take_prefix_overrides(st_models, items):
    _, queries = items
    opts = ModelOptions(query_prefix="query: ", document_prefix="passage: ")
    fam = load_family(f"st:{st_models['plain-tiny']}", opts)
    assert fam.info["pooling"] == "mean" and fam.info["query_prefix"] == "query: "
    got = unit(fam.text.encode_texts(["a b"], "query"))
    np.testing.assert_allclose(got, paper_text_model(st_models["plain-tiny"], "e5-large", ["query: a b"], True),
                               atol=1e-5)
    with pytest.raises(ValueError, match=r"cannot run --adapt merged-image: it can run text, captions"):
        assemble(fam, "merged-image", opts)


def test_st_minilm_equals_the_minilm_baseline_on_the_bundled_build(bundled_build, tmp_path):
    from wikihow_tiir.encoders.minilm import model_path

    spec = f"st:{model_path()}"
    summary = evaluate_models(bundled_build, ["minilm", spec], output=tmp_path)
    ours, st = summary["models"]["minilm"]["metrics"], summary["models"][spec]["metrics"]
    assert set(ours) == set(st)
    for metric in ours:
        assert abs(ours[metric] - st[metric]) <= 1e-9, metric


# ---------------------------------------------------------------- two towers: CLIP and Jina-CLIP


def test_clip_family_fuses_like_the_paper_script(models, items):
    """gen_embeddings_clip.py --model openai: tokenizer(text, padding, truncation), processor(images),
    get_*_features, each L2-normalized, images averaged per item, then the --it_type fusion."""
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    docs, queries = items
    for fusion in ("addNorm", "NCNorm"):
        fam = load_family(f"clip:{models['clip']}", ModelOptions(fusion=fusion))
        got = unit(assemble(fam, None, ModelOptions(fusion=fusion)).encode_queries(queries))
        model = AutoModel.from_pretrained(models["clip"]).eval()
        tok = AutoTokenizer.from_pretrained(models["clip"])
        proc = AutoImageProcessor.from_pretrained(models["clip"])
        with torch.no_grad():
            t = model.get_text_features(**tok([paper_text(q.content.texts) for q in queries], padding=True,
                                              truncation=True, max_length=64, return_tensors="pt"))
            t = getattr(t, "pooler_output", t)
            flat = [im for q in queries for im in decode_images(q)]
            v = model.get_image_features(pixel_values=proc(images=flat, return_tensors="pt")["pixel_values"])
            v = getattr(v, "pooler_output", v)
        t, v = t / t.norm(dim=-1, keepdim=True), v / v.norm(dim=-1, keepdim=True)
        v = torch.stack([v[2 * i:2 * i + 2].mean(0) for i in range(len(queries))])
        if fusion == "NCNorm":
            fused = torch.cat([F.normalize(t, dim=-1), F.normalize(v, dim=-1)], dim=-1)
        else:
            fused = t + v
        np.testing.assert_allclose(got, F.normalize(fused, dim=-1).numpy(), atol=1e-5)


def test_jina_clip_calls_its_own_encoders_with_the_query_task(models, items):
    docs, queries = items
    fam = load_family(f"jina-clip:{models['jina']}", ModelOptions())
    model = assemble(fam, None, ModelOptions())  # Vector-Fusion, NAddNorm, mean images
    inner = fam.text.fn.__self__.model
    q = model.encode_queries(queries)
    model.encode_documents(docs)
    calls = inner.calls
    texts = [c for c in calls if c[0] == "text"]
    assert texts[0] == ("text", [paper_text(x.content.texts) for x in queries], "retrieval.query")
    assert texts[1] == ("text", [paper_text(x.content.texts) for x in docs], None)
    assert [c[1] for c in calls if c[0] == "image"][0] == [(48, 36)] * 6  # every picture, one by one, as PIL
    # NAddNorm of Jina's unit vectors
    t = inner.encode_text([paper_text(x.content.texts) for x in queries], task="retrieval.query")
    v = inner.encode_image([im for x in queries for im in decode_images(x)])
    v = np.stack([v[2 * i:2 * i + 2].mean(0) for i in range(3)])
    np.testing.assert_allclose(unit(q), unit(t + unit(v)), atol=1e-5)


# ---------------------------------------------------------------- missing weights, bad options


@pytest.mark.parametrize("prefix", ["gme", "e5v", "st", "jina-clip", "clip"])
def test_missing_weights_offline_are_one_clear_message(prefix):
    with pytest.raises(ModelUnavailableError) as err:
        load_family(f"{prefix}:no-such-org/no-such-model", ModelOptions())
    msg = str(err.value)
    assert "not available" in msg and "HF_HUB_OFFLINE=1" in msg and "0x" not in msg


def test_cli_missing_model_is_one_error_line(tmp_path):
    from typer.testing import CliRunner

    from wikihow_tiir.cli import app

    root = make_dataset(tmp_path / "d")
    res = CliRunner().invoke(app, ["evaluate", "-d", str(root), "-m", "gme:no-such-org/gme", "-o", str(tmp_path / "o")])
    assert res.exit_code == 2
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: weights for gme:no-such-org/gme are not available")


def test_adapt_applies_to_families_only_and_names_its_choices(tmp_path, models):
    root = make_dataset(tmp_path / "d")
    with pytest.raises(ValueError, match=r"--adapt applies to the model families .*\['bm25'\]"):
        evaluate_models(root, ["bm25"], output=tmp_path / "o", adapts=["text"])
    with pytest.raises(ValueError, match="unknown adaptation 'pixels'"):
        evaluate_models(root, [f"clip:{models['clip']}"], output=tmp_path / "o", adapts=["pixels"])
    with pytest.raises(ValueError, match=r"clip:.* cannot run --adapt merged-image"):
        evaluate_models(root, [f"clip:{models['clip']}"], output=tmp_path / "o", adapts=["merged-image"])


def test_screenshot_adaptation_encodes_one_page_per_item(models, items):
    docs, _ = items
    fam = load_family(f"gme:{models['gme']}", ModelOptions())
    pages = []
    real = fam.page
    fam.page = lambda images, role: pages.extend((im.size, role) for im in images) or real(images, role)
    vec = assemble(fam, "screenshot", ModelOptions()).encode_documents(docs)
    assert vec.shape[0] == 3 and np.isfinite(vec).all()
    assert [r for _, r in pages] == ["document"] * 3 and all(s[0] == 768 for s, _ in pages)
