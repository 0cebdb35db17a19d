"""`python -m cellcall` runs the same CLI as the `cellcall` console script."""

from cellcall.cli import app

app()
