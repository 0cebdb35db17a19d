"""`python -m cellcall.bench engines|calls|watch` is `cellcall bench ...`."""

from cellcall.cli.app import bench_app

bench_app()
