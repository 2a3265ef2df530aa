"""Stage 1, caption: what each picture of a document shows (offline: the step's own text)."""

from __future__ import annotations

from collections.abc import Sequence

from wikihow_tiir.generate import offline
from wikihow_tiir.generate.pool import step_texts
from wikihow_tiir.generate.records import Record, combined
from wikihow_tiir.generate.runtime import Runtime, guard, map_items, workers
from wikihow_tiir.llm.errors import GenerationError
from wikihow_tiir.llm.prompts import as_data, load_prompt
from wikihow_tiir.llm.responses import image_data_url
from wikihow_tiir.llm.usage import Usage
from wikihow_tiir.model import Document

CAPTION_CHARS = 400


def caption_stage(docs: Sequence[Document], rt: Runtime) -> list[Record[list[str]]]:
    """One record per document: its captions, one per document image, in order."""
    cfg = rt.cfg
    out: dict[str, Record[list[str]]] = {}
    todo = []
    for doc in docs:
        n = doc.content.n_images
        if n < cfg.min_query_images:
            out[doc.id] = Record.failure(doc.id, "too-few-images", f"the document has {n} images, a query "
                                         f"needs {cfg.min_query_images}")
        elif cfg.caption.kind == "offline":
            out[doc.id] = Record.success(doc.id, offline.caption(doc), Usage(images=n))
        else:
            todo.append(doc)
    if todo:
        prompt = load_prompt("caption")
        client = rt.client("caption")
        tasks = [(doc, pos, text) for doc in todo for pos, text in step_texts(doc)]

        def one(task: tuple[Document, int, str]) -> Record[str]:
            doc, pos, text = task
            usage = Usage()
            data = doc.content.images[pos]

            def work() -> str:
                if not data:
                    raise GenerationError("missing-image-bytes", f"position {pos} has no image bytes")
                messages = [{"role": "system", "content": prompt.render("system")},
                            {"role": "user", "content": [
                                {"type": "text", "text": prompt.render("user", step=as_data(text))},
                                {"type": "image_url", "image_url": {"url": image_data_url(data)}}]}]
                caption = client.chat_text(messages, prompt, usage, seed=rt.seed)
                usage.images += 1
                return " ".join(caption.split())[:CAPTION_CHARS]

            return guard(f"{doc.id}#{pos}", usage, work)

        results = map_items(one, tasks, workers(cfg.caption))
        by_doc: dict[str, list[Record[str]]] = {}
        for (doc, _, _), rec in zip(tasks, results, strict=True):
            by_doc.setdefault(doc.id, []).append(rec)
        for doc in todo:
            out[doc.id] = combined(doc.id, by_doc.get(doc.id, []), list)
    return [out[doc.id] for doc in docs]
