"""Pydantic validation errors as the one-line messages users read (fleet file, env, API)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import BaseModel, Field, ValidationError, field_validator

from smartqueue.config import (
    ENV_PREFIX,
    FleetError,
    Settings,
    describe_errors,
    describe_validation_error,
    parse_fleet,
)
from tests.unit.test_config import FLEET


class Inner(BaseModel):
    size: int = Field(ge=1)


class Outer(BaseModel):
    name: str
    items: list[Inner] = []

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


def error_of(document: dict[str, Any]) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        Outer.model_validate(document)
    return caught.value


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param({}, "name: Field required", id="missing"),
        pytest.param({"name": " "}, "name: must not be blank", id="value-error-prefix-dropped"),
        pytest.param(
            {"name": "a", "items": [{"size": 1}, {"size": 0}]},
            "items[1].size: Input should be greater than or equal to 1",
            id="index-in-brackets",
        ),
        pytest.param(
            {"name": "a", "items": {}},
            "items: Input should be a valid list",
            id="first-problem-only",
        ),
    ],
)
def test_describe_validation_error_is_where_and_what(
    document: dict[str, Any], expected: str
) -> None:
    assert describe_validation_error(error_of(document)) == expected


def test_describe_validation_error_names_the_env_var_with_a_prefix() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(max_retries="many")

    assert describe_validation_error(caught.value, env_prefix=ENV_PREFIX).startswith(
        "SMARTQUEUE_MAX_RETRIES: Input should be a valid integer"
    )


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        pytest.param(
            [{"loc": ("query", "limit"), "msg": "Input should be less than or equal to 1000"}],
            ("query.limit: Input should be less than or equal to 1000", "limit"),
            id="request-field-is-the-param",
        ),
        pytest.param(
            [{"loc": ("body", "messages", 0), "msg": "Value error, bad"}],
            ("body.messages[0]: bad", "0"),
            id="body-path",
        ),
        pytest.param([{"loc": (), "msg": "broken"}], ("broken", None), id="no-location"),
        pytest.param([{}], ("invalid value", None), id="nothing-known"),
    ],
)
def test_describe_errors_gives_the_line_and_the_param(
    errors: list[dict[str, Any]], expected: tuple[str, str | None]
) -> None:
    assert describe_errors(errors) == expected


def test_fleet_gpu_with_priority_is_refused_naming_route_order() -> None:
    document = copy.deepcopy(FLEET)
    document["gpus"][1]["priority"] = 2

    with pytest.raises(FleetError) as caught:
        parse_fleet(document, source="fleet.yaml")

    assert str(caught.value) == (
        "fleet.yaml: gpus[1]: priority is not a GPU setting: preference is the order of each"
        " route's GPUs (first listed first)"
    )
