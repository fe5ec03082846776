"""Helpers shared by the tests (and scripts/reliability.py). Import them as `from tests.helpers.MODULE import NAME`:

- projects: ROOT, SHARED_DATA, scratch projects (a copy of the repo's, a toy one, a tune one, a slow one), write_prompt
- cli: the CLI in a subprocess (run_cli, the one way), in process (run_cli_in_process, for fast loops), its environment
- fakes: a slow fake provider, and `python -m tests.helpers.fakes ARGS` = the CLI with it registered
- run_store: reading a run store's SQLite file
- sample_runs: eval runs and results built through the real loop, for metric, report and view tests
- serving: `promptkit serve` / `promptkit view` started in the background, and a client for serve
- kill_trials, error_corpus, races: the reliability trials (SIGKILL, malformed inputs, concurrent writers)
- fault_server, scripted_server, judge_server, finetune_server: local HTTP doubles of OpenAI-style endpoints
- tiny_model: a one-layer random Llama built in a second
"""
