"""`cellcall eval`: dry-run a goal against an emulated far end that listens and follows a persona script.

`persona` reads and validates the TOML persona format (errors carry the file's line), `script` is its
state machine on plain text, `score` judges one finished call against the persona's ground truth, and
`runner` places the calls on the emulator with the real models.
"""
