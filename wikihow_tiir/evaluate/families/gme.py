"""``gme:ID``: GME (Qwen2-VL based), as the paper's ``gen_embeddings_multigpu.py`` runs it (Table 2 row 2).

The paper wraps ``Alibaba-NLP/gme-Qwen2-VL-2B-Instruct`` in GME's own inference class
(``gme_inference.py``); we assemble the same inputs with `transformers`:

* one chat message per item:
  ``<|im_start|>system\\n{instruction}<|im_end|>\\n<|im_start|>user\\n{image}{text}<|im_end|>\\n<|im_start|>assistant\\n<|endoftext|>``
  where ``{image}`` is ``<|vision_start|><|image_pad|><|vision_end|>`` (the image comes before the
  text) or nothing, and ``{instruction}`` is :data:`QUERY_INSTRUCTION` for queries and GME's default
  ``You are a helpful assistant.`` for documents;
* each image converted to RGB and resized as Qwen's ``fetch_image`` does (:func:`smart_resize`: sides
  multiples of 28, 4x28x28 to 16384x28x28 pixels, aspect ratio within 200), then the processor
  resizes it to 256-1280 visual tokens (``min_pixels`` / ``max_pixels``);
* the processor pads on the right, truncates at 1800 tokens (``max_length``);
* the language model reads the token embeddings with the visual features written at the image-pad
  positions and *plain* positions 0..n-1 (GME passes no position ids, so no multimodal RoPE), and
  the embedding is the last token's hidden state (last non-padding token), L2-normalized; fp16.

The image processor is Qwen2-VL's PIL one (what the paper's transformers had). The family also gives
text-only (``--adapt text``: no image), image-only (fusion's image tower, screenshots) inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from wikihow_tiir.evaluate.adapters import paper_text
from wikihow_tiir.evaluate.base import Role
from wikihow_tiir.evaluate.families.common import (
    Family,
    Images,
    Pairs,
    RoleText,
    batched,
    load_or_explain,
    local_only,
    to_numpy,
    torch_dtype,
)

QUERY_INSTRUCTION = "Find a wikiHow tutorial that matches the given query."
DEFAULT_INSTRUCTION = "You are a helpful assistant."
VISION = "<|vision_start|><|image_pad|><|vision_end|>"
TEMPLATE = "<|im_start|>system\n{instruction}<|im_end|>\n<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n<|endoftext|>"
# qwen_vl_utils' resize bounds (fetch_image), before the processor's own
FACTOR, MIN_PIXELS, MAX_PIXELS, MAX_RATIO = 28, 4 * 28 * 28, 16384 * 28 * 28, 200


def message(text: str | None, has_image: bool, role: Role) -> str:
    """The chat string GME embeds for one item."""
    instruction = QUERY_INSTRUCTION if role == "query" else DEFAULT_INSTRUCTION
    return TEMPLATE.format(instruction=instruction, content=(VISION if has_image else "") + (text or ""))


def smart_resize(height: int, width: int, factor: int = FACTOR, min_pixels: int = MIN_PIXELS,
                 max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """Qwen's resize rule: sides rounded to multiples of ``factor``, area scaled into
    [min_pixels, max_pixels] keeping the aspect ratio, a side capped at ``MAX_RATIO`` x the other."""
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        scale = math.sqrt(height * width / max_pixels)
        h = math.floor(height / scale / factor) * factor
        w = math.floor(width / scale / factor) * factor
    elif h * w < min_pixels:
        scale = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * scale / factor) * factor
        w = math.ceil(width * scale / factor) * factor
    if max(h, w) / min(h, w) > MAX_RATIO:
        if h > w:
            h = w * MAX_RATIO
        else:
            w = h * MAX_RATIO
    return h, w


def fetch_image(image):
    """An image as GME's ``fetch_image`` hands it to the processor: RGB, resized by :func:`smart_resize`."""
    image = image.convert("RGB")
    h, w = smart_resize(image.height, image.width)
    return image.resize((w, h))


def image_only_processor(name: str, min_pixels: int, max_pixels: int, local: bool):
    """Qwen2-VL's processor for text and images (PIL image processor + the checkpoint's tokenizer).

    Built without the video processor, which needs torchvision and is never used here."""
    from transformers import AutoTokenizer, Qwen2VLProcessor

    try:
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
            Qwen2VLImageProcessorPil as ImageProcessor,
        )
    except ImportError:  # transformers 4: the PIL processor is the plain one
        from transformers import Qwen2VLImageProcessor as ImageProcessor

    class _Processor(Qwen2VLProcessor):
        attributes = ["image_processor", "tokenizer"]

        @classmethod
        def get_attributes(cls):
            return ["image_processor", "tokenizer"]

    image_processor = ImageProcessor.from_pretrained(name, min_pixels=min_pixels, max_pixels=max_pixels,
                                                     local_files_only=local)
    tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=local)
    processor = _Processor(image_processor=image_processor, tokenizer=tokenizer)
    processor.tokenizer.padding_side = "right"
    return processor


class GME:
    """GME-Qwen2-VL: pairs, texts, images; see the module doc."""

    def __init__(self, name: str, device: str = "cpu", dtype: str = "auto", batch_size: int = 8,
                 min_image_tokens: int = 256, max_image_tokens: int = 1280, max_length: int = 1800):
        import torch  # noqa: F401

        self.td = torch_dtype(dtype, device, "float16")
        local = local_only(name)

        def load():
            from transformers import AutoModelForImageTextToText

            model = AutoModelForImageTextToText.from_pretrained(name, dtype=self.td, local_files_only=local)
            return model, image_only_processor(name, min_image_tokens * 28 * 28, max_image_tokens * 28 * 28, local)

        self.base, self.processor = load_or_explain("gme", name, load)
        self.base.eval().to(device)
        self.image_token_id = int(self.base.config.image_token_id)
        self.name, self.device, self.batch_size, self.max_length = f"gme:{name}", device, batch_size, max_length
        self.settings = {"query_instruction": QUERY_INSTRUCTION, "document_instruction": DEFAULT_INSTRUCTION,
                         "min_image_tokens": min_image_tokens, "max_image_tokens": max_image_tokens,
                         "max_length": max_length, "dtype": str(self.td).replace("torch.", "")}

    def inputs(self, texts: Sequence[str | None], images: Sequence | None, role: Role) -> dict:
        """The processor's tensors for one batch (what :meth:`embed` runs)."""
        msgs = [message(t, images is not None, role) for t in texts]
        kwargs = {"images": [fetch_image(im) for im in images]} if images is not None else {}
        return self.processor(text=msgs, padding=True, truncation=True, max_length=self.max_length,
                              return_tensors="pt", **kwargs)

    def embed(self, texts: Sequence[str | None], images: Sequence | None, role: Role) -> np.ndarray:
        import torch

        batch = self.inputs(texts, images, role)
        ids = batch["input_ids"].to(self.device)
        mask = batch["attention_mask"].to(self.device)
        model = self.base.model
        with torch.inference_mode():
            embeds = model.get_input_embeddings()(ids)
            if images is not None:
                feats = model.get_image_features(batch["pixel_values"].to(self.device, self.td),
                                                 batch["image_grid_thw"].to(self.device))
                feats = getattr(feats, "pooler_output", feats)
                feats = torch.cat(list(feats)) if isinstance(feats, (list, tuple)) else feats
                embeds = embeds.clone()
                embeds[ids == self.image_token_id] = feats.to(embeds.dtype)
            hidden = model.language_model(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
            if bool(mask[:, -1].all()):  # GME's test: every row ends in a real token (left padding)
                out = hidden[:, -1]
            else:
                out = hidden[torch.arange(hidden.shape[0], device=hidden.device), mask.sum(1) - 1]
            out = torch.nn.functional.normalize(out.float(), p=2, dim=1)
        return to_numpy(out)

    def encode_pairs(self, texts: Sequence[str], images: Sequence, role: Role) -> np.ndarray:
        pairs = list(zip(texts, images, strict=True))
        return batched(lambda b: self.embed([t for t, _ in b], [i for _, i in b], role), pairs, self.batch_size)

    def encode_texts(self, texts: Sequence[str], role: Role) -> np.ndarray:
        return batched(lambda b: self.embed(b, None, role), texts, self.batch_size)

    def encode_page(self, images: Sequence, role: Role) -> np.ndarray:
        return batched(lambda b: self.embed([None] * len(b), b, role), images, self.batch_size)

    def encode_images(self, images: Sequence) -> np.ndarray:
        # GME's get_image_embeddings: no text, the default instruction
        return self.encode_page(images, "document")


def load(name: str, opt) -> Family:
    kwargs = {"max_length": opt.max_length} if opt.max_length else {}
    enc = GME(name, device=opt.device, dtype=opt.dtype, batch_size=opt.batch_size, **kwargs)
    return Family(spec=enc.name, default_adapt="merged-image", text=RoleText(enc.name, enc.encode_texts),
                  image=Images(enc.name, enc.encode_images), pair=Pairs(enc.name, enc.encode_pairs),
                  page=enc.encode_page, joiner=paper_text, info=enc.settings)
