"""Which paths a `.dockerignore` keeps out of the build context, by Docker's matching rules.

A pattern matches a path or any of its parent directories; `*` and `?` stay within one path
segment, `**` spans any number of them; `!` lets back in what an earlier pattern left out, and
the last pattern that matches decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class IgnoreRule:
    """One line of a `.dockerignore`."""

    regex: re.Pattern[str]
    admits: bool


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """The regular expression a `.dockerignore` pattern stands for."""
    parts: list[str] = []
    rest = pattern.strip("/")
    while rest:
        for token, regex in (("**/", "(?:.*/)?"), ("**", ".*"), ("*", "[^/]*"), ("?", "[^/]")):
            if rest.startswith(token):
                parts.append(regex)
                rest = rest[len(token) :]
                break
        else:
            end = rest.index("]") + 1 if rest.startswith("[") else 1
            parts.append(rest[:end] if end > 1 else re.escape(rest[0]))
            rest = rest[end:]
    return re.compile("".join(parts))


def parse_dockerignore(text: str) -> list[IgnoreRule]:
    """The rules of a `.dockerignore`, in order."""
    rules: list[IgnoreRule] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        admits = line.startswith("!")
        rules.append(IgnoreRule(pattern_regex(line.removeprefix("!").strip()), admits))
    return rules


def is_excluded(path: str, rules: list[IgnoreRule]) -> bool:
    """True when `path` (relative to the context, `/`-separated) is left out of the context."""
    segments = path.strip("/").split("/")
    candidates = ["/".join(segments[: end + 1]) for end in range(len(segments))]
    excluded = False
    for rule in rules:
        if any(rule.regex.fullmatch(candidate) for candidate in candidates):
            excluded = not rule.admits
    return excluded
