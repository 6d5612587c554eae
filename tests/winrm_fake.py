"""A stand-in for a WinRM host at exactly the seam pypsrp gives: its ``RunspacePool`` and ``PowerShell``.

The code under test builds real ``pypsrp.powershell.PowerShell`` objects (``add_cmdlet``, ``add_parameters``,
``add_script`` make real ``Command`` / ``CommandParameter`` objects); only the wire is replaced: where pypsrp would
fragment the ``CreatePipeline`` message and send it over WSMan, :class:`FakePowerShell` serializes the message
with pypsrp's own serializer (the XML that would travel), records each command with its typed parameters, and
answers as pypsrp's receive loop would leave the object: ``output``, ``streams.error`` holding real
``ErrorRecordMessage`` objects, ``had_errors`` set when the pipeline failed (a terminating error).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pypsrp.complex_objects import PSInvocationState
from pypsrp.messages import ErrorRecordMessage
from pypsrp.powershell import PowerShell
from pypsrp.serializer import Serializer


@dataclass
class Invocation:
    """One command sent: the cmdlet name or script text, whether it is a script, its parameters as sent."""

    command: str
    is_script: bool
    parameters: dict[str, Any]
    #: the serialized CreatePipeline message of the invocation (every command of the pipeline)
    xml: str


@dataclass
class Answer:
    output: list[Any] = field(default_factory=list)
    errors: list[Any] = field(default_factory=list)
    terminating: bool = True
    #: the pipeline failed without sending an error record
    failed: bool = False


def error_record(message: str, fq_error: str = "", category: int = 0, reason: str = "") -> ErrorRecordMessage:
    """An error record as pypsrp deserializes one: ToString is the exception's message."""
    record = ErrorRecordMessage(fq_error=fq_error, category=category, reason=reason,
                                message=f"{reason or 'NotSpecified'}: (:) [], {reason or 'Exception'}")
    record._to_string = message
    return record


class FakeHost:
    """What the WinRM host answers, by cmdlet name or script text; records every invocation."""

    def __init__(self) -> None:
        self.invocations: list[Invocation] = []
        self.answers: dict[str, Callable[[Invocation], Answer] | Answer] = {}
        self.opened = 0
        self.closed = 0
        self.open_error: Exception | None = None

    def answer(self, command: str, answer: Answer | Callable[[Invocation], Answer]) -> None:
        self.answers[command] = answer

    def respond(self, invocation: Invocation) -> Answer:
        answer = self.answers.get(invocation.command, Answer())
        return answer(invocation) if callable(answer) else answer

    def commands(self) -> list[str]:
        return [i.command if not i.is_script else "<script>" for i in self.invocations]

    def connect(self, options: Any) -> FakePool:
        return FakePool(self)

    def shell(self, pool: FakePool) -> FakePowerShell:
        return FakePowerShell(pool)


class FakePool:
    """The part of RunspacePool that PowerShell reads, after ``open()`` negotiated protocol 2.3."""

    apartment_state = 0
    host = None

    def __init__(self, fake: FakeHost) -> None:
        self.fake = fake
        self.protocol_version = "2.3"
        self.pipelines: dict[str, Any] = {}

    def open(self) -> None:
        if self.fake.open_error is not None:
            raise self.fake.open_error
        self.fake.opened += 1

    def close(self) -> None:
        self.fake.closed += 1


class FakePowerShell(PowerShell):
    """pypsrp's PowerShell with the wire replaced: ``_invoke`` receives the real CreatePipeline message."""

    def __init__(self, pool: FakePool) -> None:
        super().__init__(pool)  # type: ignore[arg-type]
        self.fake = pool.fake

    def _invoke(self, msg: Any) -> None:
        xml = ET.tostring(Serializer().serialize(msg), encoding="unicode")
        answer = None
        for command in self.commands:
            invocation = Invocation(command.cmd, bool(command.is_script),
                                    {p.name: p.value for p in command.args}, xml)
            self.fake.invocations.append(invocation)
            answer = self.fake.respond(invocation)
        assert answer is not None
        self.output = list(answer.output)
        self.streams.error.extend(answer.errors)
        if (answer.errors and answer.terminating) or answer.failed:
            self.state = PSInvocationState.FAILED
            self.had_errors = True
        else:
            self.state = PSInvocationState.COMPLETED
