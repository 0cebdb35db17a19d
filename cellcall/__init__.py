"""cellcall: markdown goal files in, phone calls out, on a SIM7600G-H modem with local models."""

__version__ = "0.1.0"
