"""The error type every user-facing failure in quadhil derives from.

The command line prints a :class:`QuadhilError` as one clear line and exits 2; anything else is
a bug and shows its traceback.
"""


class QuadhilError(Exception):
    """A user-facing error: bad input, a refused operation, a missing prerequisite."""


class NotAvailable(QuadhilError):
    """A command or feature that this build of quadhil does not provide yet."""
