"""Guardrails the plan enforces against the live inventory, as ConfigMgr itself does or warns.

High-risk deployment verification follows the site's own settings (default size, maximum size,
collections with site system servers). A deployment is high risk when it is Required and its task
sequence deploys an operating system or is marked high impact; such a deployment may target only
custom collections or All Unknown Computers, never All Systems or another built-in collection.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.models.deployment import ContentAccess, Purpose, TaskSequenceDeployment
from reconciler.rules import ObjectFacts
from reconciler.site.records import Collection, Package, VerificationSettings

ALL_UNKNOWN_COMPUTERS = "SMS000US"


@dataclass(frozen=True, slots=True)
class HighRisk:
    """Why a deployment is high risk and what the verification found; shown in every plan format."""

    reasons: tuple[str, ...]
    collection_id: str
    collection_name: str
    member_count: int
    acknowledged: bool
    needs_acknowledgement: bool
    site_systems: bool

    def to_json(self) -> dict[str, object]:
        return {"reasons": list(self.reasons), "collection": self.collection_id,
                "collection_name": self.collection_name, "member_count": self.member_count,
                "acknowledged": self.acknowledged, "needs_acknowledgement": self.needs_acknowledgement,
                "site_systems": self.site_systems}


@dataclass(frozen=True, slots=True)
class Violation:
    path: tuple[str | int, ...]
    message: str
    rule: str


def high_risk_reasons(deployment: TaskSequenceDeployment, ts: ObjectFacts) -> tuple[str, ...]:
    if deployment.spec.purpose is not Purpose.REQUIRED:
        return ()
    reasons = []
    if ts.deploys_os:
        reasons.append("Required deployment of a task sequence that deploys an operating system")
    if ts.high_impact:
        reasons.append("Required deployment of a high-impact task sequence")
    return tuple(reasons)


def evaluate_high_risk(deployment: TaskSequenceDeployment, ts: ObjectFacts, collection: Collection,
                       settings: VerificationSettings) -> tuple[HighRisk | None, list[Violation]]:
    reasons = high_risk_reasons(deployment, ts)
    if not reasons:
        return None, []
    acknowledged = deployment.spec.high_risk.acknowledge
    violations: list[Violation] = []
    needs_ack = False
    size = collection.member_count
    where = ("spec", "collection")
    if collection.built_in and collection.id != ALL_UNKNOWN_COMPUTERS:
        violations.append(Violation(where, (
            f"a high-risk deployment cannot target the built-in collection {collection.name!r} ({collection.id}); "
            "ConfigMgr allows only custom collections and All Unknown Computers. Deploy to a custom collection "
            "(there is no override)"), "high-risk-built-in"))
    if settings.maximum_size and size > settings.maximum_size:
        violations.append(Violation(where, (
            f"collection {collection.name!r} has {size} members, more than the site's maximum size for high-risk "
            f"deployments ({settings.maximum_size}); target a smaller collection"), "high-risk-maximum-size"))
    elif settings.default_size and size > settings.default_size:
        needs_ack = True
        if not acknowledged:
            violations.append(Violation(("spec", "highRisk", "acknowledge"), (
                f"collection {collection.name!r} has {size} members, more than the site's default size for "
                f"high-risk deployments ({settings.default_size}); verify the target, then set "
                "spec.highRisk.acknowledge: true"), "high-risk-size"))
    if collection.has_site_systems:
        if settings.site_systems == "block":
            violations.append(Violation(where, (
                f"collection {collection.name!r} contains site system servers; the site blocks high-risk "
                "deployments to such collections"), "high-risk-site-systems"))
        else:
            needs_ack = True
            if not acknowledged:
                violations.append(Violation(("spec", "highRisk", "acknowledge"), (
                    f"collection {collection.name!r} contains site system servers; verify the target, then set "
                    "spec.highRisk.acknowledge: true"), "high-risk-site-systems"))
    risk = HighRisk(reasons, collection.id, collection.name, size, acknowledged, needs_ack,
                    collection.has_site_systems)
    return risk, violations


def run_from_dp_violations(deployment: TaskSequenceDeployment, packages: list[Package]) -> list[Violation]:
    """"Run from distribution point" needs every referenced package on a package share."""
    if deployment.spec.content.access is not ContentAccess.RUN_FROM_DISTRIBUTION_POINT:
        return []
    missing = [p for p in packages if not p.share_enabled]
    if not missing:
        return []
    listing = ", ".join(f"{p.id} ({p.name})" for p in missing)
    return [Violation(("spec", "content", "access"), (
        f"RunFromDistributionPoint needs every referenced package to use a package share; these do not: "
        f"{listing}. Enable the package share on them or use DownloadWhenNeeded"), "run-from-dp-share")]
