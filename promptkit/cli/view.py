"""promptkit view: a local web app over the run store; export-preferences / export-labels for reviews."""

from __future__ import annotations

from pathlib import Path

import click

from promptkit.cli.common import err_console, project_of
from promptkit.config import atomic_write
from promptkit.errors import PromptkitError
from promptkit.serve import MAX_CONNECTIONS, READ_TIMEOUT, guarded_protocol
from promptkit.view.reviews import jsonl, label_records, preference_records


@click.group(invoke_without_command=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind; the default is this machine only.")
@click.option("--open", "open_browser", is_flag=True, help="Open the app in the default browser.")
@click.option("--read-only", is_flag=True, help="Turn reviews off: nothing is written.")
@click.option("--read-timeout", type=click.FloatRange(min=0.1, max=3600), default=READ_TIMEOUT, show_default=True,
              help="Seconds a request's headers and body have to arrive; slower clients are cut off.")
@click.option("--max-connections", type=click.IntRange(min=1), default=MAX_CONNECTIONS, show_default=True,
              help="Open connections at most; at the cap, the oldest one still sending its request is closed.")
@click.pass_context
def view(ctx: click.Context, port: int, host: str, open_browser: bool, read_only: bool, read_timeout: float,
         max_connections: int) -> None:
    """Browse runs, compare versions, review outputs in a local web app."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from promptkit.view.app import ViewConfig, allowed_hosts, create_app, new_token  # start-up: starlette loads only for `view`

    _check_free(host, port)
    project = project_of(ctx)
    token = new_token()
    app = create_app(ViewConfig(project, token, read_only, allowed_hosts(host)))
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/"
    link = url if read_only else f"{url}?token={token}"
    note = "  (read-only)" if read_only else "  (the token lets this browser save reviews)"
    err_console.print(f"promptkit view: {link}{note}", markup=False, soft_wrap=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        err_console.print(f"warning: bound to {host}: anyone who can reach it can read your runs", markup=False)
    if open_browser:
        import threading
        import webbrowser

        threading.Timer(0.8, webbrowser.open, (link,)).start()
    # Slow or greedy clients: each request must arrive whole within read_timeout, connections are capped.
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_keep_alive=5,
                http=guarded_protocol(read_timeout, max_connections), limit_concurrency=max_connections + 8,
                h11_max_incomplete_event_size=64 * 1024)


def _check_free(host: str, port: int) -> None:
    """A busy port or an unknown host is one line and exit 2, before uvicorn logs and exits 1."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(infos[0][4])
    except OSError as e:
        raise PromptkitError(f"cannot listen on {host}:{port}: {e.strerror or e}", where="--host/--port",
                             hint="pick another --port or --host") from None


def _export(ctx: click.Context, output: Path | None, which: str) -> None:
    project = project_of(ctx)
    records = preference_records(project) if which == "preferences" else label_records(project)
    text = jsonl(records)
    count = text.count("\n")
    if output is None:
        click.echo(text, nl=False)
    else:
        try:
            atomic_write(output, text)
        except OSError as e:
            raise PromptkitError(f"cannot write {which}: {e.strerror or e}", where=str(output)) from None
        err_console.print(f"{count} {which} record(s): {output}", markup=False)


@view.command("export-preferences")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="JSONL file (default: stdout).")
@click.pass_context
def export_preferences(ctx: click.Context, output: Path | None) -> None:
    """Pairwise reviews as `prompt, chosen, rejected` JSONL for preference tuning (ties skipped)."""
    _export(ctx, output, "preferences")


@view.command("export-labels")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="JSONL file (default: stdout).")
@click.pass_context
def export_labels(ctx: click.Context, output: Path | None) -> None:
    """Right/wrong marks and corrected labels as JSONL."""
    _export(ctx, output, "labels")
