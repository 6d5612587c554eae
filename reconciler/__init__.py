"""Declarative GitOps reconciler for Configuration Manager task sequences.

The public API is small: :func:`load` reads manifests into a desired state, :func:`validate`
checks it, and the codec functions convert task sequence XML to manifests and back.
"""

from reconciler.convert import manifest_to_xml, xml_to_manifest
from reconciler.source.loader import DesiredState, LoadedObject, load
from reconciler.validate import validate

__all__ = ["DesiredState", "LoadedObject", "load", "manifest_to_xml", "validate", "xml_to_manifest"]
