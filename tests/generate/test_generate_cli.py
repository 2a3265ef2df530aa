"""`wikihow-tiir generate` on a built corpus folder, offline and against an OpenAI-compatible server."""

from __future__ import annotations

import json

import pytest
import typer
from generate_docs import doc
from servers.openai_server import OpenAIServer
from typer.testing import CliRunner

from wikihow_tiir.generate.cli import register
from wikihow_tiir.model import document_to_row, query_from_row
from wikihow_tiir.storage import read_rows, write_parquet


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command()
    def _unused() -> None:  # typer runs a lone command without its name; keep `generate` a subcommand
        pass

    return app


def _shards(out):
    """The query shard files `generate` wrote into its output folder (the build's work/queries/ layout)."""
    return sorted((out / "work" / "queries").glob("shard-*.parquet"))


def _dataset(tmp_path, documents):
    write_parquet(tmp_path / "ds" / "corpus" / "corpus-00000-of-00001.parquet",
                  [document_to_row(d) for d in documents], "corpus")
    return tmp_path / "ds"


def test_generate_command_offline(tmp_path, documents):
    ds = _dataset(tmp_path, documents)
    res = CliRunner().invoke(_app(), ["generate", str(ds), "--limit", "3", "--set", "generate.documents_per_shard=2"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["documents"] == 3 and summary["queries"] == 3
    out = ds / "work" / "generate-cli"
    queries = [query_from_row(r) for r in read_rows(_shards(out))]
    assert len(queries) == 3 and len(_shards(out)) == 2
    assert summary["shards"] == [str(p) for p in _shards(out)]
    assert all(2 <= q.content.n_images <= 4 for q in queries)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["stats"]["queries"] == 3 and "write" in stats["prompts"]
    assert (out / "work" / "generate" / "cache.sqlite").exists()


def test_generate_command_uses_an_openai_compatible_server(tmp_path, documents):
    ds = _dataset(tmp_path, documents)
    with OpenAIServer() as server:
        res = CliRunner().invoke(_app(), ["generate", str(ds), "--limit", "2", "--base-url", server.base_url,
                                          "--model", "scripted-1", "--image-model", "scripted-1"])
        assert res.exit_code == 0, res.output
        assert server.count("write") == 2 and server.count("visualize") == 2 and server.count("render") >= 4
    out = ds / "work" / "generate-cli"
    queries = [query_from_row(r) for r in read_rows(_shards(out))]
    assert len(queries) == 2
    assert all(m.source_url == "generated:scripted-1" for q in queries for m in q.content.image_meta if m)
    assert queries[0].provenance["stages"]["write"]["model"] == "scripted-1"


def test_generate_command_refuses_a_folder_without_a_corpus(tmp_path):
    res = CliRunner().invoke(_app(), ["generate", str(tmp_path)])
    assert res.exit_code == 2 and "corpus" in res.output


def test_a_model_without_an_endpoint_is_a_clean_usage_error(tmp_path, documents):
    ds = _dataset(tmp_path, documents)
    res = CliRunner().invoke(_app(), ["generate", str(ds), "--model", "Qwen2.5-72B-Instruct", "--limit", "1"])
    assert res.exit_code == 2, res.output
    assert "needs base_url and model" in res.output
    assert not _shards(ds / "work" / "generate-cli")


KEY = "tiir-test-key-7f3a9c2e1b5d4a60"  # not sk-shaped: found because it is the configured key


def test_a_key_echoed_by_the_server_reaches_no_file_and_no_output(tmp_path, monkeypatch):
    monkeypatch.setenv("TIIR_TEST_KEY", KEY)
    docs = [doc("fine"), doc("e401", "[[write:echo-key]]"), doc("e500", "[[write:echo-key-500]]"),
            doc("short", "[[write:echo-key-answer]]"), doc("kept", "[[write:echo-key-ok]]")]
    ds = _dataset(tmp_path, docs)
    with OpenAIServer() as server:
        res = CliRunner().invoke(_app(), [
            "generate", str(ds), "--base-url", server.base_url, "--model", "scripted-1",
            "--api-key-env", "TIIR_TEST_KEY", "--set", "generate.write.backoff_s=0.01",
            "--set", "generate.write.retries=1"])
        assert res.exit_code == 0, res.output
    out = ds / "work" / "generate-cli"
    rejects = {r["item_id"].split("-")[2]: r for r in map(json.loads, (out / "rejects.jsonl").read_text().splitlines())}
    # the server did echo it (the redaction marks where), but only the mark was kept
    assert rejects["e401"]["reason"] == "http-401" and "[REDACTED]" in rejects["e401"]["detail"]
    assert rejects["e500"]["reason"] == "server-error" and "[REDACTED]" in rejects["e500"]["detail"]
    assert rejects["short"]["reason"] == "text-too-short" and "[REDACTED]" in rejects["short"]["extra"]["answer"]
    queries = [query_from_row(r) for r in read_rows(_shards(out))]
    assert {q.article_id for q in queries} == {"fine", "kept"}
    assert "credentials were Bearer [REDACTED]" in next(q for q in queries if q.article_id == "kept").content.text
    assert KEY not in json.dumps([q.content.texts for q in queries])  # parquet pages may be compressed
    files = [f for f in ds.rglob("*") if f.is_file()]
    assert any(f.name == "cache.sqlite" for f in files) and any(f.parent.name == "write" for f in files)
    for f in files:
        assert KEY.encode() not in f.read_bytes(), f
    assert KEY not in res.output


def _files(out):
    """Every file `generate` wrote, with the identity of its bytes on disk (a rewrite changes it)."""
    return {p.relative_to(out).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(out.rglob("*")) if p.is_file()}


def test_a_re_run_resumes_finished_shards_without_rewriting_them(tmp_path, documents):
    """`generate` runs the build's query shards: a re-run keeps the finished ones (same files, untouched)
    and an extended run (--limit) only adds the new shard."""
    ds = _dataset(tmp_path, documents)
    args = ["generate", str(ds), "--limit", "2", "--set", "generate.documents_per_shard=2"]
    first = CliRunner().invoke(_app(), args)
    assert first.exit_code == 0, first.output
    out = ds / "work" / "generate-cli"
    shard0 = {k: v for k, v in _files(out).items() if k.startswith("work/queries/shard-00000.")}
    assert set(shard0) == {"work/queries/shard-00000.parquet", "work/queries/shard-00000.rejects.jsonl",
                           "work/queries/shard-00000.done"}
    again = CliRunner().invoke(_app(), args)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == json.loads(first.stdout)
    assert {k: v for k, v in _files(out).items() if k in shard0} == shard0  # not rewritten: resumed
    more = CliRunner().invoke(_app(), [*args[:2], "--limit", "3", *args[4:]])
    assert more.exit_code == 0, more.output
    assert json.loads(more.stdout)["documents"] == 3 and len(_shards(out)) == 2
    assert {k: v for k, v in _files(out).items() if k in shard0} == shard0


def test_shards_of_an_earlier_plan_are_removed_so_no_query_is_listed_twice(tmp_path, documents):
    ds = _dataset(tmp_path, documents)
    out = ds / "work" / "generate-cli"
    small = CliRunner().invoke(_app(), ["generate", str(ds), "--limit", "3", "--set", "generate.documents_per_shard=1"])
    assert small.exit_code == 0, small.output
    assert len(_shards(out)) == 3
    big = CliRunner().invoke(_app(), ["generate", str(ds), "--limit", "3", "--set", "generate.documents_per_shard=3"])
    assert big.exit_code == 0, big.output
    ids = [r["id"] for r in read_rows(_shards(out), ["id"])]
    assert len(_shards(out)) == 1 and len(ids) == len(set(ids)) == 3
    assert len((out / "rejects.jsonl").read_text().splitlines()) == json.loads(big.stdout)["rejected"]


def test_a_damaged_shard_file_is_generated_again(tmp_path, documents):
    ds = _dataset(tmp_path, documents)
    out = ds / "work" / "generate-cli"
    args = ["generate", str(ds), "--limit", "2"]
    assert CliRunner().invoke(_app(), args).exit_code == 0
    shard = _shards(out)[0]
    whole = shard.read_bytes()
    shard.write_bytes(whole[: len(whole) // 2])  # cut: its marker no longer vouches for it
    res = CliRunner().invoke(_app(), args)
    assert res.exit_code == 0, res.output
    assert shard.read_bytes() == whole and json.loads(res.stdout)["queries"] == 2


@pytest.mark.parametrize("manifest", [False, True])
def test_a_changed_corpus_is_generated_again(tmp_path, documents, manifest):
    """The shards' fingerprint holds the corpus's identity (the image pool is the whole corpus): the files'
    sha256, taken from the manifest when it lists them with their size."""
    from wikihow_tiir.storage import file_entries

    ds = _dataset(tmp_path, documents)
    if manifest:
        (ds / "manifest.json").write_text(json.dumps({"files": file_entries(ds)}))
    args = ["generate", str(ds), "--limit", "1"]
    assert CliRunner().invoke(_app(), args).exit_code == 0
    marker = ds / "work" / "generate-cli" / "work" / "queries" / "shard-00000.done"
    before = marker.read_text()
    assert CliRunner().invoke(_app(), args).exit_code == 0 and marker.read_text() == before  # same corpus: kept
    _dataset(tmp_path, documents[:-1])  # one document fewer: another image pool
    if manifest:
        (ds / "manifest.json").write_text(json.dumps({"files": file_entries(ds)}))
    assert CliRunner().invoke(_app(), args).exit_code == 0
    assert json.loads(marker.read_text())["fingerprint"] != json.loads(before)["fingerprint"]
