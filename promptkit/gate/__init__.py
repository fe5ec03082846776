"""The CI gate: blessed baselines, thresholds, paired statistics and the check that combines them.

Modules, bottom up: `thresholds` (the suite's `thresholds:` block), `decide` (paired tests on
per-example outcomes, Holm, the pass/fail of each metric; the statistics themselves live in
`promptkit.stats`), `results` (SuiteCheck, CheckReport and the exit code), `run` (the provider pool
and a suite's seeded runs), `baseline` (bless, load, staleness), `select` (which suites: targets and
--changed-since), `check` (thresholds and baseline compared for each suite, the report)."""
