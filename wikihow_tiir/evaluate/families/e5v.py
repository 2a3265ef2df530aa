"""``e5v:ID``: E5-V (LLaVA-NeXT, Llama-3), as the paper's ``gen_embeddings_multigpu.py`` (Table 2 row 3).

Prompts in the Llama-3 chat template :data:`TEMPLATE`, ``<sent>`` replaced by the item's text (the
paper's space-led ``" t1 t2"``), the merged image as ``<image>``:

* query with image: ``<image>\\n<sent>\\nSummary above query in one word: ``
* document with image: ``<image>\\n<sent>\\nSummary above tutorial in one word: ``
* text only (``--adapt text``): the same without ``<image>\\n``;
* image only (fusion's image tower): E5-V's own ``<image>\\nSummary above image in one word: ``;
  a page screenshot: the role's prompt without ``<sent>\\n``.

``processor(text=prompts, images=images, padding=True)``, the model's last-layer hidden state at the
last position; bf16 (the paper loads fp16, then casts to bf16). Padding is on the left, so the
last position is each prompt's last token (with right padding it would be a pad token).
"""

from __future__ import annotations

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

TEMPLATE = "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n \n"
_NOUN = {"query": "query", "document": "tutorial"}


def prompt(role: Role | None, image: bool, text: bool) -> str:
    """The E5-V prompt (``<sent>`` still in it when ``text``)."""
    if role is None:  # an image alone: E5-V's image prompt
        return TEMPLATE.format("<image>\nSummary above image in one word: ")
    body = ("<image>\n" if image else "") + ("<sent>\n" if text else "")
    return TEMPLATE.format(f"{body}Summary above {_NOUN[role]} in one word: ")


class E5V:
    def __init__(self, name: str, device: str = "cpu", dtype: str = "auto", batch_size: int = 8):
        self.td = torch_dtype(dtype, device, "bfloat16")
        local = local_only(name)

        def load():
            from transformers import AutoProcessor, LlavaNextForConditionalGeneration

            model = LlavaNextForConditionalGeneration.from_pretrained(name, dtype=self.td, local_files_only=local)
            return model, AutoProcessor.from_pretrained(name, local_files_only=local)

        self.model, self.processor = load_or_explain("e5v", name, load)
        self.model.eval().to(device)
        self.processor.tokenizer.padding_side = "left"
        self.name, self.device, self.batch_size = f"e5v:{name}", device, batch_size
        self.settings = {"query_prompt": prompt("query", True, True), "document_prompt": prompt("document", True, True),
                         "dtype": str(self.td).replace("torch.", "")}

    def inputs(self, prompts: Sequence[str], images: Sequence | None) -> dict:
        kwargs = {"images": list(images)} if images is not None else {}
        return self.processor(text=list(prompts), return_tensors="pt", padding=True, **kwargs)

    def embed(self, prompts: Sequence[str], images: Sequence | None) -> np.ndarray:
        import torch

        batch = self.inputs(prompts, images)
        keep = {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "image_sizes")}
        if "pixel_values" in batch:
            keep["pixel_values"] = batch["pixel_values"].to(self.device, self.td)
        with torch.inference_mode():
            out = self.model(**keep, output_hidden_states=True, return_dict=True).hidden_states[-1][:, -1, :]
        return to_numpy(out)

    def encode_pairs(self, texts: Sequence[str], images: Sequence, role: Role) -> np.ndarray:
        p = prompt(role, True, True)
        pairs = list(zip(texts, images, strict=True))
        return batched(lambda b: self.embed([p.replace("<sent>", t) for t, _ in b], [i for _, i in b]), pairs,
                       self.batch_size)

    def encode_texts(self, texts: Sequence[str], role: Role) -> np.ndarray:
        p = prompt(role, False, True)
        return batched(lambda b: self.embed([p.replace("<sent>", t) for t in b], None), texts, self.batch_size)

    def encode_images(self, images: Sequence) -> np.ndarray:
        p = prompt(None, True, False)
        return batched(lambda b: self.embed([p] * len(b), b), images, self.batch_size)

    def encode_page(self, images: Sequence, role: Role) -> np.ndarray:
        p = prompt(role, True, False)
        return batched(lambda b: self.embed([p] * len(b), b), images, self.batch_size)


def load(name: str, opt) -> Family:
    enc = E5V(name, device=opt.device, dtype=opt.dtype, batch_size=opt.batch_size)
    return Family(spec=enc.name, default_adapt="merged-image", text=RoleText(enc.name, enc.encode_texts),
                  image=Images(enc.name, enc.encode_images), pair=Pairs(enc.name, enc.encode_pairs),
                  page=enc.encode_page, joiner=paper_text, info=enc.settings)
