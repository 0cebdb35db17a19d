"""The real-time voice loop: frames, VAD, endpointing, echo-aware barge-in, and the streaming turn pipeline."""
