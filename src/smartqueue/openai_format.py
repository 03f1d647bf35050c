"""Pure handling of OpenAI wire formats: request bodies and streamed (SSE) answers."""

from __future__ import annotations

import json
from typing import Any

from smartqueue.sse import event_data, is_done, split_events


def parse_json_object(payload: bytes) -> dict[str, Any] | None:
    """The payload as a JSON object, or None when it is something else."""
    try:
        document = json.loads(payload)
    except (ValueError, RecursionError):  # RecursionError: nested too deep to parse
        return None
    return document if isinstance(document, dict) else None


def wants_stream(payload: bytes) -> bool:
    """True when the request asks for a streamed completion (`"stream": true`)."""
    document = parse_json_object(payload)
    return bool(document and document.get("stream") is True)


def with_model(payload: bytes, model: str) -> bytes:
    """The request with `model` set to the GPU's served model (other bodies pass unchanged).

    Raises RecursionError for JSON nested too deep to parse: such a request cannot be built.
    """
    try:
        document = json.loads(payload)
    except ValueError:
        return payload
    if not isinstance(document, dict):
        return payload
    document["model"] = model
    return json.dumps(document, separators=(",", ":")).encode()


def transcript_is_complete(transcript: bytes) -> bool:
    """True when an SSE transcript ends with `data: [DONE]`."""
    events, _ = split_events(transcript + b"\n\n")
    return bool(events) and is_done(events[-1])


def assemble_completion(transcript: bytes) -> dict[str, Any] | None:
    """One non-streamed completion object built from a streamed transcript (None if empty)."""
    chunks = _chunks(transcript)
    if not chunks:
        return None
    first = chunks[0]
    is_chat = str(first.get("object", "")).startswith("chat.")
    choices: dict[int, dict[str, Any]] = {}
    usage = None
    for chunk in chunks:
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            _merge_choice(choices, choice, is_chat=is_chat)
    return {
        "id": first.get("id"),
        "object": "chat.completion" if is_chat else "text_completion",
        "created": first.get("created"),
        "model": first.get("model"),
        "choices": [choices[index] for index in sorted(choices)],
        "usage": usage,
    }


USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")


def usage_tokens(body: bytes, *, streamed: bool) -> dict[str, int]:
    """The token counts of an answer's `usage` (a streamed one's last usage chunk); {} if none."""
    if streamed:
        usage = next((c["usage"] for c in reversed(_chunks(body)) if c.get("usage")), None)
    else:
        usage = (parse_json_object(body) or {}).get("usage")
    if not isinstance(usage, dict):
        return {}
    return {name: usage[name] for name in USAGE_FIELDS if isinstance(usage.get(name), int)}


def _chunks(transcript: bytes) -> list[dict[str, Any]]:
    events, _ = split_events(transcript + b"\n\n")
    chunks = []
    for event in events:
        document = None if is_done(event) else parse_json_object(event_data(event))
        if document is not None:
            chunks.append(document)
    return chunks


def _merge_choice(
    choices: dict[int, dict[str, Any]], choice: dict[str, Any], *, is_chat: bool
) -> None:
    index = int(choice.get("index", 0))
    merged = choices.setdefault(index, _empty_choice(index, is_chat=is_chat))
    if is_chat:
        delta = choice.get("delta") or {}
        merged["message"]["content"] += delta.get("content") or ""
        merged["message"]["role"] = delta.get("role") or merged["message"]["role"]
    else:
        merged["text"] += choice.get("text") or ""
    merged["finish_reason"] = choice.get("finish_reason") or merged["finish_reason"]


def _empty_choice(index: int, *, is_chat: bool) -> dict[str, Any]:
    if is_chat:
        return {"index": index, "message": {"role": "assistant", "content": ""},
                "finish_reason": None}  # fmt: skip
    return {"index": index, "text": "", "finish_reason": None}
