"""The one atomic file writer: a file that exists under its final name is complete.

Every file hwnas writes (LUTs, cost models, kernel tables, ONNX models, compiled
libraries, prediction CSVs) goes through :func:`atomic_path`: the content is
written to a uniquely named temporary file in the target's folder (``tempfile``,
so two threads or processes writing the same target never share a temporary
name), flushed and fsynced, then moved over the target with ``os.replace``. On
any failure the temporary file is removed and the target is untouched.

An ``OSError`` raised here names the caller's path (never the temporary one), so
callers can turn it into a message about the file the user asked for.

It lives in ``lut/`` because that is the lowest layer both ``cost_models`` and
``hwnas`` already import, and it needs only the standard library (``lut`` may
import nothing beyond numpy/onnx). The device agent does not use it: it is
deployed alone and must import only ``device_agents``.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_path", "atomic_open", "fsync_dir", "write_bytes_atomic", "write_text_atomic"]


def _naming(exc: OSError, path: Path) -> OSError:
    """The same error, naming ``path`` instead of a temporary file."""
    return type(exc)(exc.errno, exc.strerror or str(exc), str(path))


def fsync_dir(folder: Path) -> None:
    """Flush ``folder``'s entries to disk, so a rename into it survives a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike, *, parents: bool = False, durable: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; when the block ends normally, move it onto ``path``.

    The block writes the temporary file by any means (a library's ``save(path)`` is fine); it is
    fsynced and renamed over ``path``. ``parents`` creates missing parent folders (otherwise a
    missing folder is a ``FileNotFoundError`` naming ``path``); ``durable`` also fsyncs the folder so
    the rename itself survives a power cut. The temporary file keeps the target's suffix
    (``.name.XXXX.tmp.so``) for writers that choose a format by suffix.
    """
    path = Path(path)
    try:
        if parents:
            path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    except OSError as exc:
        raise _naming(exc, path) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise _naming(exc, path) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", *, parents: bool = False, durable: bool = False,
                **open_kwargs: Any) -> Iterator[IO]:
    """``open(path, mode)`` for writing, atomically: the target appears complete when the block ends.

    ``mode`` is ``"w"`` or ``"wb"``; ``open_kwargs`` go to :func:`open` (``encoding``, ``newline``).
    Text mode defaults to UTF-8.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes a whole file: mode must be 'w' or 'wb', not {mode!r}")
    if mode == "w":
        open_kwargs.setdefault("encoding", "utf-8")
    with atomic_path(path, parents=parents, durable=durable) as tmp:
        with open(tmp, mode, **open_kwargs) as handle:
            yield handle


def write_bytes_atomic(path: str | os.PathLike, data: bytes, *, parents: bool = True,
                       durable: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (missing parent folders are created); returns the path."""
    with atomic_open(path, "wb", parents=parents, durable=durable) as handle:
        handle.write(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str, *, parents: bool = True, durable: bool = False) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (missing parent folders are created); returns the path."""
    with atomic_open(path, "w", parents=parents, durable=durable) as handle:
        handle.write(text)
    return Path(path)

