"""Errors that reach the user as one line. The CLI prints them without a traceback."""


class GrokscopeError(Exception):
    """A problem the user can fix; the message names the fix. Exit status 1."""

    exit_code = 1


class UsageError(GrokscopeError):
    """Bad command-line input or configuration. Exit status 2."""

    exit_code = 2


class CorruptFileError(GrokscopeError):
    """A file in a run directory is truncated or unreadable."""


class DiskFullError(GrokscopeError):
    """A write failed for want of space (or a file-size or quota limit); nothing was half written."""
