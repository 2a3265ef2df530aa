"""The maintainers' flows against a real Prefect server on 127.0.0.1 started by these tests (its home in a
temp folder, analytics off): the build's named stage tasks and artifacts read back through the Prefect
client, and ``prefect.yaml``'s deployments registered and the release deployment run by a process worker,
publishing to the loopback Hub (``tests/servers/hub_server.py``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ -> `servers.hub_server`
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "build"))  # -> `build_helpers`

from build_helpers import CHOKING, GOLD, TOILET, small_archive  # noqa: E402
from flows_helpers import BIN, ROOT, artifacts, base_env, prefect_client, task_runs  # noqa: E402
from servers.hub_server import HubServer  # noqa: E402

from wikihow_tiir import layout  # noqa: E402

TOKEN = "hf_flowtesttoken12345"
REPO = "org/wikihow-tiir"


@pytest.fixture(scope="module")
def tiny_archive(tmp_path_factory, sample_archive) -> Path:
    return small_archive(sample_archive, tmp_path_factory.mktemp("tiny") / "archive", [TOILET, CHOKING, GOLD])


def test_every_stage_is_a_named_task_and_the_build_publishes_its_artifacts(prefect_server, tmp_path, tiny_archive):
    out = tmp_path / "build"
    env = base_env(prefect_server["home"], prefect_server["url"])
    r = subprocess.run([str(BIN / "wikihow-tiir"), "build", "--output", str(out), "--archive", str(tiny_archive),
                        "--pages-per-shard", "2"], env=env, cwd=tmp_path, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    with prefect_client(prefect_server["url"]) as client:
        runs = [fr for fr in client.read_flow_runs() if fr.name == f"build-{out}"]
        assert len(runs) == 1 and runs[0].state.is_completed(), runs
        names = sorted(t.name for t in task_runs(client, [runs[0].id]))
        # each shard's task run is named after its shard; each stage between them after the stage
        assert names.count("corpus-shard-00000") == 1 and "corpus-shard-00001" in names, names
        assert "queries-shard-00000" in names, names
        for stage in ("acquire", "plan-corpus", "merge-corpus", "corpus-statistics", "plan-queries", "filter",
                      "split", "rejects", "manifest", "card", "audit", "validate", "report"):
            assert stage in names, (stage, names)
        arts = artifacts(client, [runs[0].id])
    assert {"statistics", "rejects", "report"} <= set(arts), sorted(arts)
    stats = arts["statistics"].data
    assert '"corpus"' in stats and '"examples"' in stats
    manifest = json.loads(layout.manifest_path(out).read_text())
    assert f'"examples": {manifest["statistics"]["corpus"]["examples"]}' in stats
    assert arts["report"].data == f"[build report]({layout.report_index(out).resolve().as_uri()})"
    for stage, reasons in manifest["rejects"].items():
        for reason, n in reasons.items():
            assert f'"stage": "{stage}", "reason": "{reason}", "count": {n}' in arts["rejects"].data


@pytest.mark.slow
def test_the_release_deployment_registers_and_publishes_to_the_loopback_hub(prefect_server, tmp_path):
    env = base_env(prefect_server["home"], prefect_server["url"])

    def prefect(*args: str, extra: dict[str, str] | None = None, timeout: float = 300):
        r = subprocess.run([str(BIN / "prefect"), *args], env={**env, **(extra or {})}, cwd=ROOT,
                           capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, (args, r.stdout[-3000:], r.stderr[-3000:])
        return r

    prefect("work-pool", "create", "wikihow-tiir", "--type", "process")
    prefect("--no-prompt", "deploy", "--all")
    with prefect_client(prefect_server["url"]) as client:
        deployments = {f"{client.read_flow(d.flow_id).name}/{d.name}": d for d in client.read_deployments()}
        assert {"crawl/weekly-live-crawl", "build/sample-build", "release/monthly-live-release"} <= set(deployments)
        release = deployments["release/monthly-live-release"]
        assert [s.schedule.cron for s in release.schedules] == ["0 3 1 * *"]
        # the monthly live release, run now on the bundled sample (no crawl: the sample is an archive)
        run = client.create_flow_run_from_deployment(release.id, parameters={
            "profile": "sample", "output": str(tmp_path / "release"), "repo_id": REPO, "overrides": [],
            "approve": True, "audit_wait_s": 0})
    with HubServer(token=TOKEN) as hub:
        hub_env = {"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0", "HF_TOKEN": TOKEN,
                   "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(tmp_path / "hf-home"),
                   "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
        worker = prefect("worker", "start", "--pool", "wikihow-tiir", "--run-once", extra=hub_env, timeout=900)
        with prefect_client(prefect_server["url"]) as client:
            done = client.read_flow_run(run.id)
            assert done.state.is_completed(), (done.state, worker.stdout[-3000:], worker.stderr[-3000:])
            children = [fr.id for fr in client.read_flow_runs() if fr.parent_task_run_id is not None]
            names = {t.name for t in task_runs(client, [run.id])}
            assert {"find-previous-version", f"validate-{tmp_path / 'release'}", "audit-gate", "choose-version",
                    f"publish-{REPO}-1.0.0"} <= names, names
            arts = artifacts(client, [run.id, *children])
        assert "release" in arts and "v1.0.0" in arts["release"].data
        assert "statistics" in arts  # the build's own artifacts, from its subflow
        repo = hub.repo(REPO)
        assert set(repo.tags) == {"v1.0.0"}
        files = set(repo.commits[repo.tags["v1.0.0"]].files)
        assert {"README.md", "manifest.json"} <= files and any(f.startswith("corpus/") for f in files)
