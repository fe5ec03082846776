"""Helpers shared by the tests (and scripts/reliability.py); conftest.py holds only fixtures.
Import them one way: `from tests.helpers.MODULE import NAME`.

- projects: ROOT, SHARED_DATA, scratch projects (a copy of the repo's, the toy, tune and slow ones), write_prompt,
  dataset writers, register_model
- cli: the CLI in a subprocess (run_cli; start_cli in the background), in process (run_cli_in_process, for fast
  loops on a fake model), its environment (cli_env)
- fakes: fake providers beyond promptkit's own (slowfake); `python -m tests.helpers.fakes ARGS` is the CLI with them
- run_store: a run store's SQLite file read directly
- sample_runs: eval runs and results built through the real loop, and a stored run full of hostile text
- serving: `promptkit serve` / `promptkit view` in the background, and a JSON client for serve
- kill_trials, error_corpus, races, secrets_scan: the reliability trials (SIGKILL, malformed inputs, concurrent
  writers, a leaked API key); forking: the forked children the corpus and the races run in
- fault_server, scripted_server, judge_server, finetune_server (on json_handler): local HTTP doubles of
  OpenAI-style endpoints
- tiny_model: a one-layer random Llama built in a second
"""
