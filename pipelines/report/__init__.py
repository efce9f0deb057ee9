"""The HTML report: one self-contained file of charts and tables read from marts.* and ops.*.

`write_report` is what `redflags report` and the last task of `redflags run` call.
"""

from __future__ import annotations

from pipelines.report.render import default_report_path, write_report

__all__ = ["default_report_path", "write_report"]
