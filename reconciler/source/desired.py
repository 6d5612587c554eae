"""What loading produces: the DesiredState (valid objects, findings, counts) and each LoadedObject in it.

Downstream of the loader (validate, plan, review, effective variables) only these are read; a finding's
field is located in its file lazily, when a rule asks, through :meth:`DesiredState.locate`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from reconciler.errors import Finding, ReconcilerError, Source
from reconciler.models import KINDS, Manifest
from reconciler.rules import ObjectFacts, examine
from reconciler.source.yamlfile import Locator, YamlProblem

#: Characters of manifest text a DesiredState keeps for locating fields (a Locator holds about twice its text);
#: the file asked about last is kept whatever its size, so a file is read once per run of questions about it.
LOCATOR_BUDGET = 8_000_000


@dataclass(frozen=True, slots=True)
class LoadedObject:
    """A validated manifest and where it came from.

    The manifest is kept as its validated JSON and rebuilt on first use: a plan touches the models
    of the objects that changed, and a large repository then costs memory and time for those only.
    """

    kind: str
    name: str
    source: Source
    doc_index: int
    #: Hash of the document as read; equal documents have equal fingerprints (a plan's fast path).
    fingerprint: str
    payload: bytes
    facts: ObjectFacts = field(default_factory=ObjectFacts)
    cell: list[Manifest] = field(default_factory=list, compare=False, repr=False)

    @classmethod
    def of(cls, manifest: Manifest, source: Source, doc_index: int = 0, fingerprint: str = "",
           facts: ObjectFacts | None = None) -> LoadedObject:
        return cls(manifest.kind, manifest.metadata.name, source, doc_index, fingerprint,
                   manifest.model_dump_json(by_alias=True).encode("utf-8"), facts or examine(manifest)[0])

    @property
    def manifest(self) -> Manifest:
        if not self.cell:
            self.cell.append(KINDS[self.kind].model_validate_json(self.payload))  # type: ignore[arg-type]
        return self.cell[0]

    def __getstate__(self) -> tuple[object, ...]:
        # The parse cache stores objects without their rebuilt model.
        return (self.kind, self.name, self.source, self.doc_index, self.fingerprint, self.payload, self.facts)

    def __setstate__(self, state: tuple[object, ...]) -> None:
        for name, value in zip(("kind", "name", "source", "doc_index", "fingerprint", "payload", "facts"), state,
                               strict=True):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "cell", [])

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass
class DesiredState:
    objects: list[LoadedObject] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    files: int = 0
    documents: int = 0
    parsed: int = 0  # files actually parsed (the others came from the parse cache)
    #: returns the text of a file by its display name, for locating fields lazily
    read_text: Callable[[str], str] | None = None
    #: files and folders that could not be read, each also an error finding: nothing may be planned without them
    unread: list[str] = field(default_factory=list)
    #: file texts for locating fields, by display name, most recently used last (see LOCATOR_BUDGET)
    _locators: OrderedDict[str, Locator] = field(default_factory=OrderedDict, init=False, repr=False,
                                                 compare=False)

    def of_kind(self, kind: str) -> list[LoadedObject]:
        return [o for o in self.objects if o.kind == kind]

    def locate(self, obj: LoadedObject, path: tuple[str | int, ...]) -> Source:
        """The source of a field inside an object's document (falls back to the document start).

        Rules report per object (a warning on each of a thousand deployments in one file), so a file's text
        is read once and kept while the state lives (within LOCATOR_BUDGET), and only the object's own
        document is composed.
        """
        if self.read_text is None:
            return obj.source
        where = self._locator(obj.source.file).locate(obj.doc_index, path, obj.source.line)
        if where is None:
            return obj.source
        return Source(obj.source.file, where[0], where[1])

    def _locator(self, file: str) -> Locator:
        if self._locators:
            last_file, last = next(reversed(self._locators.items()))
            if last_file != file:
                last.release()  # composed nodes are kept for one file at a time
        locator = self._locators.get(file)
        if locator is not None:
            self._locators.move_to_end(file)
            return locator
        try:
            locator = Locator(self.read_text(file))  # type: ignore[misc]
        except (OSError, KeyError, YamlProblem, ReconcilerError):
            locator = Locator("")  # changed or gone since loading: sources fall back to the document start
        self._locators[file] = locator
        kept = sum(len(k.text) for k in self._locators.values())
        while kept > LOCATOR_BUDGET and len(self._locators) > 1:
            _, dropped = self._locators.popitem(last=False)
            kept -= len(dropped.text)
        return locator
