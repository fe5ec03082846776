"""Hosted fine-tuning through the OpenAI API (or any server speaking its files + fine_tuning.jobs API).

Validates the chat JSONL, estimates the bill, asks before spending, uploads, creates a supervised
job, follows it with its events and, on success, registers the fine-tuned model and evaluates it
through the openai provider. Job ids are recorded in .promptkit/tune/jobs.json so a re-run picks up
the existing job instead of starting a second one."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptkit.config import atomic_write, read_json_object
from promptkit.errors import ConfigError, PromptkitError
from promptkit.fileio import file_lock
from promptkit.project import Project
from promptkit.providers import providers
from promptkit.tune.base import Estimate, TuneJob, Tuner, TuneResult, check_out_dir
from promptkit.tune.dpo import load_pairs
from promptkit.tune.openai_rules import (
    DEFAULT_BASE,
    billed_tokens,
    default_counter,
    preference_record,
    preference_tokens,
    training_price,
    validate,
    validate_preferences,
)
from promptkit.tune.run import before_after

TERMINAL = ("succeeded", "failed", "cancelled")
DEFAULT_EPOCHS = 3  # what the API's "auto" usually picks for a few hundred examples; used for estimates


class TuneFailed(PromptkitError):
    exit_code = 1


@dataclass
class JobEvent:
    """A progress report while following a job."""

    job_id: str
    status: str
    message: str = ""
    trained_tokens: int | None = None


def client(options: dict[str, Any] | None = None) -> Any:
    """The official openai client; base URL and key from options or OPENAI_BASE_URL / OPENAI_API_KEY."""
    import openai

    options = options or {}
    key = options.get("api_key") or os.environ.get("OPENAI_API_KEY")
    if not key:
        raise ConfigError("OPENAI_API_KEY is not set", hint="export OPENAI_API_KEY=... (it is never logged or stored)")
    return openai.OpenAI(api_key=key, base_url=options.get("base_url") or os.environ.get("OPENAI_BASE_URL"),
                         max_retries=int(options.get("max_retries", 2)), timeout=float(options.get("timeout", 60)))


@contextmanager
def api_errors(what: str) -> Iterator[None]:
    """The API's errors as one-line promptkit errors (the key is never part of them)."""
    import openai

    try:
        yield
    except openai.APIStatusError as e:
        message = getattr(e, "message", None) or str(e)
        raise TuneFailed(f"{what}: HTTP {e.status_code}: {message}") from None
    except openai.APIConnectionError as e:
        raise TuneFailed(f"{what}: cannot reach the API ({e})", hint="check OPENAI_BASE_URL and the network") from None


def jobs_file(project: Project) -> Path:
    return project.state_dir / "tune" / "jobs.json"


def _jobs(project: Project) -> dict[str, dict[str, Any]]:
    path = jobs_file(project)
    if not path.exists() and not path.is_symlink():
        return {}
    hint = "fix the file, or move it aside (re-running then starts new jobs instead of following the old ones)"
    jobs = read_json_object(path, hint, "an object of jobs")
    for key, entry in jobs.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("job_id"), str):
            raise ConfigError(f"job {key!r} needs a 'job_id' string", where=str(path), hint=hint)
    return jobs


def _save_job(project: Project, key: str, entry: dict[str, Any]) -> None:
    path = jobs_file(project)
    with file_lock(path.with_name(path.name + ".lock"), "the hosted jobs file"):  # other tune processes write it too
        jobs = _jobs(project)
        jobs[key] = {**jobs.get(key, {}), **entry}
        atomic_write(path, json.dumps(jobs, indent=2) + "\n")


def _hyperparameters(options: dict[str, Any]) -> dict[str, Any]:
    out = {"n_epochs": options.get("epochs") or "auto", "batch_size": options.get("batch_size") or "auto",
           "learning_rate_multiplier": options.get("learning_rate_multiplier") or "auto"}
    if _dpo(options):
        out["beta"] = options.get("beta") or "auto"
    return out


def _dpo(options: dict[str, Any]) -> bool:
    return options.get("method") == "dpo"


def _method(options: dict[str, Any]) -> dict[str, Any]:
    kind = "dpo" if _dpo(options) else "supervised"
    return {"type": kind, kind: {"hyperparameters": _hyperparameters(options)}}


def _records(job: TuneJob) -> list[dict[str, Any]]:
    if _dpo(job.options):  # preference pairs (prompt, chosen, rejected) in the API's DPO format
        return [preference_record(p.prompt, p.chosen, p.rejected) for p in load_pairs(Path(job.options["preferences"]))]
    return [r.record() for r in job.trainset.rows]


def _split(job: TuneJob, records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, validation) records: the training set's seeded split, or for DPO the same rule on the pairs."""
    fraction, seed = float(job.options.get("val_fraction", 0.1)), int(job.options.get("seed", 0))
    if not _dpo(job.options):
        train_rows, val_rows = job.trainset.split(fraction, seed)
        return [r.record() for r in train_rows], [r.record() for r in val_rows]
    import random

    if len(records) < 4 * MIN_VALIDATION:
        return records, []
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    held = set(order[: max(1, round(len(records) * fraction))])
    return [r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held]


MIN_VALIDATION = 5  # DPO pairs: hold some out only from 20 pairs on (the API needs 10 to train)


class OpenAITuner(Tuner):
    name = "openai"

    def base_model(self, job: TuneJob) -> str:
        return str(job.options.get("base_model") or DEFAULT_BASE)

    def estimate(self, job: TuneJob) -> Estimate:
        if not _dpo(job.options) and not job.trainset.chat:
            raise ConfigError(f"{job.version.ref} is a text prompt; OpenAI fine-tuning takes chat examples",
                              where=str(job.version.source), hint="use a prompt with 'style: chat'")
        base = self.base_model(job)
        epochs = int(job.options.get("epochs") or DEFAULT_EPOCHS)
        records = _records(job)
        if _dpo(job.options):
            count = default_counter()
            tokens = sum(preference_tokens(r, count) for r in records)
        else:
            tokens = billed_tokens(records, 1)
        price = training_price(base)
        cost = tokens * epochs * price / 1_000_000 if price is not None else None
        note = "" if job.options.get("epochs") else f"{epochs} epochs assumed (the API picks 'auto')"
        return Estimate("openai dpo" if _dpo(job.options) else "openai", len(records), tokens, epochs, cost=cost, model=base,
                        note=note if price is not None else f"no training price known for {base}")

    def job_key(self, job: TuneJob) -> str:
        identity = {"prompt_hash": job.version.hash, "base": self.base_model(job),
                    "trainset": json.dumps(_records(job)) if _dpo(job.options) else job.trainset.jsonl(),
                    "hyperparameters": _hyperparameters(job.options), "suffix": job.options.get("suffix"),
                    "name": job.name}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]

    def run(self, job: TuneJob) -> TuneResult:
        check_out_dir(job.out_dir)
        self.estimate(job)  # refuses text prompts
        records = _records(job)
        problems = validate_preferences(records) if _dpo(job.options) else validate(records)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            kind = "preference" if _dpo(job.options) else "fine-tuning"
            raise ConfigError(f"training data breaks the OpenAI {kind} rules: {problems[0]}{more}",
                              where=job.trainset.manifest.get("dataset"),
                              hint="fix the preference file" if _dpo(job.options) else "fix the rows, or the prompt's render")
        with api_errors("fine-tuning"):
            return self._run(job, records)

    def _run(self, job: TuneJob, records: list[dict[str, Any]]) -> TuneResult:
        api = client(job.options)
        key = self.job_key(job)
        known = _jobs(job.project).get(key)
        if known and known.get("status") not in ("failed", "cancelled"):
            job.notify(f"picking up existing job {known['job_id']} ({known.get('status')})")
            job_id = str(known["job_id"])
        else:
            job_id = self._create(job, api, key)
        final = self.follow(job, api, job_id, key)
        return self._finish(job, final, key)

    def _create(self, job: TuneJob, api: Any, key: str) -> str:
        estimate = self.estimate(job)
        cost = f"${estimate.cost:.2f}" if estimate.cost is not None else "an unknown amount"
        message = (f"fine-tune {estimate.model} on {estimate.examples} examples: {estimate.tokens} tokens x "
                   f"{estimate.epochs} epochs = {estimate.billed_tokens} billed tokens, about {cost}")
        if not job.confirm(message):
            raise TuneFailed("stopped before uploading: not confirmed", hint="pass --yes to go on without asking")
        folder = job.out_dir / "data"
        train_rows, val_rows = _split(job, _records(job))
        train_path = folder / "train-openai.jsonl"
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(train_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in train_rows))
        with train_path.open("rb") as f:
            training_file = api.files.create(file=f, purpose="fine-tune").id
        validation_file = None
        if len(val_rows) >= 1:
            val_path = folder / "validation-openai.jsonl"
            atomic_write(val_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in val_rows))
            with val_path.open("rb") as f:
                validation_file = api.files.create(file=f, purpose="fine-tune").id
        job.notify(f"uploaded {training_file}" + (f" and {validation_file}" if validation_file else ""))
        extra: dict[str, Any] = {}
        if validation_file:
            extra["validation_file"] = validation_file
        if job.options.get("seed") is not None:
            extra["seed"] = int(job.options["seed"])
        created = api.fine_tuning.jobs.create(
            model=estimate.model, training_file=training_file,
            suffix=str(job.options.get("suffix") or job.name)[:64],
            method=_method(job.options),
            **extra,
        )
        _save_job(job.project, key, {"job_id": created.id, "status": created.status, "name": job.name,
                                     "prompt": job.version.ref, "base_model": estimate.model,
                                     "created": int(time.time()), "training_file": training_file})
        job.notify(f"created job {created.id}")
        return str(created.id)

    def follow(self, job: TuneJob, api: Any, job_id: str, key: str | None = None) -> Any:
        """Poll the job and print its new events until it ends."""
        interval = float(job.options.get("poll_interval", 10))
        timeout = job.options.get("follow_timeout")
        started = time.monotonic()
        seen: set[str] = set()
        while True:
            current = api.fine_tuning.jobs.retrieve(job_id)
            events = list(api.fine_tuning.jobs.list_events(job_id, limit=50).data)
            for event in reversed(events):  # the API lists newest first
                if event.id not in seen:
                    seen.add(event.id)
                    job.notify(f"[{current.status}] {event.message}")
            if job.progress:
                job.progress(JobEvent(job_id, current.status, events[0].message if events else "",
                                      getattr(current, "trained_tokens", None)))
            if key:
                _save_job(job.project, key, {"status": current.status,
                                             "fine_tuned_model": getattr(current, "fine_tuned_model", None)})
            if current.status in TERMINAL:
                return current
            if timeout is not None and time.monotonic() - started > float(timeout):
                raise TuneFailed(f"job {job_id} still {current.status} after {timeout} s",
                                 hint="it goes on; re-run the same command, or 'promptkit tune status JOB'")
            time.sleep(interval)

    def _finish(self, job: TuneJob, final: Any, key: str) -> TuneResult:
        if final.status == "failed":
            error = getattr(final, "error", None)
            detail = f"{getattr(error, 'code', '')}: {getattr(error, 'message', '')}".strip(": ") if error else "no detail"
            raise TuneFailed(f"fine-tuning job {final.id} failed: {detail}",
                             hint="fix the cause and re-run; a new job will be created")
        if final.status == "cancelled":
            raise TuneFailed(f"fine-tuning job {final.id} was cancelled", hint="re-run to start a new job")
        model_id = str(final.fine_tuned_model)
        base = self.base_model(job)
        job.project.models.add(job.name, "openai", model_id, base_model=base, prompt=job.version.ref,
                               prompt_hash=job.version.hash, dataset_hash=job.trainset.manifest.get("dataset_hash"),
                               job_id=final.id, backend="openai", method=_method(job.options)["type"])
        manifest = {"backend": "openai", "method": _method(job.options)["type"], "name": job.name, "job_id": final.id,
                    "fine_tuned_model": model_id,
                    "base_model": base, "prompt": job.version.ref, "prompt_hash": job.version.hash,
                    "dataset_hash": job.trainset.manifest.get("dataset_hash"),
                    "trainset_hash": job.trainset.manifest.get("trainset_hash"),
                    "trained_tokens": getattr(final, "trained_tokens", None),
                    "hyperparameters": _hyperparameters(job.options)}
        job.out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(job.out_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n")
        job.notify(f"fine-tuned model {model_id} registered as {job.name!r}")
        comparison = None

        if job.evaluate and "openai" in providers:
            tuned = {"base_model": f"openai:{base}", "fine_tuned_model": model_id, "job_id": final.id,
                     "train_dataset_hash": manifest["dataset_hash"], "tuned_prompt_hash": job.version.hash}
            comparison = before_after(job.project, job.version, job.suite, f"openai:{base}", f"openai:{model_id}", tuned,
                                      job.eval_data, job.eval_split, job.eval_limit)
            manifest["comparison"] = comparison.to_dict()
            atomic_write(job.out_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n")
        elif job.evaluate:
            job.notify("provider 'openai' is not available here: skipping the eval of the fine-tuned model")
        return TuneResult("openai", job.name, f"openai:{model_id}", manifest, comparison)


def list_jobs(project: Project, options: dict[str, Any] | None = None, limit: int = 20) -> list[Any]:
    with api_errors("listing jobs"):
        return list(client(options).fine_tuning.jobs.list(limit=limit).data)


def job_status(project: Project, job_id: str, options: dict[str, Any] | None = None) -> tuple[Any, list[Any]]:
    api = client(options)
    with api_errors(f"job {job_id}"):
        return api.fine_tuning.jobs.retrieve(job_id), list(api.fine_tuning.jobs.list_events(job_id, limit=20).data)


def cancel_job(project: Project, job_id: str, options: dict[str, Any] | None = None) -> Any:
    with api_errors(f"cancelling {job_id}"):
        cancelled = client(options).fine_tuning.jobs.cancel(job_id)
    for key, entry in _jobs(project).items():
        if entry.get("job_id") == job_id:
            _save_job(project, key, {"status": cancelled.status})
    return cancelled
