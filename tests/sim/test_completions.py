"""Pure OpenAI request parsing and body shapes."""

from __future__ import annotations

from typing import Any

import pytest

from smartqueue_sim.completions import (
    CompletionKind,
    CompletionShape,
    InvalidRequestError,
    generate_tokens,
    parse_completion_request,
)
from smartqueue_sim.latency import FinishReason


def _chat(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "x" * 40}], **fields}


def test_parse_chat_request_reads_tokens_limits_and_stream_options() -> None:
    body = _chat(max_tokens=7, stream=True, stream_options={"include_usage": True})
    parsed = parse_completion_request(CompletionKind.CHAT, body)
    assert (parsed.prompt_tokens, parsed.max_tokens) == (10 + 4, 7)
    assert parsed.stream
    assert parsed.include_usage


def test_parse_prefers_max_completion_tokens_over_max_tokens() -> None:
    body = _chat(max_tokens=7, max_completion_tokens=3)
    assert parse_completion_request(CompletionKind.CHAT, body).max_tokens == 3


def test_parse_text_request_accepts_a_list_of_strings_as_prompt() -> None:
    body = {"model": "m", "prompt": ["abcd", "efgh"]}
    assert parse_completion_request(CompletionKind.TEXT, body).prompt_tokens == 2


@pytest.mark.parametrize(
    ("kind", "body", "param"),
    [
        (CompletionKind.CHAT, [], None),
        (CompletionKind.CHAT, {"model": "m"}, "messages"),
        (CompletionKind.CHAT, {"model": "m", "messages": [{"content": "x"}]}, "messages[0]"),
        (CompletionKind.CHAT, _chat(max_tokens=0), "max_tokens"),
        (CompletionKind.CHAT, _chat(max_tokens=True), "max_tokens"),
        (CompletionKind.CHAT, _chat(stream="yes"), "stream"),
        (CompletionKind.CHAT, {"model": 3, "messages": []}, "model"),
        (CompletionKind.TEXT, {"model": "m", "prompt": 5}, "prompt"),
    ],
)
def test_parse_invalid_body_names_the_offending_field(
    kind: CompletionKind, body: object, param: str | None
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_completion_request(kind, body)
    assert caught.value.param == param


def test_generate_tokens_same_seed_and_prompt_give_the_same_text() -> None:
    first = generate_tokens(seed=1, prompt_text="hello", count=20)
    assert first == generate_tokens(seed=1, prompt_text="hello", count=20)
    assert first != generate_tokens(seed=2, prompt_text="hello", count=20)
    assert len(first) == 20


def test_chat_shape_builds_openai_bodies_and_chunks() -> None:
    request = parse_completion_request(
        CompletionKind.CHAT, _chat(stream=True, stream_options={"include_usage": True})
    )
    shape = CompletionShape(request, "chatcmpl-1", 0, "served")
    body = shape.body(["a", " b"], FinishReason.STOP)
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "a b"}
    assert body["usage"]["total_tokens"] == request.prompt_tokens + 2
    assert shape.chunk("a")["object"] == "chat.completion.chunk"
    assert shape.chunk("a")["usage"] is None
    assert shape.usage_chunk(2)["choices"] == []


def test_text_shape_puts_the_output_in_text() -> None:
    request = parse_completion_request(CompletionKind.TEXT, {"model": "m", "prompt": "p"})
    shape = CompletionShape(request, "cmpl-1", 0, "served")
    assert shape.body(["x"], FinishReason.LENGTH)["choices"][0]["text"] == "x"
    assert "usage" not in shape.chunk("x")
