"""Manifest kinds (``apiVersion: configmgr.gitops.io/v1alpha1``) as pydantic v2 models."""

from __future__ import annotations

from reconciler.models.base import API_VERSION, CollectionRef, Metadata, Model, PackageRef, SecretSource
from reconciler.models.deployment import TaskSequenceDeployment
from reconciler.models.distribution import ContentDistribution
from reconciler.models.steps import GenericStep, Group, StepBase, iter_steps
from reconciler.models.tasksequence import TaskSequence, TaskSequenceSpec, TaskSequenceType
from reconciler.models.variables import CollectionVariables, ComputerVariables

Manifest = TaskSequence | TaskSequenceDeployment | ContentDistribution | CollectionVariables | ComputerVariables

KINDS: dict[str, type[Model]] = {
    "TaskSequence": TaskSequence,
    "TaskSequenceDeployment": TaskSequenceDeployment,
    "ContentDistribution": ContentDistribution,
    "CollectionVariables": CollectionVariables,
    "ComputerVariables": ComputerVariables,
}

__all__ = [
    "API_VERSION",
    "KINDS",
    "CollectionRef",
    "CollectionVariables",
    "ComputerVariables",
    "ContentDistribution",
    "GenericStep",
    "Group",
    "Manifest",
    "Metadata",
    "PackageRef",
    "SecretSource",
    "StepBase",
    "TaskSequence",
    "TaskSequenceDeployment",
    "TaskSequenceSpec",
    "TaskSequenceType",
    "iter_steps",
]
