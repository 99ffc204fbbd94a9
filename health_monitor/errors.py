"""User-facing errors: the CLI prints these as one line, never as a traceback."""

from __future__ import annotations


class HealthMonitorError(Exception):
    """A problem the user can fix (bad input, missing table, missing Java, ...).

    The message must be one line that says what is wrong and, where possible, what to do.
    """


class TableBusyError(HealthMonitorError):
    """Another local process holds the writer lock of a table."""
