"""The step tree of a task sequence: groups, steps, their options, conditions and settings.

Known step types get typed ``settings`` generated from :mod:`reconciler.models.steptypes`; any
other ``SMS_TaskSequence_*`` or MDT ``BDD_*`` type (or an MDT step with no type at all) is a
generic step whose ``properties`` are kept verbatim, so a sequence read from a site or an export is
written back unchanged.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from reconciler.models.base import Model, PackageRef, Secret, SecretRef, SecretSource, Text
from reconciler.models.conditions import Condition, RawElement
from reconciler.models.steptypes import (
    BY_NAME,
    BY_XML_TYPE,
    STEP_TYPES,
    ListProp,
    Prop,
    StepType,
    default_element,
)

RUN_IN = ("WinPEandFullOS", "WinPE", "FullOS")


def _one_or_many(value: Any) -> Any:
    if value is None or isinstance(value, list):
        return value
    return [value]


#: ``condition:`` is one condition or a list joined by an implicit *and*.
Conditions = Annotated[list[Condition], BeforeValidator(_one_or_many)]


class RawProperty(Model):
    """A ``<defaultVarList>`` entry kept exactly as read (or written by hand for a generic step)."""

    property: str | None = Field(default=None, description="The XML 'property' attribute.")
    variable: str | None = Field(default=None, description="The XML 'name' attribute (task sequence variable).")
    value: Text | None = Field(default=None, description="Text of the property.")
    value_from: SecretSource | None = Field(default=None, description="For secrets: where the value comes from.")
    hidden: bool = False

    @model_validator(mode="after")
    def _check(self) -> RawProperty:
        if self.property is None and self.variable is None:
            raise PydanticCustomError("raw_property", "give 'property', 'variable' or both")
        if self.value is not None and self.value_from is not None:
            raise PydanticCustomError("raw_property", "give 'value' or 'valueFrom', not both")
        return self


class DynamicVariable(Model):
    """One variable a Set Dynamic Variables rule assigns."""

    name: Text
    value: Text | None = None
    value_from: SecretSource | None = None
    secret: bool = Field(default=False, description="IsSecret: the value is hidden; use valueFrom.")

    @model_validator(mode="after")
    def _secret_needs_reference(self) -> DynamicVariable:
        if self.secret and self.value:
            raise PydanticCustomError(
                "plaintext_secret",
                "is a secret dynamic variable with a plaintext value; use valueFrom: {env: NAME} or {file: PATH}",
            )
        return self


class DynamicRule(Model):
    """A rule of Set Dynamic Variables: when its condition holds, its variables are set."""

    condition: Conditions | None = None
    variables: list[DynamicVariable] = Field(default_factory=list)
    extra: list[RawElement] = Field(default_factory=list, description="Other rule content, verbatim.")


_KIND_TYPES: dict[str, Any] = {
    "str": Text,
    "bool": bool,
    "int": int,
    "codes": list[int],
    "package": PackageRef | Literal[""],
    "textsecret": Text | SecretRef,
    "secret": Secret,
    "script": Text,
    "rules": list[DynamicRule],
    "app": Text,
}


def _field_type(prop: Prop) -> Any:
    if prop.choices:  # "" is how a step says "not set"
        return Literal[(*prop.choices, "")] | None  # type: ignore[valid-type]
    return _KIND_TYPES[prop.kind] | None


def _camel_to_snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and (not name[i - 1].isupper() or (i + 1 < len(name) and name[i + 1].islower())):
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def _register(model: type[Model]) -> type[Model]:
    """Generated models live in this module by name, so they pickle (the parse cache stores them)."""
    model.__module__ = __name__
    globals()[model.__name__] = model
    return model


def _list_item_model(step: StepType, lp: ListProp) -> type[Model]:
    fields: dict[str, Any] = {
        _camel_to_snake(p.field): (_field_type(p), Field(default=None, alias=p.field, description=p.doc or None))
        for p in lp.items
    }
    return _register(create_model(f"{step.name}{lp.field[0].upper()}{lp.field[1:]}Item", __base__=Model, **fields))


def _settings_model(step: StepType) -> type[Model]:
    fields: dict[str, Any] = {}
    for p in step.props:
        fields[_camel_to_snake(p.field)] = (
            _field_type(p),
            Field(default=None, alias=p.field, description=p.doc or f"ConfigMgr property {p.property}."),
        )
    for lp in step.lists:
        item = _list_item_model(step, lp)
        fields[_camel_to_snake(lp.field)] = (list[item] | None, Field(default=None, alias=lp.field,  # type: ignore[valid-type]
                                                                     description=lp.doc or None))
    model = create_model(f"{step.name}Settings", __base__=Model, **fields)
    model.__doc__ = f"Settings of the '{step.title}' step ({step.xml_type})."
    return _register(model)


SETTINGS_MODELS: dict[str, type[Model]] = {t.name: _settings_model(t) for t in STEP_TYPES}


class StepOptions(Model):
    """What every step and group shares: name, description, enabled state, error handling, condition."""

    description: Text = ""
    disabled: bool = Field(default=False, description="Step is disabled in the editor and skipped.")
    continue_on_error: bool = Field(default=False, description="The sequence goes on when this fails.")
    condition: Conditions | None = Field(default=None, description="One condition, or a list (all must hold).")
    attributes: dict[str, str] = Field(default_factory=dict,
                                       description="Other XML attributes, kept verbatim.")
    extra_elements: list[RawElement] = Field(default_factory=list,
                                             description="Other XML child elements, kept verbatim.")

    @field_validator("description")
    @classmethod
    def _description_length(cls, value: str) -> str:
        if len(value) > 255:
            raise PydanticCustomError("too_long", "is {n} characters; ConfigMgr allows at most 255", {"n": len(value)})
        return value


def _check_step_name(value: str) -> str:
    if not 1 <= len(value) <= 100:
        raise PydanticCustomError(
            "step_name", "is {n} characters; a step or group name must be 1 to 100 characters", {"n": len(value)}
        )
    return value


class StepBase(StepOptions):
    """A step: one action of the sequence."""

    name: Text
    type: str | None = Field(default=None, description="Step type: a known name such as RunCommandLine, or "
                                                       "the XML type (SMS_TaskSequence_…, BDD_…).")
    element: Literal["step", "subtasksequence"] | None = Field(
        default=None, description="The XML element the step is written as, given only when it is not the one "
                                  "its type is written as (an MDT placeholder: a plain <step> of type "
                                  "SMS_TaskSequence_SubTasksequence).")
    run_in: str | None = Field(default=None, description="WinPEandFullOS, WinPE or FullOS; default by type.")
    success_codes: list[int] | None = Field(default=None, description="Exit codes that mean success.")
    retry_count: int | None = Field(default=None, ge=0)
    run_from_net: bool | None = None
    timeout: int | None = Field(default=None, ge=0, description="Maximum run time, as ConfigMgr stores it.")
    start_in: Text | None = Field(default=None, description="MDT: working folder of the step.")
    action: Text | None = Field(default=None, description="Engine command line; derived from the settings of "
                                                         "known types, kept verbatim when it differs.")
    properties: list[RawProperty] = Field(default_factory=list,
                                          description="defaultVarList entries kept verbatim.")

    _check_name = field_validator("name")(_check_step_name)

    @field_validator("element")
    @classmethod
    def _element(cls, value: str | None, info: ValidationInfo) -> str | None:
        step_type = info.data.get("type")
        default = default_element(step_type)
        if value == default:
            return None  # the type's own element is never kept, so a plan cannot show it as a change
        known = BY_NAME.get(step_type or "")
        if value is not None and known is not None:
            raise PydanticCustomError(
                "step_element", "a {t} step is always written as <{d}>; to keep a step of this type as <{v}>, "
                "give its XML type ({x}): it is then kept as a generic step",
                {"t": known.name, "d": default, "v": value, "x": known.xml_type})
        return value

    @field_validator("run_in")
    @classmethod
    def _run_in(cls, value: str | None) -> str | None:
        if value is not None and value not in RUN_IN:
            raise PydanticCustomError("run_in", "'{v}' is not allowed; use one of {a}",
                                      {"v": value, "a": ", ".join(RUN_IN)})
        return value

    @property
    def step_type(self) -> StepType | None:
        return BY_NAME.get(self.type or "")

    @property
    def xml_type(self) -> str | None:
        known = self.step_type
        return known.xml_type if known else self.type


def _typed_step(step: StepType) -> type[StepBase]:
    settings = SETTINGS_MODELS[step.name]
    model = create_model(
        f"{step.name}Step",
        __base__=StepBase,
        settings=(settings, Field(default_factory=settings, description=settings.__doc__)),
    )
    model.__doc__ = f"{step.title} ({step.xml_type})."
    return _register(model)  # type: ignore[return-value]


TYPED_STEPS: dict[str, type[StepBase]] = {t.name: _typed_step(t) for t in STEP_TYPES}


class GenericStep(StepBase):
    """A step type the product knows only generically: its properties are kept verbatim."""

    @field_validator("type")
    @classmethod
    def _known_family(cls, value: str | None) -> str | None:
        if value is None or value.startswith(("SMS_TaskSequence_", "BDD_")) or "_" in value:
            return value
        close = difflib.get_close_matches(value, list(BY_NAME), n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else (
            "; known types: " + ", ".join(sorted(BY_NAME)) + ", or an XML type such as SMS_TaskSequence_…Action"
        )
        raise PydanticCustomError("step_type", "'{v}' is not a known step type{hint}", {"v": value, "hint": hint})


class Group(StepOptions):
    """A group of steps; its condition and error handling apply to everything inside."""

    group: Text = Field(description="Name of the group.")
    expanded: bool | None = Field(default=None, description="Editor state: the group is shown expanded.")
    steps: list[Node] = Field(default_factory=list)

    _check_name = field_validator("group")(_check_step_name)


def _under_other_element(step_type: Any, element: Any) -> bool:
    """A step of a known XML type written as another element (an MDT placeholder) stays generic."""
    known = BY_XML_TYPE.get(step_type) if isinstance(step_type, str) else None
    return known is not None and element is not None and element != known.element


def _node_tag(value: Any) -> str:
    if isinstance(value, dict):
        if "group" in value:
            return "@group"
        step_type = value.get("type")
        element = value.get("element")
    elif isinstance(value, Group):
        return "@group"
    else:
        step_type = getattr(value, "type", None)
        element = getattr(value, "element", None)
    if _under_other_element(step_type, element):
        return "@generic"
    if isinstance(step_type, str):
        if step_type in BY_NAME:
            return step_type
        known = BY_XML_TYPE.get(step_type)
        if known is not None:
            return known.name
    return "@generic"


def _normalise_type(value: Any) -> Any:
    """Accept the XML type of a known step (SMS_TaskSequence_RunCommandLineAction) as its short name."""
    if isinstance(value, dict) and "group" not in value:
        known = BY_XML_TYPE.get(value.get("type") or "")
        if known is not None and not _under_other_element(value.get("type"), value.get("element")):
            value = {**value, "type": known.name}
    return value


Node = Annotated[
    Annotated[
        Union[  # noqa: UP007
            tuple(
                [Annotated[Group, Tag("@group")], Annotated[GenericStep, Tag("@generic")]]
                + [Annotated[cls, Tag(name)] for name, cls in TYPED_STEPS.items()]
            )
        ],
        Discriminator(_node_tag),
    ],
    BeforeValidator(_normalise_type),
]

Group.model_rebuild()


def iter_steps(nodes: list[Any]) -> Any:
    """Depth-first walk yielding (path, node) for groups and steps alike."""
    stack: list[tuple[tuple[int, ...], Any]] = [((i,), n) for i, n in reversed(list(enumerate(nodes)))]
    while stack:
        path, node = stack.pop()
        yield path, node
        if isinstance(node, Group):
            stack.extend(((*path, i), n) for i, n in reversed(list(enumerate(node.steps))))
