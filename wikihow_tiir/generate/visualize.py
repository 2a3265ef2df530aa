"""Stage 3, visualize: which parts of the narrative become pictures (segments of text + image prompt)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from wikihow_tiir.config import GenerateConfig
from wikihow_tiir.generate import offline
from wikihow_tiir.generate.checks import check_visual
from wikihow_tiir.generate.records import Record, Segment, Unit, Visual
from wikihow_tiir.generate.runtime import Runtime, guard, map_items, workers
from wikihow_tiir.generate.text import bm25_salience, split_sentences
from wikihow_tiir.llm.prompts import as_data, load_prompt
from wikihow_tiir.llm.usage import Usage


class SegmentAnswer(BaseModel):
    model_config = ConfigDict(title="Segment")  # the schema sent to servers (and cache keys) keep this name

    text: str
    image_prompt: str = Field(min_length=1, max_length=1000)


# what the model must answer; its JSON schema (with the picture count) travels with the request, so
# these classes carry no docstring (it would become the schema's description)
class VisualizeAnswer(BaseModel):
    segments: list[SegmentAnswer]
    closing: str = ""

    def visual(self) -> Visual:
        """The answer with its whitespace normalized."""
        return Visual(tuple(Segment(" ".join(s.text.split()), " ".join(s.image_prompt.split()))
                            for s in self.segments), " ".join(self.closing.split()))


def answer_schema(cfg: GenerateConfig) -> dict[str, Any]:
    schema = VisualizeAnswer.model_json_schema()
    schema["properties"]["segments"].update(minItems=cfg.min_query_images, maxItems=cfg.max_query_images)
    return schema


def visualize_stage(units: Sequence[Unit], captions: dict[str, list[str]], written: dict[str, str],
                    rt: Runtime) -> list[Record[Visual]]:
    """One record per unit: the query's :class:`Visual` layout, checked by :func:`check_visual`."""
    cfg = rt.cfg
    if cfg.visualize.kind == "offline":
        def local(u: Unit) -> Record[Visual]:
            def work() -> Visual:
                visual = offline.visualize(u.doc, written[u.id], captions[u.doc.id], rt.rng("visualize", u.id), cfg,
                                           rt.contexts.get(u.doc.id))
                check_visual(u.doc, visual, cfg)
                return visual
            return guard(u.id, Usage(), work)
        return [local(u) for u in units]

    prompt, repair = load_prompt("visualize"), load_prompt("repair")
    client = rt.client("visualize")
    schema = answer_schema(cfg)

    def one(u: Unit) -> Record[Visual]:
        usage = Usage()
        text = written[u.id]
        sentences = split_sentences(text)
        salience = bm25_salience(sentences, " ".join([u.doc.goal, *captions[u.doc.id]]))
        top = sorted(sorted(range(len(sentences)), key=lambda i: (-salience[i], i))[:cfg.salient_sentences])

        def work() -> Visual:
            limits = {"min_images": cfg.min_query_images, "max_images": cfg.max_query_images}
            messages = [{"role": "system", "content": prompt.render("system", **limits)},
                        {"role": "user", "content": prompt.render(
                            "user", query=as_data(text),
                            sentences=as_data("\n".join(f"- {sentences[i]}" for i in top)))}]
            answer = client.chat_json(messages, VisualizeAnswer, prompt, repair, usage, schema=schema,
                                      seed=rt.call_seed(u), check=lambda a: check_visual(u.doc, a.visual(), cfg))
            return answer.visual()

        return guard(u.id, usage, work)

    return map_items(one, units, workers(cfg.visualize))
