"""Offload STT, LLM and TTS to another box (`cellcall relay serve`), with failover to local engines."""
