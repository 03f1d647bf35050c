"""Pure OpenAI shapes: parsing completion requests and building bodies, chunks and errors."""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from smartqueue_sim.latency import FinishReason

SSE_DONE = b"data: [DONE]\n\n"
CHARS_PER_TOKEN = 4
# Each chat message costs a few tokens of template around its content.
TOKENS_PER_MESSAGE = 4
WORDS = [
    "the",
    "queue",
    "holds",
    "each",
    "job",
    "until",
    "a",
    "GPU",
    "can",
    "take",
    "it",
    "and",
    "the",
    "router",
    "picks",
    "the",
    "least",
    "loaded",
    "slot",
    "while",
    "the",
    "model",
    "streams",
    "tokens",
    "back",
    "to",
    "the",
    "client",
    "in",
    "order",
]


class CompletionKind(StrEnum):
    """Which OpenAI endpoint a request came to."""

    CHAT = "chat.completion"
    TEXT = "text_completion"


class InvalidRequestError(ValueError):
    """The request body is not a valid completion request; the message names the field."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """What the simulator needs from a completion request."""

    kind: CompletionKind
    model: str
    prompt_text: str
    prompt_tokens: int
    max_tokens: int | None
    stream: bool
    include_usage: bool


def count_tokens(text: str) -> int:
    """Approximate token count of `text` (about four characters per token)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def parse_completion_request(kind: CompletionKind, body: object) -> CompletionRequest:
    """Validate an OpenAI chat or text completion body."""
    if not isinstance(body, dict):
        raise InvalidRequestError("request body must be a JSON object")
    model = body.get("model", "")
    if not isinstance(model, str):
        raise InvalidRequestError("'model' must be a string", param="model")
    if kind is CompletionKind.CHAT:
        prompt_text, prompt_tokens = _chat_prompt(body.get("messages"))
    else:
        prompt_text = _text_prompt(body.get("prompt"))
        prompt_tokens = max(1, count_tokens(prompt_text))
    return CompletionRequest(
        kind=kind,
        model=model,
        prompt_text=prompt_text,
        prompt_tokens=prompt_tokens,
        max_tokens=_max_tokens(body),
        stream=_flag(body, "stream"),
        include_usage=_include_usage(body),
    )


def _chat_prompt(messages: object) -> tuple[str, int]:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("'messages' must be a non-empty array", param="messages")
    texts = [_message_text(message, index) for index, message in enumerate(messages)]
    tokens = sum(count_tokens(text) + TOKENS_PER_MESSAGE for text in texts)
    return "\n".join(texts), tokens


def _message_text(message: object, index: int) -> str:
    param = f"messages[{index}]"
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        raise InvalidRequestError(f"{param} must be an object with a 'role'", param=param)
    content = message.get("content")
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    raise InvalidRequestError(f"{param}.content must be a string or an array", param=param)


def _text_prompt(prompt: object) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and all(isinstance(part, str) for part in prompt):
        return "".join(prompt)
    raise InvalidRequestError("'prompt' must be a string or an array of strings", param="prompt")


def _max_tokens(body: dict[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidRequestError(f"'{name}' must be a positive integer", param=name)
        return value
    return None


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise InvalidRequestError(f"'{name}' must be a boolean", param=name)
    return value


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise InvalidRequestError("'stream_options' must be an object", param="stream_options")
    return _flag(options, "include_usage")


def generate_tokens(*, seed: int, prompt_text: str, count: int) -> list[str]:
    """Deterministic output tokens for a prompt: the same seed and prompt give the same text."""
    rng = random.Random(f"{seed}:{prompt_text}")
    return [f" {rng.choice(WORDS)}" if index else rng.choice(WORDS) for index in range(count)]


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """OpenAI usage object."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def error_body(message: str, *, error_type: str, code: int, param: str | None = None) -> Any:
    """OpenAI error body (llama.cpp and vLLM use the same shape)."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def sse_event(data: Any) -> bytes:
    """One server-sent event carrying `data` as JSON."""
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@dataclass(frozen=True, slots=True)
class CompletionShape:
    """Builds the bodies of one completion: id, creation time and served model fixed."""

    request: CompletionRequest
    completion_id: str
    created: int
    model: str

    def _envelope(self, *, chunk: bool) -> dict[str, Any]:
        kind = self.request.kind
        obj = f"{kind}.chunk" if chunk and kind is CompletionKind.CHAT else str(kind)
        return {
            "id": self.completion_id,
            "object": obj,
            "created": self.created,
            "model": self.model,
        }

    def _choice(self, text: str, finish: FinishReason | None, *, chunk: bool) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": finish}
        if self.request.kind is CompletionKind.TEXT:
            choice["text"] = text
        elif chunk:
            choice["delta"] = {"content": text} if text else {}
        else:
            choice["message"] = {"role": "assistant", "content": text}
        return choice

    def body(self, tokens: list[str], finish: FinishReason) -> dict[str, Any]:
        """The non-streamed answer."""
        answer = self._envelope(chunk=False)
        answer["choices"] = [self._choice("".join(tokens), finish, chunk=False)]
        answer["usage"] = usage(self.request.prompt_tokens, len(tokens))
        return answer

    def chunk(self, text: str, finish: FinishReason | None = None) -> dict[str, Any]:
        """One streamed chunk with `text` (and the finish reason on the last one)."""
        answer = self._envelope(chunk=True)
        answer["choices"] = [self._choice(text, finish, chunk=True)]
        if self.request.include_usage:
            answer["usage"] = None
        return answer

    def role_chunk(self) -> dict[str, Any]:
        """The first chat chunk, announcing the assistant role."""
        answer = self.chunk("")
        answer["choices"][0]["delta"] = {"role": "assistant", "content": ""}
        return answer

    def usage_chunk(self, completion_tokens: int) -> dict[str, Any]:
        """The last chunk under `stream_options.include_usage`: usage and no choices."""
        answer = self._envelope(chunk=True)
        answer["choices"] = []
        answer["usage"] = usage(self.request.prompt_tokens, completion_tokens)
        return answer
