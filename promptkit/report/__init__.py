"""Reports of a run: the JSON report (library), terminal tables (rich, CLI only)."""

from promptkit.report.data import report_dict, write_json

__all__ = ["report_dict", "write_json"]
