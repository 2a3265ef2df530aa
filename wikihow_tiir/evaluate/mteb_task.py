"""wikiHow-TIIR as an MTEB task (mteb 2.x, the ``mteb`` extra)::

    import mteb
    from wikihow_tiir.evaluate.mteb_task import WikiHowTIIRRetrieval

    task = WikiHowTIIRRetrieval(path="data/builds/sample")          # a build folder, or
    task = WikiHowTIIRRetrieval(path="ORG/NAME", revision="v1.0.0")  # a published version
    results = mteb.evaluate(model, tasks=[task])

MTEB's retrieval loader reads the ``corpus`` / ``queries`` / ``qrels`` configs of the folder as they
are; the rows' ``text`` column (the text positions joined in reading order) is what text models
read. For image+text models the task gives each row one ``image``: its pictures pasted side by
side (the paper's "Text w/ Merged Image" input, ``adapters.merge_images``); ``images="none"`` skips
that work for text models. Only ``id``, ``text`` (and ``image``) are kept, since MTEB's batching
cannot stack our variable-length lists. A schema 1.0 build without ``text`` gets it derived here.
``languages`` come from the data's ``lang`` columns, not assumed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

try:
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.task_metadata import TaskMetadata
except ImportError as exc:  # pragma: no cover - the extra is not installed
    raise ImportError("the MTEB task needs mteb 2.x: pip install 'wikihow-tiir[mteb]'") from exc

from wikihow_tiir.retrieval.dataset import mteb_language

CITATION = r"""@inproceedings{zhang-etal-2025-towards,
    title = "Towards Text-Image Interleaved Retrieval",
    author = "Zhang, Xin and Dai, Ziqi and Li, Yongqi and Zhang, Yanzhao and Long, Dingkun and Xie, Pengjun and
      Zhang, Meishan and Yu, Jun and Li, Wenjie and Zhang, Min",
    booktitle = "Proceedings of the 63rd Annual Meeting of the Association for Computational Linguistics
      (Volume 1: Long Papers)",
    year = "2025",
    publisher = "Association for Computational Linguistics",
    url = "https://aclanthology.org/2025.acl-long.214/",
    pages = "4254--4269",
}"""

_METADATA = dict(
    name="WikiHowTIIRRetrieval",
    description=("Text-image interleaved retrieval: queries and documents are both interleaved text-image "
                 "sequences from wikiHow how-to guides; each query has one relevant document."),
    reference="https://arxiv.org/abs/2502.12799",
    type="Any2AnyRetrieval",
    category="it2it",
    modalities=["text", "image"],
    eval_splits=["test"],
    main_score="ndcg_at_10",
    date=("2025-02-18", "2025-07-28"),
    domains=["Web", "Written"],
    task_subtypes=[],
    license="cc-by-nc-sa-3.0",
    annotations_creators="LM-generated and reviewed",
    dialect=[],
    sample_creation="created",
    bibtex_citation=CITATION,
)


def _local_languages(root: Path) -> list[str]:
    from wikihow_tiir import layout
    from wikihow_tiir.storage import column_values

    langs: set[str] = set()
    for config in ("corpus", "queries"):
        langs.update(column_values(layout.config_files(root, config), "lang"))
    return sorted({mteb_language(x) for x in langs if x}) or ["eng-Latn"]


class WikiHowTIIRRetrieval(AbsTaskRetrieval):
    """The benchmark as an MTEB retrieval task (it2it, main score nDCG@10); see the module doc."""

    metadata = TaskMetadata(dataset={"path": "ORG/wikiHow-TIIR", "revision": "main"}, eval_langs=["eng-Latn"],
                            **_METADATA)

    def __init__(self, path: str | Path | None = None, revision: str | None = None, images: str = "merged",
                 eval_splits: list[str] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if path is None:
            raise ValueError("WikiHowTIIRRetrieval needs path=: a build folder or a Hub id ORG/NAME (with revision=)")
        if images not in ("merged", "none"):
            raise ValueError(f"images must be 'merged' or 'none', not {images!r}")
        self.images = images
        local = Path(path).is_dir()
        update: dict[str, Any] = {"dataset": {"path": str(path), "revision": revision or ("local" if local else "main")}}
        if local:
            update["eval_langs"] = _local_languages(Path(path))
        if eval_splits:
            update["eval_splits"] = list(eval_splits)
        self.metadata = self.metadata.model_copy(update=update)

    def dataset_transform(self, num_proc: int | None = None, **kwargs: Any) -> None:
        from wikihow_tiir.evaluate.adapters import merge_images
        from wikihow_tiir.model import interleaved_text

        langs: set[str] = set()
        for subset in self.dataset.values():
            for split in subset.values():
                for part in ("corpus", "queries"):
                    ds = split[part]
                    if "lang" in ds.column_names:
                        langs.update(ds["lang"])
                    if "text" not in ds.column_names:  # a schema 1.0 build
                        ds = ds.map(lambda r: {"text": interleaved_text(r["texts"])}, num_proc=num_proc)
                    keep = ["id", "text"]
                    if self.images == "merged":
                        ds = ds.map(lambda r: {"image": merge_images([im.convert("RGB") for im in r["images"]
                                                                      if im is not None])},
                                    num_proc=num_proc)
                        keep.append("image")
                    split[part] = ds.select_columns(keep)
        if langs:
            self.metadata = self.metadata.model_copy(
                update={"eval_langs": sorted({mteb_language(x) for x in langs if x})})
