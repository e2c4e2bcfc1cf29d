"""The JSON Schemas that ship in the package, and validators for them."""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import jsonschema
import orjson


@functools.cache
def load(name: str) -> dict[str, Any]:
    """A shipped schema by name: ``"trace"`` or ``"patch"``."""
    path = resources.files("trace_store.document").joinpath(f"schemas/{name}.schema.json")
    text = path.read_bytes()
    schema: dict[str, Any] = orjson.loads(text)
    return schema


@functools.cache
def validator(name: str) -> jsonschema.protocols.Validator:
    """A cached validator for a shipped schema."""
    schema = load(name)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    checker: jsonschema.protocols.Validator = cls(schema)
    return checker


def validate(name: str, document: Any) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``document`` matches the schema."""
    validator(name).validate(document)
