"""CollectionVariables and ComputerVariables: task sequence variables set by the site."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from reconciler.models.base import (
    API_VERSION,
    CollectionRefOrName,
    Metadata,
    Model,
    SecretSource,
    Text,
    check_variable_name,
)

VALUE_LIMIT = 4000


class Variable(Model):
    """One variable; a ``hidden`` value is write-only in ConfigMgr and must come from ``valueFrom``."""

    name: str = Field(description="1-256 letters, digits, '_' or '-', starting with a letter; case-insensitive.")
    value: Text | None = Field(default=None, description="Plain value (not for hidden variables).")
    value_from: SecretSource | None = Field(
        default=None, description="Where the value comes from at apply; such a value is always written masked.")
    hidden: bool = Field(default=False, description="IsMasked: the value can be written but never read back. "
                         "True whenever valueFrom is given.")

    _name = field_validator("name")(check_variable_name)

    @model_validator(mode="before")
    @classmethod
    def _masked_from_source(cls, data: Any) -> Any:
        # A value read from a secret source is a secret: written masked, never shown by `site show`.
        if isinstance(data, dict) and "hidden" not in data and (
                data.get("valueFrom") is not None or data.get("value_from") is not None):
            return {**data, "hidden": True}
        return data

    @field_validator("hidden")
    @classmethod
    def _source_is_masked(cls, value: bool, info: ValidationInfo) -> bool:
        if not value and info.data.get("value_from") is not None:
            raise PydanticCustomError(
                "secret_masked",
                "is false, but a value read from a secret source (valueFrom) is always written masked; remove "
                "'hidden: false', or write the value in the manifest if it is not secret")
        return value

    @model_validator(mode="after")
    def _value(self) -> Variable:
        if self.value is not None and self.value_from is not None:
            raise PydanticCustomError("value_one_of", "give 'value' or 'valueFrom', not both")
        if self.value is None and self.value_from is None:
            raise PydanticCustomError("value_one_of", "give 'value' or 'valueFrom'")
        if self.hidden and self.value is not None:
            raise PydanticCustomError(
                "hidden_plaintext",
                "is hidden but has a plaintext value; secrets never live in Git: use "
                "valueFrom: {env: NAME} or valueFrom: {file: PATH}",
            )
        if self.value is not None and len(self.value) > VALUE_LIMIT:
            raise PydanticCustomError("too_long", "value is {n} characters; ConfigMgr allows at most 4000",
                                      {"n": len(self.value)})
        return self


class ComputerRef(Model):
    name: str | None = Field(default=None, description="Computer name as in the site.")
    resource_id: int | None = Field(default=None, ge=1, description="ResourceID of the device.")

    @model_validator(mode="after")
    def _one(self) -> ComputerRef:
        if (self.name is None) == (self.resource_id is None):
            raise PydanticCustomError("ref_one_of", "give exactly one of 'name' or 'resourceId'")
        return self

    def key(self) -> str:
        return f"name:{self.name.casefold()}" if self.name else f"id:{self.resource_id}"

    def __str__(self) -> str:
        return self.name if self.name else f"resource {self.resource_id}"


class CollectionVariablesSpec(Model):
    collection: CollectionRefOrName
    priority: int = Field(default=9, ge=1, le=9, description="CollectionVariablePrecedence: 1 is the highest.")
    variables: list[Variable] = Field(default_factory=list)

    @field_validator("collection")
    @classmethod
    def _not_built_in(cls, value: CollectionRefOrName) -> CollectionRefOrName:
        if value.id and value.id.startswith("SMS"):
            raise PydanticCustomError(
                "built_in_collection",
                "{id} is a built-in collection; ConfigMgr does not allow variables on built-in collections",
                {"id": value.id},
            )
        return value


class ComputerVariablesSpec(Model):
    computer: ComputerRef
    variables: list[Variable] = Field(default_factory=list)


class CollectionVariables(Model):
    """Task sequence variables of one collection (SMS_CollectionSettings), with the collection's priority."""

    api_version: Literal["configmgr.gitops.io/v1alpha1"] = API_VERSION
    kind: Literal["CollectionVariables"] = "CollectionVariables"
    metadata: Metadata
    spec: CollectionVariablesSpec


class ComputerVariables(Model):
    """Task sequence variables of one computer (SMS_MachineSettings); they beat every collection's."""

    api_version: Literal["configmgr.gitops.io/v1alpha1"] = API_VERSION
    kind: Literal["ComputerVariables"] = "ComputerVariables"
    metadata: Metadata
    spec: ComputerVariablesSpec
