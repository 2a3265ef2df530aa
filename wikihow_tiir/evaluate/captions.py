"""Captions for the "Text w/ Caption" setting: ``wikihow-tiir caption`` over a built dataset.

Every distinct image (by sha256) of the corpus and of the chosen query splits is described once by
an OpenAI-compatible vision model, through the query stage's caption backend (``generate/remote.py``:
retries, 429 pauses, size caps, redaction) with its prompt ``prompts/caption.v1.yaml`` and its
SQLite request cache. The step text the prompt asks for is the text position just before the
picture (after it, for a picture that opens its item), from the first item, in id order, that
holds the picture. The captions file::

    {"provenance": {"model": ..., "base_url": ..., "prompt": {"name", "version", "sha256"},
                    "temperature": ..., "max_tokens": ..., "seed": ..., "dataset": ..., "splits": [...]},
     "captions": {"<image sha256>": "<caption>", ...},
     "failed": {"<image sha256>": "<reason>: <detail>", ...}}

is what ``evaluate --captions`` reads (a plain ``{sha256: caption}`` object is accepted too); the
provenance goes into the evaluation's summary and results. Running the command again keeps the
captions already in the file and asks only for the missing ones, so a partial run loses nothing
(answers the server gave, refusals included, come back from the request cache; errors and
timeouts are asked again).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from wikihow_tiir.errors import WikihowTiirError
from wikihow_tiir.retrieval.dataset import DatasetError, load_split


class CaptionError(WikihowTiirError):
    reason = "captions-incomplete"


def read_captions(path: Path) -> tuple[dict[str, str], dict | None]:
    """``(sha256 -> caption, provenance or None)`` from a captions file; a malformed file is a DatasetError."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DatasetError(f"{path}: not a captions file (JSON): {exc}") from None
    provenance = None
    if isinstance(data, dict) and isinstance(data.get("captions"), dict):
        provenance = data.get("provenance") if isinstance(data.get("provenance"), dict) else None
        data = data["captions"]
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise DatasetError(f"{path}: expected {{image sha256: caption}} (or the file `wikihow-tiir caption` "
                           f"writes), every key and value a string")
    return data, provenance


def _context(texts: Sequence[str | None], pos: int) -> str:
    before = [t for t in texts[:pos] if t]
    after = [t for t in texts[pos + 1:] if t]
    return before[-1] if before else (after[0] if after else "")


def images_to_caption(dataset: str | Path, splits: Sequence[str], layout: str = "ours") -> tuple[dict, dict]:
    """``(sha256 -> (bytes or None, step text), description)``: every distinct image, first occurrence wins
    (corpus by id, then each split's queries by id)."""
    found: dict[str, tuple[bytes | None, str]] = {}
    described: dict[str, Any] = {}
    for i, split in enumerate(splits):
        ev = load_split(dataset, split, layout)
        described.setdefault("source", ev.source)
        described.setdefault("revision", ev.revision)
        groups = ([ev.documents] if i == 0 else []) + [ev.queries]
        for records in groups:
            items = sorted((it for b in records.batches(256, images=True, check=False) for it in b),
                           key=lambda it: it.id)
            for it in items:
                c = it.content
                for pos, meta in enumerate(c.image_meta):
                    if meta is None:
                        continue
                    key = meta.sha256
                    if key and key not in found:
                        found[key] = (c.images[pos], _context(c.texts, pos))
    return found, described


def caption_dataset(dataset: str | Path, output: Path, backend_cfg, splits: Sequence[str] = ("test",),
                    layout: str = "ours", seed: int = 0, cache_path: Path | None = None,
                    log=print) -> dict[str, Any]:
    """Caption every image of the corpus and ``splits``' queries into ``output`` (see the module doc).

    Raises :class:`CaptionError` (after writing the file) when some images could not be captioned."""
    from wikihow_tiir.io import atomic_write_json
    from wikihow_tiir.llm.cache import RequestCache
    from wikihow_tiir.llm.client import LLMClient
    from wikihow_tiir.llm.errors import GenerationError
    from wikihow_tiir.llm.prompts import as_data, load_prompt
    from wikihow_tiir.llm.responses import image_data_url
    from wikihow_tiir.llm.usage import RunCounters, Usage
    from wikihow_tiir.redact import redact

    output = Path(output)
    previous = read_captions(output)[0] if output.exists() else {}
    found, described = images_to_caption(dataset, splits, layout)
    prompt = load_prompt("caption")
    cache = RequestCache(cache_path or output.with_name(output.name + ".cache.sqlite"))
    backend = LLMClient("caption", backend_cfg, cache, seed, RunCounters(), setting="caption")
    todo = sorted(k for k in found if k not in previous)

    def one(key: str) -> tuple[str, str | None, str | None]:
        data, step = found[key]
        if not data:
            return key, None, "missing-image-bytes: the dataset has no bytes for this image"
        messages = [{"role": "system", "content": prompt.render("system")},
                    {"role": "user", "content": [
                        {"type": "text", "text": prompt.render("user", step=as_data(step))},
                        {"type": "image_url", "image_url": {"url": image_data_url(data)}}]}]
        try:
            return key, " ".join(backend.chat_text(messages, prompt, Usage(), seed=seed).split())[:400], None
        except GenerationError as exc:  # the client turns anything the transport raises into one of these
            return key, None, f"{exc.reason}: {exc.detail}" if exc.detail else exc.reason

    try:
        with ThreadPoolExecutor(max_workers=max(1, min(backend_cfg.concurrency, len(todo) or 1))) as pool:
            results = list(pool.map(one, todo))
    finally:
        cache.close()
    captions = dict(previous)
    failed: dict[str, str] = {}
    for key, caption, error in results:
        if caption is not None:
            captions[key] = caption
        else:
            failed[key] = error or "unknown"
    provenance = {"model": backend_cfg.model, "base_url": redact(str(backend_cfg.base_url)), "prompt": prompt.ref,
                  "temperature": backend_cfg.temperature, "max_tokens": backend_cfg.max_tokens, "seed": seed,
                  "dataset": described, "splits": list(splits), "images": len(found)}
    atomic_write_json(output, {"provenance": provenance, "captions": dict(sorted(captions.items())),
                               "failed": dict(sorted(failed.items()))})
    summary = {"images": len(found), "captioned": len(captions), "asked": len(todo), "failed": len(failed),
               "http_requests": backend.counters.http_requests, "cache_hits": backend.counters.cache_hits}
    if failed:
        reasons: dict[str, int] = {}
        for v in failed.values():
            reasons[v.split(":")[0]] = reasons.get(v.split(":")[0], 0) + 1
        raise CaptionError(f"{len(failed)} of {len(found)} images were not captioned ("
                           + ", ".join(f"{r}: {n}" for r, n in sorted(reasons.items()))
                           + f"); {output} keeps the other captions and the reasons; run the command again "
                             f"to retry the missing ones")
    return summary
