"""The TaskSequence kind: an ``SMS_TaskSequencePackage`` and its step tree."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from reconciler.models.base import API_VERSION, Metadata, Model, PackageRef, Text
from reconciler.models.steps import Node


class TaskSequenceType(StrEnum):
    INSTALL_OPERATING_SYSTEM = "InstallOperatingSystem"
    UPGRADE_OPERATING_SYSTEM = "UpgradeOperatingSystem"
    CAPTURE_OPERATING_SYSTEM = "CaptureOperatingSystem"
    CAPTURE_RESTORE_USER_STATE = "CaptureRestoreUserState"
    VIRTUAL_HARD_DISK = "VirtualHardDisk"
    CUSTOM = "Custom"


#: Types whose purpose is to put an operating system on a computer (high-risk material when Required).
OS_DEPLOYMENT_TYPES = frozenset({
    TaskSequenceType.INSTALL_OPERATING_SYSTEM,
    TaskSequenceType.UPGRADE_OPERATING_SYSTEM,
    TaskSequenceType.CAPTURE_OPERATING_SYSTEM,
    TaskSequenceType.VIRTUAL_HARD_DISK,
})

TEXT_LIMIT = 255


class Notification(Model):
    """Custom high-impact notification text (CustomHighImpactHeadline and the three warning texts)."""

    headline: Text = Field(max_length=TEXT_LIMIT, description="Title of the dialog, at most 255 characters.")
    body: list[Text] = Field(description="The three body texts, each at most 255 characters.")

    @model_validator(mode="after")
    def _three_texts(self) -> Notification:
        if len(self.body) != 3 or any(not t.strip() for t in self.body):
            raise PydanticCustomError(
                "notification_body",
                "needs exactly three non-empty texts (found {n}); ConfigMgr requires all three body texts "
                "when a custom notification is set",
                {"n": len([t for t in self.body if t.strip()])},
            )
        for i, text in enumerate(self.body):
            if len(text) > TEXT_LIMIT:
                raise PydanticCustomError(
                    "too_long", "text {i} is {n} characters; ConfigMgr allows at most 255",
                    {"i": i + 1, "n": len(text)},
                )
        return self


class HighImpact(Model):
    enabled: bool = Field(default=False, description="HighImpactTaskSequence: Software Center warns before running.")
    notification: Notification | None = Field(default=None, description="Custom text; needs enabled: true.")

    @model_validator(mode="after")
    def _notification_needs_high_impact(self) -> HighImpact:
        if self.notification is not None and not self.enabled:
            raise PydanticCustomError(
                "notification_without_high_impact",
                "a custom notification is only shown for a high-impact task sequence; "
                "set highImpact.enabled: true or remove highImpact.notification",
            )
        return self


class SoftwareCenter(Model):
    restart_required: bool = Field(default=False, description="Software Center says a restart is required.")
    download_size_mb: int | None = Field(default=None, alias="downloadSizeMB", ge=0)
    estimated_run_time_minutes: int | None = Field(default=None, ge=0)


class GlobalVariable(Model):
    """``<globalVarList>`` entry: a variable the sequence defines for all steps."""

    name: Text
    property: str | None = None
    value: Text = ""


class SequenceXml(Model):
    """How the sequence XML is written, kept so a sequence read from ConfigMgr or MDT is written back as read."""

    version: str = Field(default="3.10", description="<sequence version>: ConfigMgr writes 3.10, MDT 3.00.")
    attributes: dict[str, str] = Field(default_factory=dict, description="Other <sequence> attributes (MDT).")
    references: list[dict[str, str]] | None = Field(
        default=None,
        description="<referenceList> entries as read, when they differ from what the steps reference.",
    )


class TaskSequenceSpec(Model):
    name: Text = Field(max_length=50, description="Console name, at most 50 characters.")
    description: Text = Field(default="", max_length=512)
    type: TaskSequenceType = TaskSequenceType.CUSTOM
    folder: Text | None = Field(default=None, description="Console folder path such as OSD/Production.")
    enabled: bool = True
    boot_image: PackageRef | None = None
    high_impact: HighImpact = Field(default_factory=HighImpact)
    software_center: SoftwareCenter = Field(default_factory=SoftwareCenter)
    category: Text | None = None
    max_run_time_minutes: int | None = Field(default=None, ge=0, description="Duration: maximum run time.")
    global_variables: list[GlobalVariable] = Field(default_factory=list)
    steps: list[Node] = Field(default_factory=list)
    xml: SequenceXml = Field(default_factory=SequenceXml)


class TaskSequence(Model):
    """A task sequence (SMS_TaskSequencePackage): its properties and its step tree, kept equal to this manifest."""

    api_version: Literal["configmgr.gitops.io/v1alpha1"] = API_VERSION
    kind: Literal["TaskSequence"] = "TaskSequence"
    metadata: Metadata
    spec: TaskSequenceSpec
