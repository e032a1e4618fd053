"""The plugin conformance kit: checks every architecture plugin's tests run on its loaded model.

    from vsep_core.testing import check_model
    def test_conformance(tiny_model):
        check_model(tiny_model)

:func:`check_model` separates short random inputs (several lengths, mono and stereo) and fails
with an AssertionError that says which rule of the :class:`vsep_core.api.SeparationModel`
contract was broken: stems (a non-empty list of unique names, the dict's keys in that order),
exact length, float32, channel handling, determinism, progress reports, and the error type of
bad input (3-D arrays, three channels for a stereo model): :class:`vsep_core.errors.UsageError`
from every plugin, so a caller catches one type.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from vsep_core.api import SeparationModel

DEFAULT_LENGTHS_SECONDS = (0.37, 1.0)


def _inputs(rate: int, seconds: float, channels: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = max(1, int(round(seconds * rate)))
    return (0.3 * rng.standard_normal((channels, n))).astype(np.float32)


def check_model(model: SeparationModel, lengths_seconds: Sequence[float] = DEFAULT_LENGTHS_SECONDS,
                channel_counts: Sequence[int] | None = None, check_determinism: bool = True) -> None:
    """Assert that `model` keeps the SeparationModel contract (see the module docstring).

    `channel_counts` defaults to the channels a model of this kind must take: 1 for a mono model
    (``model.channels == 1``; core feeds stereo one channel at a time), else 1 and 2 (mono
    input is duplicated or handled by the model, and the output keeps the input's channels or
    the model's).
    """
    assert isinstance(model, SeparationModel), "the model must have sample_rate, stems and separate()"
    rate = int(model.sample_rate)
    assert rate > 0, f"sample_rate must be a positive int, not {model.sample_rate!r}"
    stems = list(model.stems)
    assert stems and all(isinstance(s, str) and s for s in stems), f"stems must be non-empty names: {stems!r}"
    assert len(set(stems)) == len(stems), f"stem names must be unique: {stems!r}"
    mono_model = getattr(model, "channels", None) == 1
    counts = list(channel_counts or ((1,) if mono_model else (1, 2)))
    mode = getattr(model, "input_peak_normalization", None)
    assert mode in (None, "keep_level", "restore_level"), f"unknown input_peak_normalization {mode!r}"

    for k, seconds in enumerate(lengths_seconds):
        for channels in counts:
            audio = _inputs(rate, seconds, channels, seed=k)
            reports: list[tuple[int, int]] = []
            out = model.separate(audio.copy(), lambda done, total, seen=reports: seen.append((done, total)))
            assert list(out) == stems, f"separate() returned stems {list(out)}, model.stems says {stems}"
            for name, wave in out.items():
                wave = np.asarray(wave)
                assert wave.dtype == np.float32, f"stem {name}: dtype {wave.dtype}, expected float32"
                assert wave.ndim == 2, f"stem {name}: shape {wave.shape}, expected [channels, samples]"
                assert wave.shape[1] == audio.shape[1], (
                    f"stem {name}: {wave.shape[1]} samples for an input of {audio.shape[1]} (must be exact)")
                assert wave.shape[0] in (channels, 2), f"stem {name}: {wave.shape[0]} channels for {channels} in"
                assert np.all(np.isfinite(wave)), f"stem {name}: NaN or inf in the output"
            assert all(0 <= d <= t for d, t in reports), f"progress(done, total) out of range: {reports}"
            if check_determinism and k == 0:
                again = model.separate(audio.copy(), None)
                for name in stems:
                    assert np.array_equal(np.asarray(again[name]), np.asarray(out[name])), (
                        f"stem {name}: two runs on the same input differ")

    bad_inputs = {"3-D input (not [channels, samples])": np.zeros((1, 1, rate), np.float32)}
    if not mono_model:
        bad_inputs["3-channel input"] = np.zeros((3, rate), np.float32)
    for what, bad in bad_inputs.items():
        _assert_usage_error(model, bad, what)


def _assert_usage_error(model: SeparationModel, bad: np.ndarray, what: str) -> None:
    """Bad input is refused with the one error type every plugin uses for it: UsageError (a ValueError)."""
    from vsep_core.errors import UsageError

    try:
        model.separate(bad, None)
    except UsageError as exc:
        assert str(exc), "errors must say what is wrong"
    except Exception as exc:  # noqa: BLE001 - the point is to name the wrong type
        raise AssertionError(f"{what} raised {type(exc).__name__} ({exc}); every plugin raises "
                             f"vsep_core.errors.UsageError for bad input") from exc
    else:
        raise AssertionError(f"{what} must be refused")


def separate_as_core(model: SeparationModel, audio: np.ndarray, normalization: float = 0.9,
                     amplification: float = 0.0, progress: Callable[[int, int], None] | None = None,
                     ) -> dict[str, np.ndarray]:
    """What core's pipeline gives for `audio` (float32 [channels, samples] at the model's rate) before the
    writer: the model with core's steps around it, e.g. the whole-input peak gain the model asks for."""
    from pathlib import Path

    from vsep_core import pipeline

    opts = pipeline.OutputOptions(output_dir=Path("."), normalization_threshold=normalization,
                                  amplification_threshold=amplification)
    audio = np.asarray(audio, np.float32)
    gain = pipeline.input_gain(model, float(np.max(np.abs(audio), initial=0.0)), opts)
    return pipeline.run_model(model, audio, opts, progress, gain=gain, channels=pipeline.model_channels(model))
