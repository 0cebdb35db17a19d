"""The `cellcall` command line: the typer app, `run` with its live view, doctor and tables."""
