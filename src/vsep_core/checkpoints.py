"""Reading state-dict checkpoints safely and loading them strictly (shared by plugins).

Loading never runs code from the file (``torch.load(weights_only=True)``); a mismatch between the
checkpoint and the network built from its config is reported in one line naming the tensor.
"""

from __future__ import annotations

import contextlib
import pickle
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from vsep_core.devices import quiet_onnxruntime  # noqa: F401 - plugins import it from here too
from vsep_core.errors import ModelLoadError

WRAPPER_KEYS = ("state_dict", "model_state_dict", "state")


def redownload_hint(path: Path) -> str:
    """What to do about a bad model file: delete it so that it is downloaded again."""
    return (f"delete {path} so that it is downloaded again (or get a good copy from where it came from)")


def first_line(exc: BaseException, limit: int = 160) -> str:
    """The first non-empty line of an exception's message (its type when it has none), cut to `limit`."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:limit]


_CODE_REFUSED = re.compile(r"Unsupported (global|class)|allowed global|reduce|refus", re.IGNORECASE)
"""What torch's weights-only unpickler says when a file asks for a Python object (code) rather than being
unreadable."""


def torch_load(path: str | Path, safe_globals: Iterable[Any] = ()) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU, nothing in the file run; a one-line ModelLoadError saying
    whether the file holds code (refused) or is not a checkpoint at all (truncated, corrupt, another format),
    and what to do. `safe_globals`: classes a family's format may hold besides tensors."""
    path = Path(path)
    allowed = list(safe_globals)
    try:
        with torch.serialization.safe_globals(allowed) if allowed else contextlib.nullcontext():
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = str(exc).split("WeightsUnpickler error:", 1)[-1]  # torch's own words on what it met
        if _CODE_REFUSED.search(detail):
            raise ModelLoadError(f"{path.name} holds Python objects besides tensors (code a checkpoint need not "
                                 f"hold) and was refused, nothing in it ran; {redownload_hint(path)}") from exc
        reason = next((line.strip() for line in detail.splitlines() if line.strip()), "unreadable")[:160]
        raise ModelLoadError(f"{path.name} is not a valid checkpoint ({reason}); {redownload_hint(path)}") from exc
    except FileNotFoundError as exc:
        raise ModelLoadError(f"{path.name} is missing ({path}); download the model again (vsep download)") from exc
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError, EOFError, zip errors, ... for bad files
        raise ModelLoadError(f"{path.name} is not a valid checkpoint (truncated or corrupt: {first_line(exc)}); "
                             f"{redownload_hint(path)}") from exc


def onnx_session(path: str | Path, model_bytes: bytes | None = None, **kwargs: Any) -> Any:
    """An ``onnxruntime.InferenceSession`` of the file `path` (or of `model_bytes` read from it), quiet (see
    :func:`quiet_onnxruntime`); a one-line ModelLoadError when it is not a valid ONNX model."""
    path = Path(path)
    ort = quiet_onnxruntime()
    options = kwargs.pop("sess_options", None) or ort.SessionOptions()
    if getattr(options, "log_severity_level", 3) < 3 and not kwargs.pop("verbose", False):
        options.log_severity_level = 3
    try:
        return ort.InferenceSession(model_bytes if model_bytes is not None else str(path), sess_options=options,
                                    **kwargs)
    except Exception as exc:  # noqa: BLE001 - ORT raises its own Fail / InvalidProtobuf / NoSuchFile types
        raise ModelLoadError(f"{path.name} is not a valid ONNX model ({first_line(exc)}); "
                             f"{redownload_hint(path)}") from exc
SHARED_PREFIXES = ("model.", "module.", "_orig_mod.")


def read_state_dict(path: Path, drop_prefixes: Iterable[str] = (), wrappers: tuple[str, ...] = WRAPPER_KEYS,
                    strip_prefixes: tuple[str, ...] = SHARED_PREFIXES) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint, loaded without running code from it.

    A plain state dict, or one under one of `wrappers` (by default ``state_dict`` / ``model_state_dict`` /
    ``state``, as MSST's loader unwraps). Tensors whose names start with one of `drop_prefixes` (training-only
    state) are dropped; a prefix of `strip_prefixes` shared by every key is removed (by default ``model.``
    (Lightning), ``module.`` (DataParallel) and ``_orig_mod.`` (torch.compile)). Raises ModelLoadError for
    anything else.
    """
    path = Path(path)
    drop = tuple(drop_prefixes)
    obj = torch_load(path)
    for key in wrappers:
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelLoadError(f"{path.name} holds no state dict (found {type(obj).__name__}): not a checkpoint of this "
                             f"kind; {redownload_hint(path)}")
    state = {str(k): v for k, v in obj.items()
             if isinstance(v, torch.Tensor) and not (drop and str(k).startswith(drop))}
    for prefix in strip_prefixes:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def check_tensors(expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], source: str,
                  optional: Callable[[str], bool] | None = None) -> None:
    """ModelLoadError naming the first tensor (in the network's order, then the file's) that `state` lacks,
    has of another shape than `expected`, or has beyond it; a missing name that `optional` accepts is fine."""
    for name, tensor in expected.items():
        if name not in state:
            if optional is not None and optional(name):
                continue
            raise ModelLoadError(f"{source}: tensor {name!r} {tuple(tensor.shape)} of the network built from the "
                                 "yaml is missing from the checkpoint; the yaml does not match the checkpoint")
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise ModelLoadError(f"{source}: tensor {name!r} has shape {tuple(state[name].shape)} in the checkpoint "
                                 f"but {tuple(tensor.shape)} in the network built from the yaml; the yaml does not "
                                 "match the checkpoint")
    extra = next((n for n in state if n not in expected), None)
    if extra is not None:
        raise ModelLoadError(f"{source}: the checkpoint has tensor {extra!r} {tuple(state[extra].shape)} that the "
                             "network built from the yaml lacks; the yaml does not match the checkpoint")


def load_strict(net: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str,
                ignore: Iterable[str] = ()) -> None:
    """Copy `state` into `net`: every tensor must be there with the network's shape, and nothing else.

    Tensors named in `ignore` (buffers that are not weights) are left out of the comparison. Raises
    ModelLoadError naming the first tensor that is missing, extra or of another shape.
    """
    skip = set(ignore)
    state = {k: v for k, v in state.items() if k not in skip}
    check_tensors(net.state_dict(), state, source)
    net.load_state_dict(dict(state), strict=True)
