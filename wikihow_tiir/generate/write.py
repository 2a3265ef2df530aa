"""Stage 2, write: the query's narrative text, a user's situation that never names the goal."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from wikihow_tiir.generate import offline
from wikihow_tiir.generate.checks import check_written
from wikihow_tiir.generate.pool import step_texts
from wikihow_tiir.generate.records import Record, Unit
from wikihow_tiir.generate.runtime import Runtime, guard, map_items, workers
from wikihow_tiir.llm.prompts import as_data, load_prompt
from wikihow_tiir.llm.usage import Usage
from wikihow_tiir.model import Document


# what the model must answer; its JSON schema travels with the request (so no docstring: it would
# become the schema's description)
class WriteAnswer(BaseModel):
    query: str = Field(min_length=1)


def steps_block(doc: Document, captions: Sequence[str]) -> str:
    """The document's numbered steps with what each picture shows, as data for the prompt."""
    lines = []
    for n, ((_, text), cap) in enumerate(zip(step_texts(doc), captions, strict=True), 1):
        line = f"{n}. {text.strip()}"
        if cap.strip() and cap.strip() != text.strip():
            line += f" [picture: {cap.strip()}]"
        lines.append(line)
    return as_data("\n".join(lines))


def write_stage(units: Sequence[Unit], captions: dict[str, list[str]], rt: Runtime) -> list[Record[str]]:
    """One record per unit: the narrative query text (before visualization)."""
    cfg = rt.cfg
    if cfg.write.kind == "offline":
        return [Record.success(u.id, offline.write(u.doc, rt.contexts.get(u.doc.id), rt.rng("write", u.id), cfg))
                for u in units]
    prompt, repair = load_prompt("write"), load_prompt("repair")
    client = rt.client("write")

    def one(u: Unit) -> Record[str]:
        usage = Usage()

        def work() -> str:
            messages = [{"role": "system", "content": prompt.render("system")},
                        {"role": "user", "content": prompt.render(
                            "user", goal=as_data(u.doc.goal), section=as_data(u.doc.section_title),
                            steps=steps_block(u.doc, captions[u.doc.id]))}]
            answer = client.chat_json(messages, WriteAnswer, prompt, repair, usage,
                                      check=lambda a: check_written(u.doc, a.query, cfg), seed=rt.call_seed(u))
            return " ".join(answer.query.split())

        return guard(u.id, usage, work)

    return map_items(one, units, workers(cfg.write))
