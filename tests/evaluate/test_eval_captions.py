"""``wikihow-tiir caption`` against the scripted OpenAI-compatible server on 127.0.0.1, and the captions
it writes feeding ``--adapt captions`` with their provenance."""

from __future__ import annotations

import json

import pytest
from eval_synth import make_items, torch_one_thread, write_dataset  # noqa: F401 (autouse)
from servers.openai_server import OpenAIServer
from typer.testing import CliRunner

from wikihow_tiir.cli import app
from wikihow_tiir.evaluate.captions import read_captions
from wikihow_tiir.retrieval.dataset import DatasetError

N_IMAGES = 12 * 2 + 6 * 2  # distinct pictures of the synthetic corpus and its test queries


@pytest.fixture
def server():
    with OpenAIServer(hang_s=1.0) as s:
        yield s


def _caption(root, out, server, *extra):
    return CliRunner().invoke(app, ["caption", "-d", str(root), "-o", str(out), "--base-url", server.base_url,
                                    "--model", "scripted-1", "--timeout", "5", *extra])


def test_every_distinct_image_is_captioned_once_and_reruns_cost_nothing(server, tmp_path):
    root = write_dataset(tmp_path / "d", *make_items())
    out = tmp_path / "captions.json"
    res = _caption(root, out, server)
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert len(data["captions"]) == N_IMAGES and data["failed"] == {}
    assert server.count("caption") == N_IMAGES
    # the step text before the picture is the prompt's context
    assert data["captions"]["sha-0-0"].startswith("A reddish 48x36 photo of someone at work: How to Grill Zucchini")
    prov = data["provenance"]
    assert prov["model"] == "scripted-1" and prov["prompt"]["name"] == "caption" and len(prov["prompt"]["sha256"]) == 64
    assert prov["splits"] == ["test"] and prov["images"] == N_IMAGES
    again = _caption(root, out, server)
    assert again.exit_code == 0 and server.count("caption") == N_IMAGES  # the file already holds them
    out.unlink()
    third = _caption(root, out, server)
    assert third.exit_code == 0 and server.count("caption") == N_IMAGES  # the request cache answers
    assert json.loads(out.read_text())["captions"] == data["captions"]


def test_failed_captions_are_kept_with_reasons_and_retried_next_time(server, tmp_path):
    docs, queries, qrels = make_items()
    docs[0].content.texts[0] += " [[caption:refusal]]"
    docs[2].content.texts[0] += " [[caption:500x2]]"
    root = write_dataset(tmp_path / "d", docs, queries, qrels)
    out = tmp_path / "captions.json"
    res = _caption(root, out, server, "--retries", "1", "--backoff", "0.01")
    assert res.exit_code == 2
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert lines == [f"error: 2 of {N_IMAGES} images were not captioned (refusal: 1, server-error: 1); {out} keeps "
                     f"the other captions and the reasons; run the command again to retry the missing ones"]
    data = json.loads(out.read_text())
    assert len(data["captions"]) == N_IMAGES - 2 and list(data["failed"]) == ["sha-0-0", "sha-10-0"]
    assert data["failed"]["sha-0-0"].startswith("refusal") and data["failed"]["sha-10-0"].startswith("server-error")
    before = server.count("caption")
    res = _caption(root, out, server, "--retries", "1", "--backoff", "0.01")
    # the server error is asked again (and answered now); the refusal comes back from the request cache
    assert server.count("caption") == before + 1
    assert res.exit_code == 2 and "error: 1 of 36 images were not captioned (refusal: 1)" in res.output
    data = json.loads(out.read_text())
    assert list(data["failed"]) == ["sha-0-0"] and "sha-10-0" in data["captions"]


def test_captions_feed_the_caption_adaptation_with_provenance(server, tmp_path):
    from wikihow_tiir.encoders.minilm import model_path

    root = write_dataset(tmp_path / "d", *make_items())
    out = tmp_path / "captions.json"
    assert _caption(root, out, server).exit_code == 0
    spec = f"st:{model_path()}"
    res = CliRunner().invoke(app, ["evaluate", "-d", str(root), "-m", spec, "--adapt", "captions", "--captions",
                                   str(out), "-o", str(tmp_path / "eval")])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    run = summary["models"][f"{spec}+captions"]
    assert run["adaptation"] == "captions" and run["captions"]["model"] == "scripted-1"
    assert summary["captions"]["prompt"]["name"] == "caption"
    result = json.loads(next((tmp_path / "eval" / "results").glob("*.json")).read_text())
    assert result["wikihow_tiir"]["captions"]["model"] == "scripted-1"


def test_captions_file_formats(tmp_path):
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps({"abc": "a red photo"}))
    assert read_captions(flat) == ({"abc": "a red photo"}, None)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"abc": 3}))
    with pytest.raises(DatasetError, match="expected {image sha256: caption}"):
        read_captions(bad)
    bad.write_text("{not json")
    with pytest.raises(DatasetError, match="not a captions file"):
        read_captions(bad)
