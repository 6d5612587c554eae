"""Building blocks shared by every manifest kind: camelCase models, metadata, references, secrets."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

API_VERSION = "configmgr.gitops.io/v1alpha1"


class Model(BaseModel):
    """Base of every manifest model: camelCase in YAML, unknown fields are errors, values frozen."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        validate_default=False,
        ser_json_timedelta="iso8601",
    )


#: Free text. Pydantic's lax mode already refuses YAML booleans and numbers for strings (unquoted
#: ``yes``, ``on``, ``1.10``); the loader turns that refusal into advice to quote the value. Keeping
#: this a plain ``str`` keeps Python code off the validation fast path.
Text = str

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,251}[a-z0-9])?$"


class Metadata(Model):
    """Git identity of an object: stable across console renames, unique per kind."""

    name: str = Field(
        pattern=NAME_PATTERN,
        description="Stable Git identity: lowercase letters, digits and '-', unique per kind.",
    )
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


#: Collection and package IDs: site code and five hex digits (PS100012), or a built-in ID (SMS000US).
_ID_PATTERN = r"^[A-Z0-9]{8}$"


class PackageRef(Model):
    """Content referenced by console name (``package``) or by ConfigMgr package ID (``id``)."""

    package: str | None = Field(default=None, description="Console name of the package or image.")
    id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9]{3}[0-9A-Fa-f]{5}$",
        description="ConfigMgr package ID, for example PS100012.",
    )

    @model_validator(mode="after")
    def _one_of(self) -> PackageRef:
        if (self.package is None) == (self.id is None):
            raise PydanticCustomError("ref_one_of", "give exactly one of 'package' (console name) or 'id'")
        return self

    def key(self) -> str:
        return f"id:{self.id.upper()}" if self.id else f"name:{self.package}"

    def __str__(self) -> str:
        return self.id if self.id else repr(self.package)


def _collection_shorthand(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


class CollectionRef(Model):
    """A collection by console name or by collection ID (``SMS00001``, ``PS100021``)."""

    name: str | None = Field(default=None, description="Console name of the collection.")
    id: str | None = Field(default=None, pattern=_ID_PATTERN, description="Collection ID.")

    @model_validator(mode="after")
    def _one_of(self) -> CollectionRef:
        if (self.name is None) == (self.id is None):
            raise PydanticCustomError("ref_one_of", "give exactly one of 'name' or 'id'")
        return self

    def key(self) -> str:
        return f"id:{self.id}" if self.id else f"name:{self.name.casefold()}"  # type: ignore[union-attr]

    def __str__(self) -> str:
        return self.id if self.id else repr(self.name)


#: ``collection: OSD Lab`` is short for ``collection: {name: OSD Lab}``; the schema admits both spellings.
CollectionRefOrName = Annotated[
    CollectionRef, BeforeValidator(_collection_shorthand, json_schema_input_type=CollectionRef | str)
]

#: A schedule time as ConfigMgr keeps it: local to the client unless the schedule says UTC, so usually without
#: an offset, which JSON Schema's ``date-time`` format would reject in an editor.
ScheduleTime = Annotated[datetime, WithJsonSchema({
    "type": "string",
    "pattern": r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$",
    "examples": ["2026-12-01T20:00:00", "2026-12-01 20:00"],
})]


class SecretSource(Model):
    """Where a secret comes from at apply time; never the secret itself."""

    env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                            description="Name of an environment variable holding the value; only names the "
                                        "secrets policy allows (by default starting with OSD_ or RECONCILE_SECRET_).")
    file: str | None = Field(default=None, min_length=1,
                             description="File holding the value (one trailing line break removed): a path relative "
                                         "to the manifests folder inside its secrets folder, such as secrets/join.txt.")

    @model_validator(mode="after")
    def _one_of(self) -> SecretSource:
        if (self.env is None) == (self.file is None):
            raise PydanticCustomError("secret_one_of", "give exactly one of 'env' or 'file'")
        return self

    def __str__(self) -> str:
        return f"env:{self.env}" if self.env else f"file:{self.file}"


class SecretRef(Model):
    """``{valueFrom: {env: NAME}}`` in a password-bearing setting."""

    value_from: SecretSource


def _secret(value: Any) -> Any:
    if isinstance(value, str):
        if value == "":
            return value
        raise PydanticCustomError(
            "plaintext_secret",
            "holds a plaintext secret; secrets never live in Git: write "
            "{valueFrom: {env: NAME}} or {valueFrom: {file: PATH}}, or leave it empty",
        )
    return value


#: A password-bearing setting: empty, or a reference resolved only at apply.
Secret = Annotated[SecretRef | Literal[""], BeforeValidator(_secret)]


class ChildTaskSequenceRef(Model):
    """Another task sequence: a manifest by ``metadata.name`` or a live one by package ID."""

    name: str | None = Field(default=None, description="metadata.name of a TaskSequence manifest.")
    id: str | None = Field(default=None, pattern=_ID_PATTERN, description="Package ID of a live sequence.")

    @model_validator(mode="after")
    def _one_of(self) -> ChildTaskSequenceRef:
        if (self.name is None) == (self.id is None):
            raise PydanticCustomError("ref_one_of", "give exactly one of 'name' or 'id'")
        return self


VARIABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,255}$")


def check_variable_name(name: str) -> str:
    """ConfigMgr variable names: 1-256 letters, digits, '_' or '-', starting with a letter.

    A leading '_' marks a read-only (built-in) variable, which a collection or computer cannot set.
    """
    if name.startswith("_"):
        raise PydanticCustomError(
            "variable_read_only",
            "'{name}' starts with '_': such variables are read-only and set by ConfigMgr itself",
            {"name": name},
        )
    if not VARIABLE_NAME.match(name):
        raise PydanticCustomError(
            "variable_name",
            "'{name}' is not a valid variable name: 1-256 letters, digits, '_' or '-', starting with a letter",
            {"name": name},
        )
    return name


class _Named(Model):
    """Mixin for validators that reject blank names."""

    @field_validator("name", check_fields=False)
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("blank", "must not be blank")
        return value
