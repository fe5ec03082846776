"""The CI gate: blessed baselines, thresholds, paired statistics and the check that combines them.

Modules: `thresholds` (the suite's `thresholds:` block), `baseline` (bless, load, staleness),
`stats` (exact McNemar, paired bootstrap), `check` (run suites and decide pass/fail)."""
