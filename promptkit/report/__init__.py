"""Reports of a run: JSON, per-example JSONL and CSV, self-contained HTML (library);
terminal tables (rich, CLI only). `write_report(run, path)` picks the format by suffix."""

from promptkit.report.data import (
           csv_text,
           example_records,
           jsonl_text,
           report_dict,
           write_csv,
           write_json,
           write_jsonl,
           write_report,
)

__all__ = ["csv_text", "example_records", "jsonl_text", "report_dict", "write_csv", "write_json", "write_jsonl",
           "write_report"]
