"""The SIM7600G-H emulator: a tool, not a transport. Two pseudo-terminals, real pacing and URCs, scripted far ends.

The real driver (`cellcall.line.sim7600`) talks to it exactly as to a modem; only `line.py`, which joins the two,
imports the driver.
"""
