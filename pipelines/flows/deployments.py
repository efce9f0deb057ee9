"""How the flow is started: parameters from the settings, and the schedule.

`redflags run` and `redflags serve` both build the flow's parameters here, so a scheduled
run does exactly what the same settings do by hand.
"""

from __future__ import annotations

from typing import Any

from prefect import serve
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.schedules import Cron
from prefect.settings import get_current_settings

from pipelines.config import Settings
from pipelines.errors import UserError
from pipelines.flows.run import redflags_run

DEPLOYMENT_NAME = "nightly"


def flow_parameters(settings: Settings) -> dict[str, Any]:
    """The flow's arguments, with absolute paths: a served run may start in another directory."""
    return {
        "input_dir": str(settings.input_dir.resolve()),
        "source": settings.source,
        "warehouse": str(settings.warehouse.resolve()),
        "engine": settings.engine,
        "windows": None if settings.windows is None else list(settings.windows),
        "min_cell": settings.min_cell,
        "export_dir": str(settings.export_dir.resolve()),
        "docs_dir": str(settings.docs_dir.resolve()),
        "lock_timeout": settings.lock_timeout,
        "memory_limit": settings.memory_limit,
        "date_min": settings.date_min.isoformat(),
        "date_max": None if settings.date_max is None else settings.date_max.isoformat(),
        "docs_keep": settings.docs_keep,
        "max_quarantine_share": settings.max_quarantine_share,
        "future_dates": settings.future_dates,
        # The site whose files (rules, contracts, cohort definition) replace the packaged ones.
        "site": None if settings.site is None else str(settings.site),
    }


def build_deployment(settings: Settings) -> RunnerDeployment:
    """The scheduled deployment: the cron of the settings in their time zone, one run at a time."""
    return redflags_run.to_deployment(
        name=DEPLOYMENT_NAME,
        schedules=[Cron(settings.schedule_cron, timezone=settings.schedule_timezone)],
        parameters=flow_parameters(settings),
        description="redflags: ingest, score and publish the warehouse on a schedule.",
        tags=["redflags"],
        # The module path, not a file path: a served run imports the installed package.
        entrypoint_type=EntrypointType.MODULE_PATH,
        concurrency_limit=1,
    )


def require_server() -> str:
    """Serving needs a real Prefect server: an ephemeral one has no scheduler."""
    url = get_current_settings().api.url
    if not url:
        raise UserError(
            "redflags serve needs a Prefect server: start one with `prefect server start` "
            "and set PREFECT_API_URL=http://127.0.0.1:4200/api",
            exit_code=2,
        )
    return url


def serve_deployments(settings: Settings) -> None:
    """Register the deployment and run its scheduled (and manually triggered) runs until stopped."""
    require_server()
    serve(build_deployment(settings), limit=1, print_starting_message=False)
