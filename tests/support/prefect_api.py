"""What a flow run left on a Prefect server, read through Prefect's client.

The client is pointed at the server for the read only, so the test process keeps its own
Prefect settings.
"""

from __future__ import annotations


def run_logs(api_url: str, flow_run_id: str) -> list:
    """The logs of a flow run and its task runs, oldest first, read through Prefect's client."""
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort
    from prefect.settings import PREFECT_API_URL, temporary_settings

    runs = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        return client.read_logs(log_filter=runs, sort=LogSort.TIMESTAMP_ASC)


def run_artifacts(api_url: str, flow_run_id: str) -> list:
    """The artifacts of a flow run, read through Prefect's client."""
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    of_run = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=of_run)
