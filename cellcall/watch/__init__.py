"""The watch runner: the goals folder as a crash-safe inbox, scheduling, inbound answering, status and reports."""
