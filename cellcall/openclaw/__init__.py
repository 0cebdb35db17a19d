"""OpenClaw: the skill, pushes of finished calls to the gateway (queued on disk), memory notes and set-up."""
