"""`wikihow-tiir generate` on a built corpus folder, offline and against an OpenAI-compatible server."""

from __future__ import annotations

import json

import typer
from generate_docs import doc
from servers.openai_server import OpenAIServer
from typer.testing import CliRunner

from wikihow_tiir.generate.cli import register
from wikihow_tiir.model import document_to_row, query_from_row
from wikihow_tiir.publish.parquet import read_rows, write_parquet


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command()
    def _unused() -> None:  # typer runs a lone command without its name; keep `generate` a subcommand
        pass

    return app


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
    queries = [query_from_row(r) for r in read_rows(sorted(out.glob("queries-shard-*.parquet")))]
    assert len(queries) == 3 and len(list(out.glob("queries-shard-*.parquet"))) == 2
    assert all(2 <= q.content.n_images <= 4 for q in queries)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["stats"]["queries"] == 3 and "write" in stats["prompts"]
    assert (out / "work" / "cache.sqlite").exists()


def test_generate_command_uses_an_openai_compatible_server(tmp_path, documents):
    ds = _dataset(tmp_path, documents)
    with OpenAIServer() as server:
        res = CliRunner().invoke(_app(), ["generate", str(ds), "--limit", "2", "--base-url", server.base_url,
                                          "--model", "scripted-1", "--image-model", "scripted-1"])
        assert res.exit_code == 0, res.output
        assert server.count("write") == 2 and server.count("visualize") == 2 and server.count("render") >= 4
    out = ds / "work" / "generate-cli"
    queries = [query_from_row(r) for r in read_rows(sorted(out.glob("queries-shard-*.parquet")))]
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
    assert not list((ds / "work" / "generate-cli").glob("queries-*.parquet"))


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
    queries = [query_from_row(r) for r in read_rows(sorted(out.glob("queries-shard-*.parquet")))]
    assert {q.article_id for q in queries} == {"fine", "kept"}
    assert "credentials were Bearer [REDACTED]" in next(q for q in queries if q.article_id == "kept").content.text
    assert KEY not in json.dumps([q.content.texts for q in queries])  # parquet pages may be compressed
    files = [f for f in ds.rglob("*") if f.is_file()]
    assert any(f.name == "cache.sqlite" for f in files) and any(f.parent.name == "write" for f in files)
    for f in files:
        assert KEY.encode() not in f.read_bytes(), f
    assert KEY not in res.output
