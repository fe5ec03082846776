"""`promptkit view`: a small server-rendered web app over the run store, prompts and baselines.

Read-only over runs; the one thing it writes is human review judgments (promptkit.view.reviews),
and only with the start-up token. Templates autoescape; assets ship in the package (no CDN)."""
