"""Putting things on a device over SFTP: the agent tree by content hash, model files by sha256.

Layout on the device (``W`` = the device's work dir)::

    W/agent-<tree_hash[:16]>/device_agents/*.py   the agent, one directory per version
    W/models/<sha256>.onnx | .so                 model cache shared by every agent version

Both are written to a temporary name first and renamed into place, so a
half-finished upload is never used. Remote commands are built only by
:func:`command`, which quotes every argument with ``shlex.quote``.
"""
from __future__ import annotations

import errno
import io
import posixpath
import shlex
import stat
import uuid
from collections.abc import Iterable
from pathlib import Path

import paramiko

import device_agents

MODEL_SUFFIX = {"onnx": ".onnx", "tvm": ".so"}  # the agent's model cache names (device_agents.agent)
PID_PREFIX = "hwnas-agent-pid "
NO_PYTHON = "hwnas-agent-no-python"  # the first stderr line instead of the pid when the interpreter is missing


def command(argv: Iterable[str]) -> str:
    """A remote shell command line in which every argument is quoted (never interpolated)."""
    return " ".join(shlex.quote(str(arg)) for arg in argv)


def remote_path(path: str) -> str:
    """A remote path both SFTP and the remote shell understand: ``~/x`` becomes ``x`` (home-relative)."""
    if path == "~":
        return "."
    if path.startswith("~/"):
        return path[2:] or "."
    return path


def agent_files(root: Path | None = None) -> dict[str, bytes]:
    """The agent's source files (relative POSIX path -> bytes): exactly what ``tree_hash`` covers."""
    root = root or Path(device_agents.__file__).resolve().parent
    return {path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.rglob("*.py")) if "__pycache__" not in path.parts}


def agent_dir(workdir: str) -> str:
    """Where this version of the agent lives on a device: ``<workdir>/agent-<tree_hash[:16]>``."""
    return posixpath.join(workdir, f"agent-{device_agents.tree_hash()[:16]}")


def agent_command(python: str, workdir: str, directory: str) -> str:
    """The command that starts the deployed agent; its first stderr line carries the agent's pid
    (or :data:`NO_PYTHON` when ``python`` is not there: said, not guessed from a closed channel).

    Byte-code and runtime caches (onnxruntime keeps a database under ``$XDG_CACHE_HOME``)
    are pointed into the work dir: the agent writes nothing outside it."""
    check = f"command -v {shlex.quote(python)} >/dev/null 2>&1 || {{ echo {NO_PYTHON} >&2; exit 127; }}; "
    pid_line = f"echo {PID_PREFIX.strip()} $$ >&2; exec "
    return check + pid_line + command(["env", f"PYTHONPATH={directory}",
                               f"PYTHONPYCACHEPREFIX={posixpath.join(workdir, 'pycache')}",
                               f"XDG_CACHE_HOME={posixpath.join(workdir, 'cache')}",
                               python, "-m", "device_agents", "--workdir", workdir])


def exists(sftp: paramiko.SFTPClient, path: str) -> bool:
    """True if ``path`` exists on the device."""
    try:
        sftp.stat(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise
    return True


def makedirs(sftp: paramiko.SFTPClient, path: str) -> None:
    """``mkdir -p`` over SFTP."""
    parts = path.split("/")
    for i in range(1, len(parts) + 1):
        partial = "/".join(parts[:i])
        if partial in ("", ".") or exists(sftp, partial):
            continue
        try:
            sftp.mkdir(partial, 0o755)
        except OSError:
            if not exists(sftp, partial):  # lost a race with another uploader: fine
                raise


def remove_tree(sftp: paramiko.SFTPClient, path: str) -> None:
    """``rm -r`` over SFTP (for our own temporary upload directories)."""
    for entry in sftp.listdir_attr(path):
        child = posixpath.join(path, entry.filename)
        if stat.S_ISDIR(entry.st_mode or 0):
            remove_tree(sftp, child)
        else:
            sftp.remove(child)
    sftp.rmdir(path)


def ensure_agent(sftp: paramiko.SFTPClient, workdir: str) -> tuple[str, bool]:
    """Upload the agent tree unless this version is already there; returns (agent dir, uploaded)."""
    target = agent_dir(workdir)
    if exists(sftp, target):
        return target, False
    makedirs(sftp, workdir)
    staging = f"{target}.part-{uuid.uuid4().hex[:12]}"
    sftp.mkdir(staging, 0o755)
    for rel, data in agent_files().items():
        remote = posixpath.join(staging, "device_agents", rel)
        makedirs(sftp, posixpath.dirname(remote))
        sftp.putfo(io.BytesIO(data), remote)
    try:
        sftp.rename(staging, target)
    except OSError:
        if not exists(sftp, target):
            raise
        remove_tree(sftp, staging)  # another session deployed the same version first
    return target, True


def put_model(sftp: paramiko.SFTPClient, workdir: str, sha256: str, fmt: str, path: Path) -> bool:
    """Place a model in the device's cache unless present; returns True if bytes were sent."""
    models = posixpath.join(workdir, "models")
    target = posixpath.join(models, sha256 + MODEL_SUFFIX[fmt])
    if exists(sftp, target):
        return False
    makedirs(sftp, models)
    staging = f"{target}.part-{uuid.uuid4().hex[:12]}"
    sftp.put(str(path), staging)
    sftp.posix_rename(staging, target)
    return True
