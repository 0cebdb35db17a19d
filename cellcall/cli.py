"""The `cellcall` command line: thin commands that parse, call one function and print."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cellcall.config import ConfigError, Settings, load_settings

app = typer.Typer(
    help="Markdown goal files in, phone calls out (SIM7600G-H modem, local models).",
    no_args_is_help=True,
    add_completion=False,
)

_state: dict[str, Optional[Path]] = {"config": None}


@app.callback()
def main(
    config: Optional[Path] = typer.Option(None, "--config", "-c", envvar="CELLCALL_CONFIG", help="Path to cellcall.toml."),
) -> None:
    """cellcall places and answers phone calls described by markdown goal files."""
    _state["config"] = config


def settings(overrides: Optional[dict] = None) -> Settings:
    """The effective settings, or a clean exit 2 with the configuration error."""
    try:
        return load_settings(_state["config"], overrides=overrides)
    except ConfigError as exc:
        typer.secho(f"config error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None


bench_app = typer.Typer(help="Benchmarks: print figures and update docs/benchmarks.md.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
