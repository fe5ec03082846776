"""Provider options: one factory, typed Options, output-neutral declarations read by the cache key
and the baseline fingerprint, prices from the project the command names."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptkit.errors import ConfigError
from promptkit.project import Project
from promptkit.providers import options_of
from promptkit.providers.factory import open_provider


def test_unknown_and_invalid_options_are_one_line_config_errors() -> None:
    with pytest.raises(ConfigError) as unknown:
        open_provider("fake:m", batchsize=3)
    assert "unknown option 'batchsize' for provider 'fake'" in str(unknown.value)
    assert "batch_size" in str(unknown.value) and "\n" not in str(unknown.value)
    with pytest.raises(ConfigError, match=r"option 'timeout'.*finite"):
        open_provider("openai:m", timeout=float("nan"))
    with pytest.raises(ConfigError, match="option 'forward_batch'"):
        open_provider("smollm2", forward_batch=0)


def test_batch_size_is_examples_per_call_from_the_loop() -> None:
    assert open_provider("fake:m").batch_size == 8
    hf = open_provider("smollm2", forward_batch=16)
    assert (hf.batch_size, hf.opts.forward_batch) == (64, 16)  # type: ignore[attr-defined]
    assert open_provider("smollm2", batch_size=10).batch_size == 10
    assert open_provider("openai:m", concurrency=16).batch_size == 64
    assert open_provider("openai:m", batch_size=5).batch_size == 5


def test_options_of_another_provider_are_left_out() -> None:
    """A suite written for hf (forward_batch) run with -m fake:..., or -j for a local model."""
    provider = open_provider("fake:m", forward_batch=64, concurrency=4)
    assert provider.options == {}


def test_output_neutral_options_are_declared_by_the_provider() -> None:
    assert {"batch_size", "forward_batch", "threads"} <= options_of("hf").output_neutral()
    assert "adapter" not in options_of("hf").output_neutral()
    assert {"concurrency", "timeout", "api_key"} <= options_of("openai").output_neutral()
    assert "scoring" not in options_of("openai").output_neutral()


def test_check_reads_prices_from_the_project_not_the_working_directory(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from promptkit.gate.check import Providers
    from promptkit.models import resolve_model

    root = tmp_path / "project"
    root.mkdir()
    (root / "promptkit.yaml").write_text("prices:\n  fixed: {input: 1000000, output: 2000000}\n")
    monkeypatch.chdir(tmp_path)  # no price table here
    provider = Providers().get(resolve_model("openai:fixed"), Project(root))
    assert provider.cost(1, 1) == pytest.approx(3.0)  # type: ignore[attr-defined]


def test_base_methods_have_defaults_callers_rely_on() -> None:
    from promptkit.providers import ModelError
    from promptkit.results import Request

    provider = open_provider("fake:m", reply="hi there")
    request = Request(id="1", messages=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    assert provider.prompt_text(request) == "a\n\nb"
    assert provider.expected_tokens_out(request) is None
    assert (provider.fatal, provider.stats, provider.scoring_modes, provider.probes_scoring) == (None, {}, {}, False)
    generated = provider.generate(Request(id="2", text="x"))
    assert (generated.text, generated.logprobs) == ("hi there", None)
    with pytest.raises(NotImplementedError):
        provider.generate(Request(id="3", text="x"), logprobs=2)
    with pytest.raises(NotImplementedError):
        provider.token_logprobs(["x"], 0)
    with pytest.raises(ModelError, match="injected"):
        open_provider("fake:m", fail_every=1).generate(Request(id="4", text="x"))
