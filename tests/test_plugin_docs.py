"""Every hook has a section in docs/plugins/hooks.md with a runnable example, and the examples run."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from vsep_core import hookspecs

HOOKS_DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins" / "hooks.md"


def _sections() -> dict[str, str]:
    text = HOOKS_DOC.read_text(encoding="utf-8")
    parts = re.split(r"^## `(\w+)`\s*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_every_hook_has_a_section_with_an_example():
    hooks = sorted(n for n in dir(hookspecs) if n.startswith("vsep_") and callable(getattr(hookspecs, n)))
    sections = _sections()
    assert hooks and sorted(sections) == hooks
    for name, body in sections.items():
        assert f"def {name}(" in body, f"the section of {name} has no example implementing it"


def test_the_examples_run():
    for name, body in _sections().items():
        code = "\n".join(re.findall(r"```python\n(.*?)```", body, flags=re.S))
        namespace: dict = {}
        exec(compile(code, f"hooks.md#{name}", "exec"), namespace)  # noqa: S102 - our own docs
        result = namespace[name](*([None, False] if name == "vsep_select_device" else []))
        assert result is None or isinstance(result, (list, dict)), name
        if name == "vsep_architectures":
            arch = result[0]
            model = arch.load(type("Ctx", (), {"params": arch.params()})())
            audio = np.random.default_rng(0).standard_normal((2, 1000)).astype(np.float32)
            from vsep_core.testing import check_model

            stems = model.separate(audio)
            assert set(stems) == {"Mid", "Side"}
            assert np.allclose(stems["Mid"] + stems["Side"], audio, atol=1e-6)
            check_model(model)
