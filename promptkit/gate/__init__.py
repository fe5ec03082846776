"""The CI gate: blessed baselines, thresholds, paired statistics and the check that combines them.

Modules: `thresholds` (the suite's `thresholds:` block), `baseline` (bless, load, staleness),
`decide` (paired tests on per-example outcomes, Holm, the pass/fail of each metric; the
statistics themselves live in `promptkit.stats`), `check` (pick and run suites, report)."""
