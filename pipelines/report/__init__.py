"""Static visual QA report of an output folder (``regionset report OUT``): see docs/report.md."""

from regionset.pipelines.report.build import write_report

__all__ = ["write_report"]
