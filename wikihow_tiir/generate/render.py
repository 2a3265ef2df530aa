"""Stage 4, render: a picture for each image prompt (offline: a real picture from another article
of the corpus pool; openai: drawn by an images API, stored under ``render/blobs/``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from wikihow_tiir.config import ImageConfig
from wikihow_tiir.generate import offline
from wikihow_tiir.generate.pool import ImagePool
from wikihow_tiir.generate.records import (
    DrawnImage,
    PooledImage,
    Record,
    RenderedImage,
    Unit,
    Visual,
    combined,
)
from wikihow_tiir.generate.runtime import Runtime, guard, map_items, workers
from wikihow_tiir.images import ImageError, normalize_image, phash_distance
from wikihow_tiir.io import atomic_write_bytes
from wikihow_tiir.llm.errors import GenerationError, Invalid
from wikihow_tiir.llm.prompts import load_prompt
from wikihow_tiir.llm.usage import Usage

Rendered = tuple[RenderedImage, ...]


def blobs_dir(work_dir: Path) -> Path:
    """Where drawn pictures live (content-addressed, shared by the shards of a work folder)."""
    return Path(work_dir) / "render" / "blobs"


def render_stage(units: Sequence[Unit], visual: dict[str, Visual], pool: ImagePool,
                 rt: Runtime) -> list[Record[Rendered]]:
    """One record per unit: one rendered image per image prompt, in order."""
    cfg = rt.cfg
    prompts = [visual[u.id].image_prompts for u in units]
    if cfg.render.kind == "offline":
        picked = offline.render(prompts, [u.doc for u in units], pool, cfg)
        return [Record.failure(u.id, r.reason, r.detail) if isinstance(r, GenerationError) else
                Record.success(u.id, tuple(PooledImage(key) for key in r), Usage(images=len(r)))
                for u, r in zip(units, picked, strict=True)]

    template = load_prompt("render")
    client = rt.client("render")
    blobs = blobs_dir(rt.work_dir)
    image_cfg = ImageConfig()
    positives = {u.id: [m.phash for m in u.doc.content.image_meta if m is not None and m.phash] for u in units}

    def draw(task: tuple[Unit, int, str]) -> Record[DrawnImage]:
        """One image (images are the unit of concurrency, so a query's pictures render in parallel)."""
        u, i, text = task
        usage = Usage()

        def work() -> DrawnImage:
            problem: Invalid | None = None
            for attempt in range(2):  # one re-ask when the server's image is unusable
                try:
                    raw = client.render(template.render("user", image_prompt=text), template, usage,
                                        attempt_tag=attempt)
                    try:
                        img = normalize_image(raw, image_cfg)
                    except ImageError as exc:
                        raise Invalid("invalid-image", f"{exc.reason}: {exc.detail}") from None
                    if any(phash_distance(img.phash, p) <= cfg.near_copy_phash_distance for p in positives[u.id]):
                        raise Invalid("near-copy-of-positive", "the image is a near-copy of a document image")
                    atomic_write_bytes(blobs / f"{img.sha256}.jpg", img.data)
                    usage.images += 1
                    return DrawnImage(img.sha256, img.width, img.height, img.phash)
                except Invalid as exc:
                    problem = exc
            assert problem is not None
            raise GenerationError(problem.reason, problem.detail)

        return guard(f"{u.id}#{i}", usage, work)

    tasks = [(u, i, text) for u, unit_prompts in zip(units, prompts, strict=True) for i, text in enumerate(unit_prompts)]
    drawn = map_items(draw, tasks, workers(cfg.render))
    by_unit: dict[str, list[Record[DrawnImage]]] = {}
    for (u, _, _), rec in zip(tasks, drawn, strict=True):
        by_unit.setdefault(u.id, []).append(rec)
    return [combined(u.id, by_unit.get(u.id, []), tuple) for u in units]
