"""The README's Python snippets run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_twenty_lines_and_fit_snippet(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0] + blocks[1], "README.md", "exec"), {})
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0] == "[False  True  True False]"
    epochs = [int(line.split()[1].split("/")[0]) for line in out[1:]]  # off a terminal: a line every few epochs
    assert epochs == [1, *range(50, 501, 50)] and out[-1].startswith("epoch 500/500 - loss:")
    assert (tmp_path / "xor.npz").exists() and (tmp_path / "history.png").exists()


def test_readme_commands_match_ci():
    text = README.read_text()
    commands = re.findall(r"```bash\n(python3 -m venv .*?)\n```", text)
    assert len(commands) == 2
    assert commands[1] in (README.parent / ".ci" / "run").read_text()


def test_readme_custom_layer_is_exact_and_saves(backend, tmp_path):
    import numpy as np

    import nu_xp

    block = next(b for b in re.findall(r"```python\n(.*?)```", README.read_text(), re.S) if "class Swish" in b)
    scope: dict = {"nu_xp": nu_xp}
    try:
        exec(compile(block, "README.md", "exec"), scope)
        swish = scope["Swish"]()
        x = nu_xp.asarray(np.linspace(-4, 4, 12).reshape(3, 4), like=backend, dtype="float64")
        assert nu_xp.gradcheck(swish, x) < 1e-6
        model = nu_xp.Sequential(nu_xp.Linear(4, 2, seed=0, backend=backend), swish)
        nu_xp.save(model, tmp_path / "swish.npz")
        assert type(nu_xp.load(tmp_path / "swish.npz", backend=backend)[1]).__name__ == "Swish"
    finally:
        nu_xp.LAYER_REGISTRY.pop("Swish", None)


def test_readme_real_run_resumes_to_the_bit(tmp_path, monkeypatch):
    """The README's stop-and-resume snippet runs, and ends on the bits of a run that never stopped."""
    import numpy as np

    import nu_xp

    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    block = next(b for b in blocks if "ArrayDataset" in b and "load_checkpoint" in b)
    monkeypatch.chdir(tmp_path)
    scope: dict = {"__name__": "readme_real_run"}
    exec(compile(block, "README.md", "exec"), scope)
    model, opt, _, ema, callbacks = scope["build"]()
    nu_xp.fit(model, nu_xp.CrossEntropyLoss(), opt, scope["loader"], epochs=5, clip_grad_norm=1.0,
              callbacks=callbacks, progress=False)  # fmt: skip
    resumed = [*scope["model"].parameters(), *scope["ema"].parameters()]
    for a, b in zip(resumed, [*model.parameters(), *ema.parameters()], strict=True):
        np.testing.assert_array_equal(nu_xp.to_host(a.data), nu_xp.to_host(b.data))
    assert len((tmp_path / "run" / "log.csv").read_text().splitlines()) == 1 + 5
