"""Conditions on steps and groups: the console's "Options" tab as data.

A condition is a tree. Leaves are expressions (task sequence variable, WMI query, file, folder,
registry, installed software, operating system); inner nodes are ``and`` / ``or`` / ``not``. Several
conditions at the top of a step are joined by an implicit *and*, exactly as ConfigMgr evaluates the
operands of ``SMS_TaskSequence_Condition``.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Discriminator, Field, Tag, field_validator
from pydantic_core import PydanticCustomError

from reconciler.models.base import Model, Text

VARIABLE_OPERATORS = (
    "exists", "notExists", "equals", "notEquals", "less", "lessEqual", "greater", "greaterEqual", "like",
)
_OPERATORS_FOLDED = {op.casefold(): op for op in VARIABLE_OPERATORS}


class RawElement(Model):
    """An XML element kept verbatim because the product has no typed model for it (nothing is dropped)."""

    tag: str
    attributes: dict[str, str] = Field(default_factory=dict)
    text: str | None = None
    children: list[RawElement] = Field(default_factory=list)


class VariableExpression(Model):
    name: Text = Field(description="Task sequence variable to test.")
    operator: str = Field(description="exists, notExists, equals, notEquals, less, lessEqual, greater, "
                                      "greaterEqual or like (case as written is kept).")
    value: Text | None = None
    extra: dict[str, str] = Field(default_factory=dict, description="Other expression variables, verbatim.")

    @field_validator("operator")
    @classmethod
    def _operator(cls, value: str) -> str:
        # The engine compares operator names case-insensitively; real exports contain "Equals".
        if value.casefold() not in _OPERATORS_FOLDED:
            raise PydanticCustomError(
                "operator", "'{value}' is not a variable operator; allowed: {allowed}",
                {"value": value, "allowed": ", ".join(VARIABLE_OPERATORS)},
            )
        return value


class WmiExpression(Model):
    namespace: Text | None = Field(default=None, description="WMI namespace, usually root\\cimv2.")
    query: Text
    extra: dict[str, str] = Field(default_factory=dict)


class FileExpression(Model):
    path: Text
    version: Text | None = None
    version_operator: str | None = None
    date_time: Text | None = None
    date_time_operator: str | None = None
    extra: dict[str, str] = Field(default_factory=dict)


class FolderExpression(Model):
    path: Text
    date_time: Text | None = None
    date_time_operator: str | None = None
    extra: dict[str, str] = Field(default_factory=dict)


class RegistryExpression(Model):
    key_path: Text
    operator: str | None = None
    type: str | None = None
    value: Text | None = None
    data: Text | None = None
    extra: dict[str, str] = Field(default_factory=dict)


class SoftwareExpression(Model):
    product_code: Text | None = None
    product_name: Text | None = None
    upgrade_code: Text | None = None
    version: Text | None = None
    operator: str | None = None
    extra: dict[str, str] = Field(default_factory=dict)


class GenericExpression(Model):
    """An expression type the product does not model; its variables are kept by name."""

    type: str
    variables: dict[str, str] = Field(default_factory=dict)


class OsPlatform(Model):
    """One ``<osExpressionGroup>``: a platform such as "All x64 Windows 10 and higher Clients"."""

    name: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
    children: list[RawElement] = Field(default_factory=list)


class OsCondition(Model):
    """``<osConditionGroup>``: the console's "Operating System" condition."""

    operator: str | None = Field(default=None, description="Join of the platforms, usually 'or'.")
    platforms: list[OsPlatform] = Field(default_factory=list)
    attributes: dict[str, str] = Field(default_factory=dict)


class VariableCondition(Model):
    variable: VariableExpression


class WmiCondition(Model):
    wmi: WmiExpression


class FileCondition(Model):
    file: FileExpression


class FolderCondition(Model):
    folder: FolderExpression


class RegistryCondition(Model):
    registry: RegistryExpression


class SoftwareCondition(Model):
    software: SoftwareExpression


class GenericCondition(Model):
    expression: GenericExpression


class OsConditionNode(Model):
    os: OsCondition


class AndCondition(Model):
    and_: list[Condition] = Field(alias="and")


class OrCondition(Model):
    or_: list[Condition] = Field(alias="or")


class NotCondition(Model):
    not_: list[Condition] = Field(alias="not")


_CONDITION_KEYS = {
    "variable": VariableCondition,
    "wmi": WmiCondition,
    "file": FileCondition,
    "folder": FolderCondition,
    "registry": RegistryCondition,
    "software": SoftwareCondition,
    "expression": GenericCondition,
    "os": OsConditionNode,
    "and": AndCondition,
    "or": OrCondition,
    "not": NotCondition,
}


def _condition_key(value: Any) -> str | None:
    if isinstance(value, dict):
        keys = [k for k in value if k in _CONDITION_KEYS]
        return keys[0] if len(keys) == 1 else None
    for key, cls in _CONDITION_KEYS.items():
        if isinstance(value, cls):
            return key
    return None


Condition = Annotated[
    Union[tuple(Annotated[cls, Tag(key)] for key, cls in _CONDITION_KEYS.items())],  # noqa: UP007
    Discriminator(
        _condition_key,
        custom_error_type="condition_kind",
        custom_error_message="a condition is a mapping with exactly one of: " + ", ".join(_CONDITION_KEYS),
    ),
]

for _cls in (AndCondition, OrCondition, NotCondition):
    _cls.model_rebuild()


def condition_list(value: Any) -> list[Any]:
    """``condition:`` accepts one condition or a list (implicit *and*); both mean the same operands."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]
