"""Helpers of the flow tests: the environment of a Prefect server and its clients, and reading runs back."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def base_env(home: Path, api_url: str | None = None) -> dict[str, str]:
    """This environment without any Prefect setting of the caller's, Prefect's home in ``home``, analytics
    and the UI off, the Hub offline; ``api_url``: the server the process talks to."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
                "PREFECT_UI_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING",
                "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


class prefect_client:  # noqa: N801 - used as `with prefect_client(url) as c:`
    """A synchronous Prefect client of the test server (the test process's own settings stay as they are)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __enter__(self):
        from flows.build_dataset import use_offline_defaults

        use_offline_defaults()
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        self._settings = temporary_settings(updates={PREFECT_API_URL: self.url})
        self._settings.__enter__()
        self._client = get_client(sync_client=True)
        return self._client.__enter__()

    def __exit__(self, *exc):
        self._client.__exit__(*exc)
        self._settings.__exit__(*exc)


def task_runs(c, flow_run_ids) -> list:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    return c.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(flow_run_ids))), limit=200)


def artifacts(c, flow_run_ids) -> dict:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    arts = c.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(
        any_=list(flow_run_ids))))
    return {a.key: a for a in arts}
