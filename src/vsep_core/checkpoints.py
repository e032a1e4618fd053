"""Reading state-dict checkpoints safely and loading them strictly (shared by plugins).

Loading never runs code from the file (``torch.load(weights_only=True)``); a mismatch between the
checkpoint and the network built from its config is reported in one line naming the tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import torch

from vsep_core.errors import ModelLoadError

WRAPPER_KEYS = ("state_dict", "model_state_dict", "state")
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
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types here
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{path.name}: not loadable as a plain tensor checkpoint with weights_only=True "
                             f"(refused: {first[:160]}); only state_dict checkpoints are accepted, nothing in the "
                             "file is run") from exc
    for key in wrappers:
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelLoadError(f"{path.name} holds no state dict (found {type(obj).__name__})")
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
