"""Chains: named steps that run models on the song or on stems of earlier steps, and combine stems.

A chain is data (a YAML or JSON document, or the same structure as a Python dict)::

    name: instrumental_drums
    steps:
      inst:   {model: UVR-MDX-NET-Inst_HQ_3.onnx}             # on the song
      drums:  {model: htdemucs_ft.yaml, input: inst.Instrumental, params: {demucs_shifts: 2}}
      rest:   {subtract: [inst.Instrumental, drums.Drums]}    # a - b, sample-exact
    outputs: {drums: drums.Drums, no_drums: rest}

Step kinds: ``model`` (one model), ``ensemble`` (several models, ``algorithm``, ``weights``),
``preset`` (an ensemble preset), each with an ``input`` (default ``song``) and ``params`` (core
options and ``<prefix>_<field>`` architecture params); and the combining steps ``subtract: [a, b]``,
``mix: [a, b, ...]`` (``weights``, default 1 each), ``phase_fix: {magnitude: a, phase: b}`` and
``rename: a``. A stem is named ``step.Stem`` (case-insensitive); a one-stem step (every combining
step) also as ``step``; ``song`` is the input. This module parses and checks a chain and orders its
steps; running it is :mod:`vsep_core.chain_run`.
"""

from __future__ import annotations

import graphlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from vsep_core.errors import UsageError

SONG = "song"
MODEL_KINDS = ("model", "ensemble", "preset")
COMBINE_KINDS = ("subtract", "mix", "phase_fix", "rename")
KINDS = MODEL_KINDS + COMBINE_KINDS
STEP_KEYS = {"model": {"input", "params"}, "ensemble": {"input", "params", "algorithm", "weights"},
             "preset": {"input", "params", "algorithm", "weights"}, "subtract": set(), "mix": {"weights"},
             "phase_fix": set(), "rename": set()}
CHAIN_WIDE_OPTIONS = ("output_dir", "output_format", "output_bitrate", "output_bit_depth", "stem_layout",
                      "output_single_stem", "model_file_dir", "device", "offline", "sample_rate", "ensemble_preset",
                      "use_directml", "use_soundfile")
"""Options a step may not set: they concern the whole chain (every stem is kept at one rate) or its output."""
PRESETS_FILE = "chain_presets.json"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,63}$")


class ChainError(UsageError):
    """A chain document that cannot run: the message names the step (or output) and what is wrong."""


@dataclass(frozen=True)
class StemRef:
    """A stem of a step (``step.Stem``), a one-stem step's only stem (``step``), or the song."""

    step: str
    stem: str | None = None

    @classmethod
    def parse(cls, text: Any, where: str) -> StemRef:
        """``"step.Stem"`` / ``"step"`` / ``"song"`` -> a reference (the step name is before the first dot)."""
        if not isinstance(text, str) or not text.strip():
            raise ChainError(f"{where}: a stem is written step.Stem (or song), not {text!r}")
        step, dot, stem = text.strip().partition(".")
        if dot and not stem.strip():
            raise ChainError(f"{where}: {text!r} names no stem after the dot")
        return cls(step, stem.strip() if dot else None)

    def __str__(self) -> str:
        return f"{self.step}.{self.stem}" if self.stem else self.step


@dataclass(frozen=True)
class Step:
    """One step. `models` holds the model (one) or the ensemble's models; `inputs` the stems it reads."""

    name: str
    kind: str
    inputs: tuple[StemRef, ...]
    models: tuple[str, ...] = ()
    preset: str | None = None
    algorithm: str | None = None
    weights: tuple[float, ...] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def runs_models(self) -> bool:
        """Whether the step separates (model, ensemble, preset) rather than combines stems."""
        return self.kind in MODEL_KINDS

    def describe(self) -> str:
        """What the step does, in one line (for `vsep chain show`)."""
        if self.kind == "model":
            what = self.models[0]
        elif self.kind in ("ensemble", "preset"):
            label = f"preset {self.preset}: " if self.preset else "ensemble "
            what = label + " + ".join(self.models) + (f" ({self.algorithm})" if self.algorithm else "")
        elif self.kind == "subtract":
            return f"subtract {self.inputs[0]} - {self.inputs[1]}"
        elif self.kind == "mix":
            weights = self.weights or (1.0,) * len(self.inputs)
            return "mix " + " + ".join(f"{w:g}*{r}" for w, r in zip(weights, self.inputs, strict=True))
        elif self.kind == "phase_fix":
            return f"phase_fix magnitude {self.inputs[0]}, phase {self.inputs[1]}"
        else:
            return f"rename {self.inputs[0]}"
        params = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{what} on {self.inputs[0]}" + (f" [{params}]" if params else "")


@dataclass(frozen=True)
class Chain:
    """A parsed chain: steps in document order and the outputs (output name -> stem)."""

    name: str
    steps: dict[str, Step]
    outputs: dict[str, StemRef]
    description: str = ""

    def order(self) -> list[str]:
        """Step names in an order where every step comes after the steps it reads (document order kept
        where the graph allows); a cycle is a :class:`ChainError` naming its steps."""
        sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
        for name, step in self.steps.items():
            sorter.add(name, *[r.step for r in step.inputs if r.step != SONG])
        try:
            ready = list(sorter.static_order())
        except graphlib.CycleError as exc:
            cycle = " -> ".join(exc.args[1])
            raise ChainError(f"chain {self.name!r}: steps form a cycle ({cycle}); a step may read only "
                             f"earlier results") from None
        position = {n: i for i, n in enumerate(self.steps)}
        done: list[str] = []
        pending = sorted(ready, key=position.__getitem__)
        while pending:  # stable: the first step (in document order) whose parents are done
            for name in pending:
                if all(r.step == SONG or r.step in done for r in self.steps[name].inputs):
                    done.append(name)
                    pending.remove(name)
                    break
        return done

    def needed(self) -> list[str]:
        """The steps the outputs depend on, in run order (others are not run)."""
        wanted: set[str] = set()
        stack = [r.step for r in self.outputs.values() if r.step != SONG]
        while stack:
            name = stack.pop()
            if name not in wanted:
                wanted.add(name)
                stack.extend(r.step for r in self.steps[name].inputs if r.step != SONG)
        return [n for n in self.order() if n in wanted]

    def children(self, name: str) -> list[str]:
        """The steps that read a stem of step `name`."""
        return [s.name for s in self.steps.values() if any(r.step == name for r in s.inputs)]

    def to_dict(self) -> dict[str, Any]:
        """The document form (what :func:`parse_chain` reads)."""
        steps: dict[str, Any] = {}
        for name, s in self.steps.items():
            body: dict[str, Any]
            if s.kind == "model":
                body = {"model": s.models[0], "input": str(s.inputs[0])}
            elif s.kind in ("ensemble", "preset"):
                body = {s.kind: s.preset if s.kind == "preset" else list(s.models), "input": str(s.inputs[0])}
                if s.algorithm:
                    body["algorithm"] = s.algorithm
            elif s.kind == "phase_fix":
                body = {"phase_fix": {"magnitude": str(s.inputs[0]), "phase": str(s.inputs[1])}}
            elif s.kind == "rename":
                body = {"rename": str(s.inputs[0])}
            else:
                body = {s.kind: [str(r) for r in s.inputs]}
            if s.weights is not None:
                body["weights"] = list(s.weights)
            if s.params:
                body["params"] = dict(s.params)
            steps[name] = body
        return {"name": self.name, "description": self.description, "steps": steps,
                "outputs": {k: str(v) for k, v in self.outputs.items()}}


def _weights(value: Any, count: int, where: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    if (not isinstance(value, (list, tuple)) or len(value) != count
            or not all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in value)):
        raise ChainError(f"{where}: 'weights' must be {count} numbers (one per input), not {value!r}")
    return tuple(float(w) for w in value)


def _refs(value: Any, count: int | None, where: str, kind: str) -> tuple[StemRef, ...]:
    if isinstance(value, str) and count == 1:
        return (StemRef.parse(value, where),)
    if not isinstance(value, (list, tuple)) or (count is not None and len(value) != count) or len(value) < 2:
        wanted = f"{count} stems" if count else "a list of at least 2 stems"
        raise ChainError(f"{where}: '{kind}' takes {wanted} (step.Stem), not {value!r}")
    return tuple(StemRef.parse(v, where) for v in value)


def _parse_step(name: str, body: Any) -> Step:
    where = f"chain step {name!r}"
    if not isinstance(name, str) or not _NAME.match(name) or name == SONG:
        raise ChainError(f"{where}: a step name is letters, digits, '_' or '-' (and not {SONG!r})")
    if not isinstance(body, Mapping):
        raise ChainError(f"{where}: a step is a mapping such as {{model: NAME, input: song}}, not {body!r}")
    kinds = [k for k in KINDS if k in body]
    if len(kinds) != 1:
        raise ChainError(f"{where}: give exactly one of {', '.join(KINDS)} (got {', '.join(kinds) or 'none'})")
    kind = kinds[0]
    unknown = sorted(set(body) - {kind} - STEP_KEYS[kind])
    if unknown:
        allowed = ", ".join(sorted(STEP_KEYS[kind])) or "nothing else"
        raise ChainError(f"{where}: unknown key {unknown[0]!r} for a {kind} step (it takes {allowed})")
    value = body[kind]
    params = body.get("params") or {}
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise ChainError(f"{where}: 'params' must be a mapping of option -> value, not {params!r}")
    if kind in MODEL_KINDS:
        source = (StemRef.parse(body.get("input", SONG), where),)
        algorithm = body.get("algorithm")
        if algorithm is not None and not isinstance(algorithm, str):
            raise ChainError(f"{where}: 'algorithm' must be an ensemble algorithm name, not {algorithm!r}")
        if kind == "model":
            if not isinstance(value, str) or not value.strip():
                raise ChainError(f"{where}: 'model' must be a model file name, not {value!r}")
            return Step(name, kind, source, (value.strip(),), params=dict(params))
        if kind == "preset":
            from vsep_core.presets import PresetError, get_preset

            if not isinstance(value, str):
                raise ChainError(f"{where}: 'preset' must be an ensemble preset id, not {value!r}")
            try:
                preset = get_preset(value)
            except PresetError as exc:
                raise ChainError(f"{where}: {exc}") from None
            weights = _weights(body.get("weights"), len(preset.models), where)
            return Step(name, kind, source, tuple(preset.models), preset.id, algorithm or preset.algorithm,
                        weights if weights is not None else preset.weights, dict(params))
        if (not isinstance(value, (list, tuple)) or len(value) < 2
                or not all(isinstance(m, str) and m.strip() for m in value)):
            raise ChainError(f"{where}: 'ensemble' must list at least 2 model file names, not {value!r}")
        return Step(name, kind, source, tuple(m.strip() for m in value), None, algorithm,
                    _weights(body.get("weights"), len(value), where), dict(params))
    if kind == "subtract":
        return Step(name, kind, _refs(value, 2, where, kind))
    if kind == "mix":
        refs = _refs(value, None, where, kind)
        return Step(name, kind, refs, weights=_weights(body.get("weights"), len(refs), where))
    if kind == "phase_fix":
        if not isinstance(value, Mapping) or set(value) != {"magnitude", "phase"}:
            raise ChainError(f"{where}: 'phase_fix' takes {{magnitude: step.Stem, phase: step.Stem}}, not {value!r}")
        return Step(name, kind, (StemRef.parse(value["magnitude"], where), StemRef.parse(value["phase"], where)))
    return Step(name, kind, (StemRef.parse(value, where),))


def parse_chain(data: Mapping[str, Any], default_name: str = "chain") -> Chain:
    """A chain from its document form, with the structure checked (step kinds, keys, names, references to
    existing steps, no cycle); :func:`check_stems` checks the stems against the models."""
    if not isinstance(data, Mapping):
        raise ChainError(f"a chain is a mapping with 'steps' and 'outputs', not {type(data).__name__}")
    unknown = sorted(set(data) - {"name", "description", "steps", "outputs", "version"})
    if unknown:
        raise ChainError(f"chain: unknown key {unknown[0]!r} (a chain has name, description, steps, outputs)")
    name = str(data.get("name") or default_name)
    steps_data = data.get("steps")
    if not isinstance(steps_data, Mapping) or not steps_data:
        raise ChainError(f"chain {name!r}: 'steps' must map step names to steps")
    steps = {str(k): _parse_step(k, v) for k, v in steps_data.items()}
    outputs_data = data.get("outputs")
    if not isinstance(outputs_data, Mapping) or not outputs_data:
        raise ChainError(f"chain {name!r}: 'outputs' must map output names to stems, e.g. {{lead: step.Vocals}}")
    outputs: dict[str, StemRef] = {}
    for out_name, ref in outputs_data.items():
        if not isinstance(out_name, str) or not _NAME.match(out_name):
            raise ChainError(f"chain output {out_name!r}: an output name is letters, digits, '_' or '-'")
        if out_name.lower() in (o.lower() for o in outputs):
            raise ChainError(f"chain output {out_name!r}: two outputs have this name")
        outputs[out_name] = StemRef.parse(ref, f"chain output {out_name!r}")
    chain = Chain(name, steps, outputs, str(data.get("description") or ""))
    for step in steps.values():
        for ref in step.inputs:
            _check_step_exists(chain, ref, f"chain step {step.name!r}")
    for out_name, ref in outputs.items():
        if ref.step == SONG:
            raise ChainError(f"chain output {out_name!r}: an output is a stem of a step, not the song")
        _check_step_exists(chain, ref, f"chain output {out_name!r}")
    chain.order()
    return chain


def _check_step_exists(chain: Chain, ref: StemRef, where: str) -> None:
    if ref.step == SONG:
        if ref.stem is not None:
            raise ChainError(f"{where}: {ref} - the song has no stems; write song")
        return
    if ref.step not in chain.steps:
        raise ChainError(f"{where}: reads {ref}, but there is no step {ref.step!r} "
                         f"(steps: {', '.join(chain.steps)})")


StemLister = Callable[[Step], "list[str] | None"]
"""Stems a model step will give without running it (None: not known before the model is loaded)."""


def step_stems(chain: Chain, name: str, model_stems: Mapping[str, list[str] | None]) -> list[str] | None:
    """The stems step `name` gives: a model step's (from `model_stems`), a combining step's one stem
    (named as the step); None when not known before the model runs."""
    step = chain.steps[name]
    if step.runs_models:
        return model_stems.get(name)
    return [name]


def match_stem(ref: StemRef, stems: list[str], where: str) -> str:
    """The stem of `stems` that `ref` names (case-insensitive; a one-stem step's only stem when it names
    none), or a :class:`ChainError` listing the stems there are."""
    if ref.stem is None:
        if len(stems) == 1:
            return stems[0]
        raise ChainError(f"{where}: step {ref.step!r} gives {', '.join(stems)}: name one, e.g. {ref.step}.{stems[0]}")
    for stem in stems:
        if stem.lower() == ref.stem.lower():
            return stem
    if len(stems) == 1 and ref.stem.lower() == ref.step.lower():
        return stems[0]
    raise ChainError(f"{where}: step {ref.step!r} gives no stem {ref.stem!r} (it gives {', '.join(stems)})")


def check_stems(chain: Chain, model_stems: Mapping[str, list[str] | None]) -> None:
    """Every stem a step or output reads is one its step gives (where that is known before running)."""
    for step in chain.steps.values():
        for ref in step.inputs:
            _check_ref(chain, ref, model_stems, f"chain step {step.name!r}")
    for out_name, ref in chain.outputs.items():
        _check_ref(chain, ref, model_stems, f"chain output {out_name!r}")


def _check_ref(chain: Chain, ref: StemRef, model_stems: Mapping[str, list[str] | None], where: str) -> None:
    if ref.step == SONG:
        return
    stems = step_stems(chain, ref.step, model_stems)
    if stems is not None:
        match_stem(ref, stems, where)


def load_chain(source: str | Path | Mapping[str, Any]) -> Chain:
    """A chain from a dict, a YAML/JSON file, or the id of a chain preset."""
    if isinstance(source, Mapping):
        return parse_chain(source)
    path = Path(source)
    if path.is_file():
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML too
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            problem = str(exc).splitlines()[0]
            raise ChainError(f"cannot read chain {path}: {problem}") from None
        return parse_chain(data, default_name=path.stem)
    found = chain_presets()
    if str(source) in found:
        return parse_chain(found[str(source)], default_name=str(source))
    raise ChainError(f"no chain file or chain preset {str(source)!r} (presets: {', '.join(found) or 'none'}; "
                     f"see `vsep chain list`)")


def chain_presets() -> dict[str, dict[str, Any]]:
    """The chain presets shipped in ``vsep_core/data/chain_presets.json``: id -> document."""
    text = resources.files("vsep_core").joinpath("data", PRESETS_FILE).read_text(encoding="utf-8")
    return {pid: {"name": pid, **body} for pid, body in json.loads(text).get("chains", {}).items()}
