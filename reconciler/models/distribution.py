"""The ContentDistribution kind: where the content a task sequence references must be."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from reconciler.models.base import API_VERSION, CollectionRefOrName, Metadata, Model


class ContentDistributionSpec(Model):
    task_sequence: str = Field(description="metadata.name of the TaskSequence whose referenced content "
                                           "(packages, images, driver packages, applications) is distributed.")
    distribution_point_groups: list[str] = Field(default_factory=list, description="DP group names.")
    distribution_points: list[str] = Field(default_factory=list, description="DP server names (FQDN).")
    collections: list[CollectionRefOrName] = Field(
        default_factory=list, description="Collections whose associated DP groups receive the content.")

    @model_validator(mode="after")
    def _some_target(self) -> ContentDistributionSpec:
        if not (self.distribution_point_groups or self.distribution_points or self.collections):
            raise PydanticCustomError(
                "no_targets", "name at least one target: distributionPointGroups, distributionPoints or collections"
            )
        return self


class ContentDistribution(Model):
    """The distribution points and groups that must hold every package a task sequence references."""

    api_version: Literal["configmgr.gitops.io/v1alpha1"] = API_VERSION
    kind: Literal["ContentDistribution"] = "ContentDistribution"
    metadata: Metadata
    spec: ContentDistributionSpec
