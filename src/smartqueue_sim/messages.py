"""One-line messages for what the sim refuses (bad options, bad fleet or profile files).

`describe_validation_error` has the signature of the one `smartqueue.config` is to offer; once
that one is public, the sim can import it from there (a fleet-file helper) instead.
"""

from __future__ import annotations

from pydantic import ValidationError


def describe_validation_error(error: ValidationError) -> str:
    """`field.path: message` of the first error, instead of pydantic's multi-line report."""
    first = error.errors()[0]
    where = "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]
    ).lstrip(".")
    message = first["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def one_line(error: Exception) -> str:
    """The first line saying what is wrong, for any error the sim reports to its user."""
    if isinstance(error, ValidationError):
        return describe_validation_error(error)
    return str(error).splitlines()[0]
