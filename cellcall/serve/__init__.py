"""`cellcall serve`: the watch runner plus an HTTP API, a live page and an event stream.

The goals folder stays the one way a call is placed: POST /v1/calls writes the goal into it exactly
as a dropped file would, and the runner dials it. Modules: auth (tokens, exposure, rate), placing
(validate, policy, idempotency, write), lookup (call id -> where the call is now), events (runner
log -> server-sent events), app (the routes), server (uvicorn in its own thread beside the runner).
"""
