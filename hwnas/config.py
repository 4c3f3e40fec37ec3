"""hardware.yaml: the device registry, its schema, and errors that name file, line and field.

Loading is ``yaml.safe_load``-only; ``${ENV_VAR}`` in any string is expanded (a
missing variable is an error naming where it was used). Unknown keys are
rejected, and so are secrets: there is no password field, and the error says to
use a key file or ssh-agent instead.

Hostile files are refused before any walk over them: the file is read bounded
(:data:`MAX_BYTES`; ``/dev/zero`` has no size to check first), and YAML aliases
may expand the document to at most :data:`MAX_NODES` nodes (a "billion laughs"
alias bomb is a few hundred bytes) and may not refer to themselves. Device names
are used as folder names, so they must be safe path components.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hwnas import backends
from hwnas.errors import BadInput

KINDS = ("x86_cpu", "arm_cpu", "mobile_gpu", "npu", "fpga_sim")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_UNION_TAGS = {"local", "ssh", "tvm_rpc", *backends.names()}
_SECRET_KEYS = {"password", "passphrase", "secret", "token", "private_key"}
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")

MAX_BYTES = 1 << 20
"""Largest hardware.yaml read (1 MiB): a registry of thousands of devices fits; more is a mistake."""
MAX_NODES = 100_000
"""Most YAML nodes the document may expand to, counting every alias expansion."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalTransportConfig(_Strict):
    """Run the agent as a subprocess on this machine (with ``python``: another environment, e.g. a
    simulator's venv; default the interpreter running hwnas)."""

    type: Literal["local"]
    python: str | None = None


class JumpHostConfig(_Strict):
    """An SSH bastion the connection goes through."""

    host: str
    port: int = Field(22, ge=1, le=65535)
    user: str | None = None
    key_file: str | None = None


class SshTransportConfig(_Strict):
    """Reach the device over SSH (paramiko); host keys verified against ``known_hosts``."""

    type: Literal["ssh"]
    host: str = Field(min_length=1)
    port: int = Field(22, ge=1, le=65535)
    user: str = Field(min_length=1)
    key_file: str | None = None
    known_hosts: str = "~/.ssh/known_hosts"
    trust_on_first_use: bool = False
    python: str = "python3"
    workdir: str = "/tmp/hwnas"
    jump: JumpHostConfig | None = None
    connect_timeout_s: float = Field(10.0, gt=0)


class TvmRpcTransportConfig(_Strict):
    """A device in a TVM RPC tracker's pool."""

    type: Literal["tvm_rpc"]
    tracker_host: str
    tracker_port: int = Field(9190, ge=1, le=65535)
    key: str = Field(min_length=1)


Transport = Annotated[LocalTransportConfig | SshTransportConfig | TvmRpcTransportConfig,
                      Field(discriminator="type")]


Runtime = Annotated[Union[backends.configs()], Field(discriminator="backend")]  # noqa: UP007 - built at run time
"""``runtime:``: one schema per backend, each defined by its module in ``hwnas/backends/``."""


class MeasurementConfig(_Strict):
    """How measurements are taken on a device (defaults suit small models on a CPU)."""

    warmup_ms: float = Field(50.0, ge=0)
    repeat: int = Field(10, ge=3)
    min_repeat_ms: float = Field(20.0, gt=0)
    cov_threshold: float = Field(0.10, gt=0)
    max_remeasure: int = Field(2, ge=0)
    drift_threshold: float = Field(0.10, gt=0)
    sessions: int = Field(3, ge=1)
    drift_retries: int = Field(2, ge=0)
    interleave: int = Field(64, ge=1)
    normalise: bool = True  # time the reference kernel after every round: speed-normalised latency (hwnas.speed)
    timeout_s: float = Field(300.0, gt=0)


class DeviceConfig(_Strict):
    """One device entry of hardware.yaml."""

    name: str = Field(min_length=1, max_length=64)
    kind: Literal[KINDS]
    transport: Transport
    runtime: Runtime
    affinity: list[Annotated[int, Field(ge=0)]] | None = None
    measurement: MeasurementConfig = Field(default_factory=MeasurementConfig)
    tags: dict[str, str] | list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _safe_path_component(cls, value: str) -> str:
        if not _SAFE_NAME.fullmatch(value):
            raise ValueError(f"device name {value!r} must be letters, digits, '.', '_' or '-', not starting with "
                             "'.' or '-' (it names folders on disk)")
        return value

    @property
    def backend(self) -> str:
        """The runtime backend name (onnxruntime, tvm, simulator)."""
        return self.runtime.backend


class HardwareConfig(_Strict):
    """The whole of hardware.yaml."""

    workspace: str = ".hwnas"
    store_lock_timeout_s: float = Field(30.0, gt=0)  # wait for another process's write lock on the store
    devices: list[DeviceConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> HardwareConfig:
        seen: set[str] = set()
        for device in self.devices:
            if device.name in seen:
                raise ValueError(f"device name {device.name!r} is used twice")
            seen.add(device.name)
        return self


class Registry:
    """A loaded hardware.yaml: its devices and where its workspace lives."""

    def __init__(self, path: Path, config: HardwareConfig) -> None:
        self.path = path
        self.config = config
        workspace = Path(config.workspace).expanduser()
        self.workspace = workspace if workspace.is_absolute() else (path.parent / workspace).resolve()

    @property
    def devices(self) -> list[DeviceConfig]:
        """All device entries, in file order."""
        return list(self.config.devices)

    def device(self, name: str) -> DeviceConfig:
        """The device called ``name``; BadInput naming the known ones otherwise."""
        for device in self.config.devices:
            if device.name == name:
                return device
        known = ", ".join(d.name for d in self.config.devices)
        raise BadInput(f"{self.path}: no device named {name!r} (known: {known})")


# --- YAML positions --------------------------------------------------------------------------

def _line_of(node: yaml.Node, loc: tuple[Any, ...]) -> int:
    """1-based line of the deepest node along a pydantic error location."""
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == part), None)
            if match is None:
                break  # a missing key: the mapping that lacks it is the place
            key, node = match
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
    return line


def _strip_union_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop the union member pydantic inserts after 'transport'/'runtime' (e.g. 'ssh'): not a key."""
    out: list[Any] = []
    for i, part in enumerate(loc):
        if i > 0 and loc[i - 1] in ("transport", "runtime") and part in _UNION_TAGS:
            continue
        out.append(part)
    return tuple(out)


def _field_path(loc: tuple[Any, ...], data: Any) -> str:
    """Readable key path such as ``devices[1].transport.port`` (union tags dropped)."""
    parts: list[str] = []
    node = data
    for part in loc:
        if isinstance(part, int) and isinstance(node, list):
            parts.append(f"[{part}]")
            node = node[part] if part < len(node) else None
        elif isinstance(node, dict) and part in node:
            parts.append(("." if parts else "") + str(part))
            node = node[part]
        else:  # a missing field
            parts.append(("." if parts else "") + str(part))
    return "".join(parts) or "(top level)"


def _dotted(loc: tuple[Any, ...]) -> str:
    """``('devices', 0, 'name')`` -> ``devices[0].name``."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def _expand_env(node: Any, root: yaml.Node, loc: tuple[Any, ...], path: Path) -> Any:
    if isinstance(node, dict):
        return {k: _expand_env(v, root, loc + (k,), path) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_env(v, root, loc + (i,), path) for i, v in enumerate(node)]
    if isinstance(node, str):
        def substitute(match: re.Match[str]) -> str:
            value = os.environ.get(match.group(1))
            if value is None:
                raise BadInput(f"{path}:{_line_of(root, loc)}: {_dotted(loc)}: "
                               f"environment variable {match.group(1)} is not set")
            return value
        return _ENV.sub(substitute, node)
    return node


def _reject_secrets(data: Any, root: yaml.Node, path: Path, loc: tuple[Any, ...] = ()) -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            if str(key).lower() in _SECRET_KEYS:
                raise BadInput(f"{path}:{_line_of(root, loc + (key,))}: {_dotted(loc + (key,))}: "
                               "secrets do not belong in hardware.yaml; use key_file or ssh-agent")
            _reject_secrets(value, root, path, loc + (key,))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            _reject_secrets(value, root, path, loc + (i,))


def _read_bounded(path: Path) -> str:
    """The file's text, read at most MAX_BYTES + 1 bytes (so /dev/zero or a huge file cannot exhaust memory)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file (pass --config PATH or create hardware.yaml)") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if len(raw) > MAX_BYTES:
        raise BadInput(f"{path}: larger than {MAX_BYTES >> 20} MiB; a device registry is a short YAML file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _check_expansion(root: yaml.Node, path: Path) -> None:
    """BadInput if aliases expand the document past MAX_NODES nodes or refer to themselves.

    Sizes are memoised per node object (an alias is the same object as its anchor), so this
    costs one visit per distinct node however large the expansion would be.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        if children_done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > MAX_NODES:
                raise BadInput(f"{path}:{node.start_mark.line + 1}: YAML aliases expand the file to more than "
                               f"{MAX_NODES} nodes (an alias bomb?); write the entries out")
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise BadInput(f"{path}:{node.start_mark.line + 1}: a YAML alias refers to the node that contains it")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in reversed(children) if id(c) not in sizes)


def _parse(text: str, path: Path) -> tuple[yaml.Node | None, Any]:
    """Compose (positions), check alias expansion, then construct: one parse, safe loader only."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        _check_expansion(root, path)
        return root, loader.construct_document(root)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise BadInput(f"{path}{where}: not valid YAML ({problem})") from None
    finally:
        loader.dispose()


def _check_unique_names(data: dict[str, Any], root: yaml.Node, path: Path) -> None:
    """BadInput at the line of a device name already used by an earlier entry."""
    devices = data.get("devices")
    if not isinstance(devices, list):
        return
    seen: set[str] = set()
    for i, entry in enumerate(devices):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            continue
        if name in seen:
            loc = ("devices", i, "name")
            raise BadInput(f"{path}:{_line_of(root, loc)}: {_dotted(loc)}: device name {name!r} is used twice")
        seen.add(name)


def _message(err: dict[str, Any]) -> str:
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required field is missing"
    return msg.removeprefix("Value error, ")


def load(path: str | Path) -> Registry:
    """Load and validate hardware.yaml; BadInput ("FILE:LINE: FIELD: problem") on any error."""
    path = Path(path)
    root, data = _parse(_read_bounded(path), path)
    if root is None or not isinstance(data, dict):
        raise BadInput(f"{path}:1: the file must be a mapping with a 'devices' list")
    _reject_secrets(data, root, path)
    data = _expand_env(data, root, (), path)
    _check_unique_names(data, root, path)
    try:
        config = HardwareConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = _strip_union_tags(tuple(err["loc"]))
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise BadInput(f"{path}:{_line_of(root, loc)}: {_field_path(loc, data)}: {_message(err)}{more}") from None
    return Registry(path.resolve(), config)
