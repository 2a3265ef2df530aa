"""The maintainers' flows a Prefect deployment runs (``prefect.yaml``): ``build`` and ``release``.

``release``: crawl (live profile; incremental) -> build (against the previous version: articles keep
their split, the manifest and card say what changed) -> validate -> the human-audit gate -> choose
the version -> publish. Each step is a task; a step that can be repeated safely is retried
(crawl, validate, reading the Hub's versions), publishing is not (it creates a tag). The gate
passes with ``approve=True`` or when the build folder holds the decisions of ``wikihow-tiir audit
--apply`` (``audit/applied.jsonl``), waiting up to ``audit_wait_s`` for them; otherwise the run
stops with what to do, and the same run started again resumes the build (byte-identical, cheap)
and goes on.

Importing this module loads Prefect (with the offline defaults of ``flows.build_dataset`` set first).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from flows.build_dataset import build_dataset, use_offline_defaults

use_offline_defaults()

from prefect import flow, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from flows.crawl import crawl_artifact, crawl_config, crawl_task  # noqa: E402
from wikihow_tiir import layout, remote  # noqa: E402
from wikihow_tiir.config import load_config  # noqa: E402
from wikihow_tiir.errors import WikihowTiirError  # noqa: E402


class ReleaseError(WikihowTiirError):
    """A release step refused to go on (invalid dataset, not approved)."""

    reason = "release-refused"


def _config(profile: str, config: str | None, overrides: list[str] | None):
    return load_config(config, profile=profile, overrides=list(overrides or []))


@flow(name="build", flow_run_name="build-{profile}", log_prints=True)
def build(profile: str = "sample", output: str = "data/builds/sample", config: str | None = None,
          overrides: list[str] | None = None, previous: str | None = None, force: bool = False) -> dict[str, Any]:
    """Build the dataset into ``output`` (a folder or an fsspec URL); ``previous``: the version it follows."""
    result = build_dataset(_config(profile, config, overrides), output, show_progress=False, force=force,
                           previous=previous)
    return {k: v for k, v in result.items() if k != "rejects"}


def resolve_previous(previous: str | None, repo_id: str) -> str | None:
    """``"latest"``: the repository's latest version tag, or None when it has none yet (a first release)."""
    if previous != "latest":
        return previous or None
    from wikihow_tiir.changelog import ChangelogError, _latest_tag

    try:
        return f"{repo_id}@{_latest_tag(repo_id)}"
    except ChangelogError:
        return None
    except Exception as exc:  # noqa: BLE001 - a repository that does not exist yet has no versions
        if getattr(getattr(exc, "response", None), "status_code", None) == 404:
            return None
        raise


@task(name="find-previous-version", task_run_name="find-previous-version", retries=2, retry_delay_seconds=10,
      cache_policy=NO_CACHE)
def previous_task(previous: str | None, repo_id: str) -> str | None:
    return resolve_previous(previous, repo_id)


@task(name="validate", task_run_name="validate-{folder}", retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
def validate_task(folder: str, previous: str | None) -> list[str]:
    from wikihow_tiir.publish.validate import validate_dataset

    problems = validate_dataset(Path(folder), check_load=True, previous=previous)
    if problems:
        raise ReleaseError(f"{folder} is not valid; nothing is published: " + "; ".join(problems[:10]), "invalid")
    return problems


@task(name="audit-gate", task_run_name="audit-gate", cache_policy=NO_CACHE)
def audit_gate(folder: str, approve: bool, audit_wait_s: float, poll_s: float = 10.0) -> str:
    """Pass with ``approve``, or once the audit's decisions are in the build folder (waiting up to
    ``audit_wait_s``)."""
    if approve:
        return "approved (--approve)"
    applied = Path(folder) / layout.AUDIT_APPLIED
    deadline = time.monotonic() + max(0.0, audit_wait_s)
    while not applied.is_file():
        if time.monotonic() >= deadline:
            raise ReleaseError(
                f"the release waits for the human audit: review the test split (`wikihow-tiir audit {folder} "
                f"--output review/`), apply the decisions (`wikihow-tiir audit {folder} --apply DECISIONS.jsonl`), "
                "then start the release again (the build resumes), or start it with approve=True "
                "(`--approve`)", "not-approved")
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))
    return f"audited ({layout.AUDIT_APPLIED})"


@task(name="choose-version", task_run_name="choose-version", retries=2, retry_delay_seconds=10,
      cache_policy=NO_CACHE)
def version_task(repo_id: str, folder: str, version: str | None) -> str:
    from wikihow_tiir.publish.hub import check_version, next_version

    if version:
        return check_version(version)
    chosen, why = next_version(repo_id, Path(folder))
    print(f"version {chosen}: {why}")
    return chosen


# never retried: a retry after a tag was made would publish twice (publish refuses an existing tag anyway)
@task(name="publish", task_run_name="publish-{repo_id}-{version}", retries=0, cache_policy=NO_CACHE)
def publish_task(folder: str, repo_id: str, version: str, private: bool) -> dict[str, Any]:
    from wikihow_tiir.publish.hub import PublishError, publish_dataset

    try:
        return publish_dataset(Path(folder), repo_id, version, private=private)
    except PublishError as exc:
        raise ReleaseError(str(exc), "publish-refused") from None


@flow(name="release", flow_run_name="release-{repo_id}", log_prints=True)
def release(repo_id: str, output: str, profile: str = "live", config: str | None = None,
            overrides: list[str] | None = None, previous: str | None = "latest", version: str | None = None,
            approve: bool = False, audit_wait_s: float = 0.0, crawl: bool = True, incremental: bool = True,
            private: bool = False) -> dict[str, Any]:
    """Crawl, build ``output`` against the previous version, validate, wait for the audit (or ``approve``),
    publish ``version`` (default: the next one by what changed) of ``repo_id``."""
    cfg = crawl_config(profile, config, overrides, None, incremental)
    if crawl and cfg.source.kind == "live":
        summary = crawl_task(cfg.model_dump(mode="json"), remote.describe(cfg.source.archive))
        if summary:
            crawl_artifact(summary, cfg.source.crawl.changed_since)
    prev = previous_task(previous, repo_id)
    # the build's own acquire step finds every page of this crawl archived (the crawler resumes: nothing
    # is fetched twice) and records the crawl in the manifest
    result = build_dataset(cfg, output, show_progress=False, previous=prev)
    folder = result.get("local_copy") or result["output"]
    validate_task(folder, prev)
    gate = audit_gate(folder, approve, audit_wait_s)
    chosen = version_task(repo_id, folder, version)
    published = publish_task(folder, repo_id, chosen, private)
    from prefect.artifacts import create_markdown_artifact

    manifest = json.loads(layout.manifest_path(folder).read_text(encoding="utf-8"))
    changes = (manifest.get("changes") or {}).get("previous") or {}
    create_markdown_artifact(key="release", description="What was published", markdown="\n".join([
        f"# {repo_id} {published['tag']}", "",
        f"- commit: `{published['commit']}`", f"- gate: {gate}",
        f"- previous version: {changes.get('location') or '(none: first release)'}",
        f"- load it: `{published['load']}`"]))
    return {"repo_id": repo_id, "version": chosen, "tag": published["tag"], "commit": published["commit"],
            "previous": prev, "gate": gate, "documents": result["documents"], "queries": result["queries"]}
