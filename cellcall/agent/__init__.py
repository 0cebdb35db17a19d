"""The agent's mind on a call: code holds the plan, the small model only phrases it.

A 0.5B model cannot be trusted to stay in its role, follow a plan or know when it is done (it spoke as the
receptionist, read its stage directions aloud, repeated itself). So: `brief` reads the goal into compact
facts once; `understand` reads each of the other party's turns (questions, offers, confirmations,
refusals) in microseconds; `dialogue` is the state the loop thread keeps (what was asked, offered, agreed);
`planner` picks the next move from that state; `prompt` gives the model the move with the goal's facts in a
short, cache-friendly, append-only chat; `guard` checks every sentence before it is spoken and falls back
to the move's own plain wording. `agent.Agent` ties them together for the voice loop.
"""
