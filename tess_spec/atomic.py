"""The one atomic file writer behind every file tess writes (CLI summaries, metrics
and plots, checkpoints, the dataset cache, golden traces).

Rules:

- **Atomic.** The bytes go to a temporary file in the target's own folder, are
  flushed and fsynced, and the temporary file is moved onto the target with
  :func:`os.replace`: a reader sees the old file or the new one, never a half, and
  a crash, a full disk or Ctrl-C leaves the target as it was (the temporary file
  is removed).
- **Regular files only.** The target must be absent or a regular file.  A
  symbolic link, a directory, a character or block device (``/dev/full``), a FIFO
  or a socket is refused with :class:`~tess_spec.errors.OutputError` — tess
  neither replaces it nor writes through it (writing through a link would make
  the write non-atomic or land outside the folder asked for).  Only the last path
  component is checked: symlinked *folders* on the way are followed as usual.
- **One clear error.** Every :class:`OSError` (permission denied, read-only or
  full file system, a parent that is a file) becomes one
  :class:`~tess_spec.errors.OutputError` naming the path and the reason.
- **Checked early.** :func:`check_output_path` / :func:`check_output_dir` make the
  same checks (plus the file extension and a probe file in the folder) *before*
  any work, so the CLI fails in a second instead of after training.
- A new file gets the mode ``0o666 & ~umask``; a replaced file keeps its mode.

It lives in :mod:`tess_spec` (which imports nothing from :mod:`tess`) so that the
golden-trace writer can use it too.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Callable, Iterable, Union

from .errors import OutputError

__all__ = ["atomic_write", "replace_file", "check_output_path", "check_output_dir", "describe_non_regular"]

Writer = Callable[[IO[bytes]], None]
Payload = Union[bytes, str, Writer]

_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


def describe_non_regular(path: str | os.PathLike) -> str | None:
    """What ``path`` is if it exists and is not a regular file (``"a symbolic link"``,
    ``"a character device"`` …); ``None`` if it is absent or a regular file.
    Symbolic links are not followed."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:  # e.g. a parent that is a file (ENOTDIR) or unreadable
        if exc.errno == errno.ENOTDIR:
            return None
        raise
    if stat.S_ISREG(mode):
        return None
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"  # pragma: no cover - door files and the like


def _label(what: str, path: Path) -> str:
    return f"{what} {str(path)!r}"


def _refuse_non_regular(path: Path, what: str) -> None:
    try:
        kind = describe_non_regular(path)
    except OSError as exc:
        raise OutputError(f"cannot write {_label(what, path)}: {_reason(exc)}") from exc
    if kind is not None:
        hint = (f"pass a file path inside it, e.g. {str(path / 'out')!r}" if kind == "a directory"
                else "pass the path of a regular file (or of the link's target, " + repr(os.path.realpath(path)) + ")"
                if kind == "a symbolic link" else "pass the path of a regular file")
        raise OutputError(
            f"cannot write {_label(what, path)}: it is {kind}, not a regular file. tess writes outputs "
            f"atomically (a new file moved into place) and never replaces or writes through {kind}; {hint}."
        )


def _reason(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        return f"{text} (the disk is full; free space or choose another folder)"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{text} (choose a folder you can write to)"
    if exc.errno == errno.ENOTDIR:
        return f"{text} (a component of the path is a file, not a folder)"
    return text


def _existing_ancestor(folder: Path) -> Path:
    p = folder
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _probe(folder: Path, path: Path, what: str) -> None:
    """Create and remove a temporary file in the nearest existing ancestor of ``folder``."""
    base = _existing_ancestor(folder)
    if not base.is_dir():
        raise OutputError(f"cannot write {_label(what, path)}: {str(base)!r} is "
                          f"{describe_non_regular(base) or 'a regular file'}, not a folder")
    try:
        fd, tmp = tempfile.mkstemp(dir=base, prefix=".tess-probe-", suffix=".tmp")
    except OSError as exc:
        raise OutputError(f"cannot write {_label(what, path)}: cannot create files in {str(base)!r}: "
                          f"{_reason(exc)}") from exc
    os.close(fd)
    try:
        os.unlink(tmp)
    except OSError:  # pragma: no cover - a folder that allows create but not unlink
        pass


def check_output_path(path: str | os.PathLike, *, what: str = "output file",
                      extensions: Iterable[str] | None = None) -> Path:
    """Validate an output file path before any work; returns it as a :class:`Path`.

    Raises :class:`~tess_spec.errors.OutputError` unless the extension is one of
    ``extensions`` (case-insensitive, with the dot; ``None``: any), the target is
    absent or a regular file, and a file can be created in its folder (or in the
    nearest existing folder above it, which :func:`atomic_write` will extend).
    ``what`` names the path in messages (e.g. ``"--json"``).
    """
    path = Path(os.fspath(path))
    if str(path) in ("", "."):
        raise OutputError(f"{what}: an empty path is not a file name")
    _refuse_non_regular(path, what)
    if extensions is not None:
        allowed = tuple(e.lower() for e in extensions)
        if path.suffix.lower() not in allowed:
            raise OutputError(f"{_label(what, path)} has extension {path.suffix or '(none)'!r}; expected one of "
                              f"{', '.join(allowed)}")
    _probe(path.parent, path, what)
    return path


def check_output_dir(path: str | os.PathLike, *, what: str = "output folder") -> Path:
    """Validate a folder tess will write files into: absent (it will be created) or a
    directory (a symbolic link to one is fine), and writable.  Returns it as a :class:`Path`."""
    path = Path(os.fspath(path))
    if path.exists() and not path.is_dir():
        kind = describe_non_regular(path) or "a regular file"
        raise OutputError(f"cannot use {_label(what, path)}: it is {kind}, not a folder; pass a folder path")
    _probe(path, path, what)
    return path


def _umask() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def replace_file(tmp: str | os.PathLike, path: str | os.PathLike, *, what: str = "output file") -> Path:
    """Move the finished temporary file ``tmp`` onto ``path`` (same folder) with
    :func:`os.replace`, after checking that ``path`` is absent or a regular file.

    On any failure ``tmp`` is removed, ``path`` is untouched and
    :class:`~tess_spec.errors.OutputError` names ``path``.  Every atomic write of tess
    ends here.
    """
    tmp, path = Path(tmp), Path(path)
    try:
        _refuse_non_regular(path, what)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise OutputError(f"cannot write {_label(what, path)}: {_reason(exc)}") from exc
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename durable; best effort (not every file system allows it)
        dfd = os.open(path.parent if str(path.parent) else ".", os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


def atomic_write(path: str | os.PathLike, data: Payload, *, what: str = "output file") -> Path:
    """Write ``data`` to ``path`` atomically (see the module docstring); returns the path.

    ``data`` is ``bytes``, ``str`` (UTF-8) or a function ``write(fh)`` that writes to
    a binary file object (e.g. ``lambda fh: np.savez(fh, **arrays)`` or
    ``lambda fh: fig.savefig(fh, format="png")``).  Missing parent folders are
    created.  Raises :class:`~tess_spec.errors.OutputError` for a non-regular target
    and for every :class:`OSError`; other exceptions of ``write`` propagate.  In every
    failure the target is untouched and no temporary file is left behind.
    """
    path = Path(os.fspath(path))
    _refuse_non_regular(path, what)
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OutputError(f"cannot write {_label(what, path)}: {_reason(exc)}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else bytes(data))
            fh.flush()
            os.fsync(fh.fileno())
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            mode = 0o666 & ~_umask()
        os.chmod(tmp, mode)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise OutputError(f"cannot write {_label(what, path)}: {_reason(exc)}") from exc
        raise
    return replace_file(tmp, path, what=what)
