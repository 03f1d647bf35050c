"""OpenAI payload helpers as tables: request bodies in, decisions and rewritten bodies out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from smartqueue.openai_format import (
    assemble_completion,
    transcript_is_complete,
    wants_stream,
    with_model,
)


def sse_transcript(*chunks: dict[str, Any], done: bool = True, newline: bytes = b"\n") -> bytes:
    """A streamed answer: one `data:` event per chunk, then `[DONE]`."""
    events = [b"data: " + json.dumps(chunk).encode() for chunk in chunks]
    events += [b"data: [DONE]"] if done else []
    return b"".join(event + newline * 2 for event in events)


CHAT_HEAD = {"id": "c1", "object": "chat.completion.chunk", "created": 7, "model": "m"}
TEXT_HEAD = {"id": "t1", "object": "text_completion", "created": 8, "model": "m"}
USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
CHAT = sse_transcript(
    {**CHAT_HEAD, "choices": [{"index": 0, "delta": {"role": "assistant"}}]},
    {**CHAT_HEAD, "choices": [{"index": 0, "delta": {"content": "Hel"}}]},
    {**CHAT_HEAD, "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]},
    {**CHAT_HEAD, "choices": [], "usage": USAGE},
)
TEXT = sse_transcript(
    {**TEXT_HEAD, "choices": [{"index": 1, "text": "b"}]},
    {**TEXT_HEAD, "choices": [{"index": 0, "text": "a", "finish_reason": "length"}]},
)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"stream": true}', True),
        (b'{"stream": false}', False),
        (b'{"messages": []}', False),
        (b'{"stream": "true"}', False),
        (b'{"stream": 1}', False),
        (b"[true]", False),
        (b"not json", False),
    ],
)
def test_wants_stream_only_for_a_json_true(payload: bytes, expected: bool) -> None:
    assert wants_stream(payload) is expected


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param(b'{"model": "any", "n": 1}', b'{"model":"gpu-model","n":1}', id="replaced"),
        pytest.param(b'{"n": 1}', b'{"n":1,"model":"gpu-model"}', id="added"),
        pytest.param(b"[1, 2]", b"[1, 2]", id="array-unchanged"),
        pytest.param(b"not json", b"not json", id="non-json-unchanged"),
    ],
)
def test_with_model_sets_the_gpu_model_in_json_objects_only(
    payload: bytes, expected: bytes
) -> None:
    assert with_model(payload, "gpu-model") == expected


@pytest.mark.parametrize(
    ("transcript", "expected"),
    [
        pytest.param(
            CHAT,
            {"id": "c1", "object": "chat.completion", "created": 7, "model": "m",
             "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"},
                          "finish_reason": "stop"}],
             "usage": USAGE},
            id="chat",
        ),
        pytest.param(
            TEXT,
            {"id": "t1", "object": "text_completion", "created": 8, "model": "m",
             "choices": [{"index": 0, "text": "a", "finish_reason": "length"},
                         {"index": 1, "text": "b", "finish_reason": None}],
             "usage": None},
            id="text-choices-in-index-order",
        ),
        pytest.param(CHAT.replace(b"\n", b"\r\n"), assemble_completion(CHAT), id="crlf"),
        pytest.param(b"data: junk\n\n" + CHAT, assemble_completion(CHAT), id="junk-skipped"),
        pytest.param(b"data: [DONE]\n\n", None, id="only-done"),
        pytest.param(b"", None, id="empty"),
    ],
)  # fmt: skip
def test_assemble_completion_builds_one_answer_from_a_stream(
    transcript: bytes, expected: dict[str, Any] | None
) -> None:
    assert assemble_completion(transcript) == expected


@pytest.mark.parametrize(
    ("transcript", "expected"),
    [
        pytest.param(CHAT, True, id="ends-with-done"),
        pytest.param(CHAT.replace(b"\n", b"\r\n"), True, id="crlf"),
        pytest.param(CHAT.rstrip(b"\n"), True, id="without-final-blank-line"),
        pytest.param(b"data:[DONE]\n\n", True, id="no-space-after-colon"),
        pytest.param(sse_transcript(CHAT_HEAD, done=False), False, id="cut-short"),
        pytest.param(
            b"data: [DONE]\n\n" + sse_transcript(CHAT_HEAD, done=False), False, id="done-not-last"
        ),
        pytest.param(b"", False, id="empty"),
    ],
)
def test_transcript_is_complete_only_when_done_is_the_last_event(
    transcript: bytes, expected: bool
) -> None:
    assert transcript_is_complete(transcript) is expected
