"""The fleet: several lines, one NATS JetStream queue (`[queue] url`), each goal dialled once.

connection.py owns the NATS client (its own asyncio thread); claims.py the exactly-once claim
book; ledger.py the fleet-wide dial ledger; messages.py the goal and report messages; worker.py
the runner's dialler in fleet mode; fleet.py the read side (`cellcall queue status`, fleet calls).
"""
