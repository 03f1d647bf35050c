"""Reading a Dockerfile into instructions and stages, enough for the deploy tests."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class Instruction:
    """One instruction: its keyword (upper case) and the rest of its logical line."""

    keyword: str
    rest: str

    def words(self) -> list[str]:
        """The arguments: a JSON (exec form) array as is, else split like a shell would."""
        if self.rest.startswith("["):
            words: list[str] = json.loads(self.rest)
            return words
        return shlex.split(self.rest)


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order; comments dropped and `\\` continuation lines joined."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        instructions.append(Instruction(keyword.upper(), " ".join(rest.split())))
        pending = ""
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """The build stages, each starting with its FROM."""
    result: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def env_of(stage: list[Instruction]) -> dict[str, str]:
    """The `ENV key=value` settings of a stage (later ones win)."""
    env: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            for word in instruction.words():
                key, _, value = word.partition("=")
                env[key] = value
    return env
