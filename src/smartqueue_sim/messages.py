"""One-line messages for what the sim refuses (bad options, bad fleet or profile files)."""

from __future__ import annotations

from pydantic import ValidationError

from smartqueue.config import describe_validation_error


def one_line(error: Exception) -> str:
    """The first line saying what is wrong, for any error the sim reports to its user."""
    if isinstance(error, ValidationError):
        return describe_validation_error(error)
    return str(error).splitlines()[0]
