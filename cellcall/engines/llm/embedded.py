"""An in-process llama.cpp (xllamacpp) chat model over any GGUF file: no server to install.

xllamacpp runs llama.cpp's own server loop in the process and hands streamed OpenAI-style chunks
to a Python callback; returning True from the callback stops generation. One slot keeps the
system prompt in the KV cache between turns, which `warm()` fills while the phone rings.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from cellcall.engines import ChatMessage, EngineError
from cellcall.engines.llm.base import Emit, StreamingChatModel, as_dicts, pump_tokens
from cellcall.engines.models import GgufModel


def _chunk_text(chunk: dict[str, Any]) -> str:
    """The delta text of one streamed chunk; an error chunk becomes an EngineError."""
    if "error" in chunk or ("code" in chunk and "choices" not in chunk):
        error = chunk.get("error", chunk)
        raise EngineError(f"llama.cpp: {error.get('message', error) if isinstance(error, dict) else error}")
    choices = chunk.get("choices") or [{}]
    return (choices[0].get("delta") or {}).get("content") or ""


class EmbeddedChatModel(StreamingChatModel):
    """Implements `ChatModel` with xllamacpp; also serves OpenAI HTTP at `base_url` (loopback)."""

    def __init__(self, model: GgufModel, threads: int = 2, context: int = 2048, gpu_layers: int = -1) -> None:
        if threads < 1 or context < 256:
            raise EngineError(f"llm needs threads >= 1 and context >= 256, got {threads} and {context}")
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = str(model.path)
        params.n_ctx = context
        params.n_gpu_layers = gpu_layers  # -1: llama.cpp default (all layers on a CUDA build); 0: CPU only
        params.n_parallel = 1  # one conversation per process: its slot keeps the prompt cache
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.cpuparams.poll = params.cpuparams_batch.poll = 0  # sleep, not spin: STT/TTS/audio share the cores
        params.warmup = False
        params.verbosity = -1
        try:
            self._server = xllamacpp.Server(params)
        except Exception as exc:  # llama.cpp reports load failures as RuntimeError
            raise EngineError(f"cannot load GGUF model {model.path}: {exc}") from exc
        self.name = f"embedded:{model.name}"
        self.base_url = self._server.listening_address.rstrip("/") + "/v1"
        self._lock = threading.Lock()
        self.warm([ChatMessage("user", "Hi")])  # llama.cpp allocates its compute graph on the first request

    def _request(self, wire: list[dict[str, str]], max_tokens: int, temperature: float, stream: bool) -> dict[str, Any]:
        return {
            "messages": wire,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": stream,
            "cache_prompt": True,
        }

    def _producer(
        self, wire: list[dict[str, str]], max_tokens: int, temperature: float, schema: dict[str, Any] | None = None
    ) -> Callable[[Emit], None]:
        request = self._request(wire, max_tokens, temperature, stream=True)
        if schema is not None:  # llama.cpp compiles the schema to a grammar: the reply cannot leave it
            request["response_format"] = {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}}

        def produce(emit: Emit) -> None:
            failure: list[EngineError] = []

            def on_chunk(chunk: dict[str, Any]) -> bool:
                try:
                    text = _chunk_text(chunk)
                except EngineError as exc:
                    failure.append(exc)
                    return True
                return emit(text)  # empty deltas still give the reader a chance to stop us

            with self._lock:  # a cancelled request finishes its current token before the next starts
                self._server.handle_chat_completions(request, on_chunk)
            if failure:
                raise failure[0]

        return produce

    def stream_json(
        self, messages: list[ChatMessage], schema: dict[str, Any], cancel: threading.Event | None, max_tokens: int
    ) -> Iterator[str]:
        """Like `stream_chat` at temperature 0, but the reply is held to the JSON `schema`."""
        produce = self._producer(as_dicts(messages), max_tokens, 0.0, schema)
        return (token for token in pump_tokens(produce, cancel) if token)

    def warm(self, messages: list[ChatMessage]) -> None:
        """Prefill the prompt (system prompt and goal) so the first real turn only adds its words."""
        with self._lock:
            reply = self._server.handle_chat_completions(self._request(as_dicts(messages), 1, 0.0, stream=False))
        if isinstance(reply, dict) and ("error" in reply or "choices" not in reply):
            raise EngineError(f"llama.cpp warm-up failed: {reply.get('error', reply)}")
