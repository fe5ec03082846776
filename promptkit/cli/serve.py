"""promptkit serve: an OpenAI-compatible HTTP server over a local model."""

from __future__ import annotations

import os

import click

from promptkit.cli.common import err_console, project_of
from promptkit.serve import (
    MAX_BODY,
    MAX_CONNECTIONS,
    MAX_PROMPT_TOKENS,
    MAX_TOKENS,
    READ_TIMEOUT,
    check_exposure,
    make_server,
    run,
)


@click.command("serve")
@click.option("--model", "-m", default="smollm2", show_default=True,
              help="Local model: smollm2, a model folder, a .gguf file, or a registered tuned adapter.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0 exposes it).")
@click.option("--port", "-p", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port (0: any free one).")
@click.option("--name", help="Model id clients use (default: the --model spec).")
@click.option("--api-key", envvar="PROMPTKIT_SERVE_API_KEY", show_envvar=True,
              help="Require 'Authorization: Bearer KEY' on every request.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=MAX_TOKENS, show_default=True,
              help="Cap on max_tokens per request.")
@click.option("--max-body", type=click.IntRange(min=1024), default=MAX_BODY, show_default=True,
              help="Largest request body in bytes.")
@click.option("--max-prompt-tokens", type=click.IntRange(min=16), default=MAX_PROMPT_TOKENS, show_default=True,
              help="Cap on prompt tokens per request (bounds echo/logprob work and memory).")
@click.option("--read-timeout", type=click.FloatRange(min=0.1, max=3600), default=READ_TIMEOUT, show_default=True,
              help="Seconds a request's headers and body have to arrive; slower clients are cut off.")
@click.option("--max-connections", type=click.IntRange(min=1), default=MAX_CONNECTIONS, show_default=True,
              help="Open connections at most; at the cap, the oldest one still sending its request is closed.")
@click.option("--insecure", is_flag=True, help="Allow listening beyond loopback without an API key.")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]), default="warning",
              show_default=True)
@click.pass_context
def serve(ctx: click.Context, model: str, host: str, port: int, name: str | None, api_key: str | None,
          max_tokens: int, max_body: int, max_prompt_tokens: int, read_timeout: float, max_connections: int,
          insecure: bool, log_level: str) -> None:
    """Serve a local model at /v1/models, /v1/completions and /v1/chat/completions."""
    if api_key is None and "PROMPTKIT_SERVE_API_KEY" in os.environ:  # click reads an empty variable as unset
        api_key = os.environ["PROMPTKIT_SERVE_API_KEY"]
    server = make_server(model, project_of(ctx), name=name, api_key=api_key, max_body=max_body, max_tokens=max_tokens,
                         max_prompt_tokens=max_prompt_tokens, read_timeout=read_timeout,
                         max_connections=max_connections)
    check_exposure(host, server.config.api_key, insecure)  # before loading the model

    def ready(url: str) -> None:
        auth = "API key required" if api_key else "no API key"
        err_console.print(f"promptkit serve: model {server.config.name!r} at {url} ({auth}); Ctrl-C stops", soft_wrap=True)

    run(server, host=host, port=port, log_level=log_level, ready=ready, insecure=insecure)
