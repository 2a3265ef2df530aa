"""Loading a split for scoring: bad datasets are refused with the ids named."""

from __future__ import annotations

import copy

import pytest
from eval_synth import make_items, write_dataset

from wikihow_tiir.model import Qrel
from wikihow_tiir.retrieval.dataset import DatasetError, load_split


def build(tmp_path, mutate):
    documents, queries, qrels = make_items()
    mutate(documents, queries, qrels)
    return write_dataset(tmp_path / "d", documents, queries, qrels)


def test_loads_a_good_split(tmp_path):
    ev = load_split(build(tmp_path, lambda d, q, r: None), "test")
    assert len(ev.documents) == 12 and len(ev.queries) == 6
    assert ev.qrels["q-2"] == {"wh-2-s1": 1}
    docs = ev.documents.load(images=False)
    assert docs[0].content.images == [None] * len(docs[0].content.texts)
    with_images = next(ev.documents.batches(4))
    assert len(with_images) == 4 and with_images[0].content.n_images == 2
    assert all(b is not None for b, m in zip(with_images[0].content.images, with_images[0].content.image_meta,
                                             strict=True) if m)


def _dup_doc(d, q, r):
    d.append(copy.deepcopy(d[3]))


def _dup_query(d, q, r):
    q.append(copy.deepcopy(q[1]))


def _dangling(d, q, r):
    r.append(Qrel("q-1", "wh-404-s1", 1))


def _unknown_query(d, q, r):
    r.append(Qrel("q-ghost", "wh-1-s1", 1))


def _no_qrels(d, q, r):
    r[:] = [x for x in r if x.query_id != "q-5"]


def _no_positive(d, q, r):
    r[2] = Qrel("q-2", "wh-2-s1", 0)


def _dup_qrel(d, q, r):
    r.append(Qrel("q-0", "wh-0-s1", 2))


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (_dup_doc, "duplicate document ids in"),
        (_dup_query, "duplicate query ids in split 'test'"),
        (_dangling, "point at documents missing from the corpus (query-id, corpus-id): [('q-1', 'wh-404-s1')]"),
        (_unknown_query, "name queries that are not in its queries: ['q-ghost']"),
        (_no_qrels, "queries of split 'test' without qrels: ['q-5']"),
        (_no_positive, "without a relevant document (score > 0): ['q-2']"),
        (_dup_qrel, "duplicate qrels (query-id, corpus-id): [('q-0', 'wh-0-s1')]"),
    ],
)
def test_bad_datasets_name_the_ids(tmp_path, mutate, needle):
    root = build(tmp_path, mutate)
    with pytest.raises(DatasetError) as err:
        load_split(root, "test")
    assert needle in str(err.value)
    if mutate is _dup_doc:
        assert "wh-1-s2" in str(err.value)


def test_empty_split_and_missing_corpus(tmp_path):
    root = build(tmp_path, lambda d, q, r: None)
    with pytest.raises(DatasetError, match=r"split 'train' has no queries .*splits found: \['test'\]"):
        load_split(root, "train")
    with pytest.raises(DatasetError, match="no corpus"):
        load_split(tmp_path, "test")


def test_hub_id_offline_is_a_clear_error():
    with pytest.raises(DatasetError, match="not in the local Hugging Face cache and the Hub cannot be reached"):
        load_split("some-org/wikiHow-TIIR@v1.0", "test")
    with pytest.raises(DatasetError, match="not a Hub id"):
        load_split("no/such/folder/here", "test")


def test_unknown_layout(tmp_path):
    root = build(tmp_path, lambda d, q, r: None)
    with pytest.raises(DatasetError, match="unknown layout 'beir'"):
        load_split(root, "test", layout="beir")
