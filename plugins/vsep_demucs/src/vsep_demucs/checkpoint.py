"""Safe loading of Demucs ``.th`` packages and bag-of-models yaml files.

A ``.th`` file is ``torch.save`` of the demucs package dict ``{klass, args, kwargs, state,
training_args}`` whose ``klass`` is pickled *by reference* (``demucs.htdemucs.HTDemucs``).
The reference implementation unpickles it with ``weights_only=False``, i.e. it runs whatever
the file says. vsep never does: the file is read with torch's restricted ``weights_only``
unpickler, where the only extra names allowed are the Demucs class paths vsep implements
(each bound to an inert placeholder that refuses to be instantiated) and
``fractions.Fraction`` (the training segment, e.g. 39/5 s). Anything else — ``os.system``,
``builtins.eval``, an unknown class — stops the load before it runs, with a
:class:`~vsep_core.errors.ModelLoadError`.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import pickle
import threading
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from vsep_core.checkpoints import first_line, redownload_hint, torch_load
from vsep_core.errors import ModelLoadError
from vsep_demucs.hdemucs import HDemucs
from vsep_demucs.htdemucs import HTDemucs

log = logging.getLogger("vsep.demucs")


class _ClassRef:
    """Stands in for a pickled class reference; never instantiated (a REDUCE on it fails)."""

    qualified_name = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise pickle.UnpicklingError(f"refusing to call {self.qualified_name} while loading a checkpoint")


def _class_ref(qualified_name: str) -> type[_ClassRef]:
    return type(qualified_name.rsplit(".", 1)[-1] + "Ref", (_ClassRef,), {"qualified_name": qualified_name})


#: Class paths found in Demucs packages -> vsep's implementation.
SUPPORTED_CLASSES: dict[str, type[nn.Module]] = {
    "demucs.htdemucs.HTDemucs": HTDemucs,
    "demucs.hdemucs.HDemucs": HDemucs,
}

#: Class paths of Demucs packages that vsep recognises but does not implement (clear error).
KNOWN_UNSUPPORTED = {
    "demucs.demucs.Demucs": "Demucs v2/v3 waveform model",
    "demucs.tasnet.ConvTasNet": "Conv-TasNet",
    "demucs.tasnet_v2.ConvTasNet": "Conv-TasNet",
    "demucs.model.Demucs": "Demucs v1",
    "demucs.model_v2.Demucs": "Demucs v2",
}

_REFS: dict[str, type[_ClassRef]] = {name: _class_ref(name) for name in [*SUPPORTED_CLASSES, *KNOWN_UNSUPPORTED]}
_SAFE_GLOBALS: list[Any] = [(ref, name) for name, ref in _REFS.items()] + [Fraction]
# torch's safe-globals list is process-wide; loads of this module never overlap.
_LOAD_LOCK = threading.Lock()


def read_package(path: Path) -> dict[str, Any]:
    """Read a Demucs ``.th`` package without running code from it.

    Returns the package dict with ``klass`` replaced by its qualified name (a str).
    Raises ModelLoadError for a file that is not a Demucs package or references anything
    outside the allow-list (the name of the offending global is in the message).
    """
    try:
        with _LOAD_LOCK:
            package = torch_load(path, _SAFE_GLOBALS)
    except ModelLoadError as exc:
        if isinstance(exc.__cause__, pickle.UnpicklingError) and "refused" in str(exc):
            raise ModelLoadError(
                f"{path.name} references {_unsafe_globals(path) or 'objects'} that a Demucs model file never "
                f"contains and was refused, nothing in it ran; {redownload_hint(path)}") from exc
        raise
    if not isinstance(package, dict) or not {"klass", "kwargs", "state"} <= set(package):
        raise ModelLoadError(f"{path.name} is not a Demucs model package (a dict with klass, args, kwargs, "
                             "state); is it a plain state_dict meant for another architecture?")
    klass = package["klass"]
    if not (isinstance(klass, type) and issubclass(klass, _ClassRef)):
        raise ModelLoadError(f"{path.name}: 'klass' is {klass!r}, not a Demucs model class")
    return {**package, "klass": klass.qualified_name}


def _unsafe_globals(path: Path) -> str:
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - only used to word the message
        return ""
    names = [n for n in names if n not in _REFS and n != "fractions.Fraction"]
    return ", ".join(names)


def build_model(package: dict[str, Any], name: str = "model") -> nn.Module:
    """Instantiate vsep's implementation of ``package['klass']`` and load its weights strictly.

    Unknown constructor arguments are dropped with a warning (as Demucs does); an
    unsupported class, a quantized state or mismatching weights raise ModelLoadError.
    """
    qualified = package["klass"]
    if qualified not in SUPPORTED_CLASSES:
        what = KNOWN_UNSUPPORTED.get(qualified, qualified)
        raise ModelLoadError(f"{name}: {what} models are not supported by vsep-demucs yet; "
                             f"supported: {', '.join(SUPPORTED_CLASSES)}")
    klass = SUPPORTED_CLASSES[qualified]
    args = list(package.get("args") or ())
    kwargs = dict(package.get("kwargs") or {})
    params = inspect.signature(klass).parameters
    for key in list(kwargs):
        if key not in params:
            log.warning("%s: dropping unknown %s argument %r", name, qualified, key)
            del kwargs[key]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = klass(*args, **kwargs)
    except NotImplementedError as exc:
        raise ModelLoadError(f"{name}: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(f"{name}: cannot build {qualified} from its stored arguments ({exc})") from exc
    state = package["state"]
    if not isinstance(state, dict):
        raise ModelLoadError(f"{name}: the package's state is not a state_dict")
    if state.get("__quantized"):
        raise ModelLoadError(f"{name}: diffq-quantized Demucs models are not supported")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(f"{name}: weights do not match {qualified} with the stored arguments: "
                             f"{str(exc).splitlines()[0]}") from exc
    return model.eval()


def find_signature_file(model_dir: Path, signature: str) -> Path:
    """The ``<signature>.th`` or ``<signature>-<sha256 prefix>.th`` file in ``model_dir``."""
    matches = sorted(p for p in model_dir.glob("*.th") if p.stem == signature or p.stem.split("-")[0] == signature)
    if not matches:
        raise ModelLoadError(f"Demucs model file {signature}-*.th not found in {model_dir}; "
                             "download the model again (vsep download <model>).")
    if len(matches) > 1:
        raise ModelLoadError(f"several files for Demucs signature {signature} in {model_dir}: "
                             f"{', '.join(p.name for p in matches)}; delete all but one.")
    return matches[0]


def verify_checksum(path: Path) -> None:
    """Check that sha256(file) starts with the checksum in its name (``sig-<checksum>.th``)."""
    if "-" not in path.stem:
        return
    expected = path.stem.split("-", 1)[1]
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    if not digest.hexdigest().startswith(expected):
        raise ModelLoadError(f"{path.name} is corrupt: its sha256 {digest.hexdigest()[:12]}… does not start "
                             f"with {expected}. Delete it and download it again.")


def read_bag(yaml_path: Path, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Parse and check a bag-of-models yaml: ``models`` (signatures), optional ``weights``
    (one row per model, one weight per source) and ``segment`` (seconds)."""
    if not data:
        try:
            data = yaml.safe_load(yaml_path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ModelLoadError(f"{yaml_path.name} is not a valid Demucs bag yaml ({first_line(exc)}); "
                                 f"{redownload_hint(yaml_path)}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("models"), list) or not data["models"]:
        raise ModelLoadError(f"{yaml_path.name} is not a Demucs bag of models (needs a non-empty 'models' list)")
    models = [str(m) for m in data["models"]]
    weights = data.get("weights")
    if weights is not None:
        if (not isinstance(weights, list) or len(weights) != len(models)
                or not all(isinstance(row, list) for row in weights)):
            raise ModelLoadError(f"{yaml_path.name}: 'weights' needs one list per model ({len(models)})")
        weights = [[float(w) for w in row] for row in weights]
    segment = data.get("segment")
    if segment is not None and (isinstance(segment, bool) or not isinstance(segment, (int, float)) or segment <= 0):
        raise ModelLoadError(f"{yaml_path.name}: 'segment' must be a positive number of seconds")
    return {"models": models, "weights": weights, "segment": segment}
