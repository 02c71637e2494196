"""Errors of the deployment layer. Both are :class:`sim.errors.QuadhilError`s, so the command
line prints them as one line; the bridge catches :class:`PolicyInputError` from ``act`` and turns
it into a failsafe, never into a motor command."""

from __future__ import annotations

from sim.errors import QuadhilError


class PolicyFileError(QuadhilError, ValueError):
    """A .tflite policy file cannot be used: truncated, corrupt, no quadhil spec, unknown spec
    version, or tensors that disagree with the spec."""


class PolicyInputError(QuadhilError, ValueError):
    """An observation given to ``Policy.act`` has the wrong shape or dtype, or is not finite."""


class PolicyRuntimeError(QuadhilError, RuntimeError):
    """The interpreter failed while running a policy that loaded fine (the bridge fails safe)."""


class ExportRefused(QuadhilError):
    """The exporter refused to write the file: a parity or closed-loop gate failed. ``result``
    holds the figures that made it refuse."""

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result
