"""`python -m cellcall` runs the same CLI as the `cellcall` console script."""

from cellcall.cli.app import app

app()
