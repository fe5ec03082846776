"""One significance level for every paired test promptkit runs: `check`, `status` and `tune`."""

ALPHA = 0.05
