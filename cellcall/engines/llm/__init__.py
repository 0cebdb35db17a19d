"""Pick the chat model backend from the settings; the backends import only `base`, never this module."""

from __future__ import annotations

from pathlib import Path

from cellcall.config import LlmSettings
from cellcall.engines import ChatModel, EngineError

BACKENDS = ("auto", "ollama", "openai", "embedded", "anthropic")


def make_chat_model(settings: LlmSettings, cache_dir: Path) -> ChatModel:
    """auto (Ollama when it answers within 300 ms, else embedded) | ollama | openai | embedded | anthropic."""
    if settings.backend not in BACKENDS:
        raise EngineError(f"unknown llm backend {settings.backend!r}: use one of {', '.join(BACKENDS)}")
    if settings.backend in ("auto", "ollama"):
        from cellcall.engines.llm.ollama import OllamaChatModel, ollama_host, ollama_reachable

        host = ollama_host(settings.ollama_host)
        if settings.backend == "ollama" or ollama_reachable(host):
            return OllamaChatModel(settings.ollama_model, host)
    if settings.backend == "anthropic":
        from cellcall.engines.llm.anthropic import AnthropicChatModel, api_key

        return AnthropicChatModel(settings.anthropic_model, api_key(settings.api_key), settings.base_url)
    if settings.backend == "openai":
        from cellcall.engines.llm.openai import OpenAIChatModel

        if not settings.base_url:
            raise EngineError("llm backend 'openai' needs llm.base_url, e.g. http://127.0.0.1:8080/v1")
        return OpenAIChatModel(settings.base_url, settings.model, settings.api_key)
    from cellcall.engines.llm.embedded import EmbeddedChatModel
    from cellcall.engines.models import gguf_model

    return EmbeddedChatModel(gguf_model(settings.model, cache_dir), threads=settings.threads, context=settings.context)
