"""User-facing errors: the CLI prints these as one line, never as a traceback."""

from __future__ import annotations

import errno
import re


class HealthMonitorError(Exception):
    """A problem the user can fix (bad input, missing table, missing Java, ...).

    The message must be one line that says what is wrong and, where possible, what to do.
    """


class TableBusyError(HealthMonitorError):
    """Another local process holds the writer lock of a table."""


#: errno -> (what happened, what to do), for problems of the machine rather than of the code.
_ERRNO_ADVICE: dict[int, tuple[str, str]] = {
    errno.EACCES: ("permission denied", "check its owner and permissions, or pick another path"),
    errno.EPERM: ("operation not permitted", "check its owner and permissions, or pick another path"),
    errno.ENOENT: ("no such file or folder", "check the path (and that its folder exists)"),
    errno.EISDIR: ("is a folder, not a file", "give a file name inside it"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "check the path"),
    errno.EROFS: ("the file system is read-only", "use a writable --data-dir or output path"),
    errno.ENOSPC: ("no space left on the device", "free disk space or use --data-dir on a larger disk"),
    errno.EDQUOT: ("disk quota exceeded", "free disk space or use --data-dir on a larger disk"),
    errno.EEXIST: ("already exists", "remove it or pick another path"),
    errno.ENAMETOOLONG: ("file name too long", "use a shorter path"),
    errno.EMFILE: ("too many open files", "raise the open-file limit (ulimit -n)"),
}

#: Java-side wordings of the same problems, as Spark and Delta surface them (path captured).
_JAVA_PATTERNS: list[tuple[re.Pattern[str], int]] = [
    (re.compile(r"AccessDeniedException:\s*(\S+)"), errno.EACCES),
    (re.compile(r"(?:Mkdirs failed to create|Unable to create directory|Cannot create directory)\s+(\S+)"),
     errno.EACCES),
    (re.compile(r"(\S+?)\s*\(Permission denied\)"), errno.EACCES),
    (re.compile(r"(\S+?)\s*\(Operation not permitted\)"), errno.EPERM),
    (re.compile(r"(\S+?)\s*\((?:Read-only file system)\)"), errno.EROFS),
    (re.compile(r"(\S+?)\s*\(Is a directory\)"), errno.EISDIR),
    (re.compile(r"(\S+?)\s*\(No space left on device\)"), errno.ENOSPC),
    (re.compile(r"No space left on device()"), errno.ENOSPC),
    (re.compile(r"Read-only file system()"), errno.EROFS),
    (re.compile(r"Permission denied:?\s*(\S*)"), errno.EACCES),
]


def environment_error(exc: BaseException) -> HealthMonitorError | None:
    """The one-line error for a problem of the environment (permissions, missing or read-only
    folders, a folder where a file was expected, a full disk), or None when ``exc`` is not one.

    Understands Python's ``OSError`` and the Java wordings Spark and Delta raise for the same
    problems, so every command gets the same sentence: what, which path, what to do.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:  # the OSError may be a cause
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _ERRNO_ADVICE:
            path = current.filename if current.filename is not None else None
            return _sentence(current.errno, str(path) if path is not None else "", current.filename2)
        current = current.__cause__ or current.__context__
    text = str(exc)
    for pattern, code in _JAVA_PATTERNS:
        match = pattern.search(text)
        if match:
            path = match.group(1).removeprefix("file:").rstrip(":,;")
            return _sentence(code, path, None)
    return None


def _sentence(code: int, path: str, path2: object) -> HealthMonitorError:
    what, todo = _ERRNO_ADVICE[code]
    where = f"{path}: " if path else ""
    if path2:
        where = f"{path} -> {path2}: "
    return HealthMonitorError(f"{where}{what}; {todo}")
