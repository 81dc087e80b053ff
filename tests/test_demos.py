"""The examples run end to end (small settings, no display) and reach their stated figures."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parent.parent


def run_example(name, capsys, *args):
    module = importlib.import_module(f"nu_xp.demos.{name}")
    assert module.main(list(args)) == 0
    return capsys.readouterr().out


def test_xor_example(backend, tmp_path, capsys):
    out = run_example("xor", capsys, "--backend", backend, "--epochs", "1500", "--out", str(tmp_path))
    assert "accuracy: 100%" in out
    assert (tmp_path / "xor.png").stat().st_size > 5000


def test_regression_example(tmp_path, capsys):
    out = run_example("regression", capsys, "--epochs", "60", "--out", str(tmp_path), "--no-progress")
    rows = {
        m.group(1).strip(): [float(v) for v in m.group(2).split()]
        for m in re.finditer(r"^(sin\(2x\) \+ x/2|diabetes)\s+(.*)$", out, re.MULTILINE)
    }
    _, r2, _, sk_r2 = rows["sin(2x) + x/2"]
    assert r2 > 0.85 and r2 > sk_r2 - 0.05
    _, r2, _, sk_r2 = rows["diabetes"]
    assert r2 > 0.25 and r2 > sk_r2 - 0.1
    assert (tmp_path / "regression.png").stat().st_size > 5000


def test_digits_example(backend, tmp_path, capsys):
    if backend != "numpy":
        epochs = "3"  # the other backends: end to end only
    else:
        epochs = "12"
    out = run_example(
        "digits", capsys, "--backend", backend, "--epochs", epochs, "--out", str(tmp_path), "--no-progress"
    )
    ours, sk = map(float, re.search(r"nu_xp mlp ([\d.]+)\s+sklearn MLPClassifier ([\d.]+)", out).groups())
    assert ours >= (0.95 if epochs == "12" else 0.85)
    assert 0.5 < sk <= 1.0
    assert (tmp_path / "digits.png").stat().st_size > 5000
    assert (tmp_path / "digits_model.npz").exists()


def test_digits_cnn_example(tmp_path, capsys):
    out = run_example("digits", capsys, "--model", "cnn", "--epochs", "8", "--out", str(tmp_path), "--no-progress")
    ours = float(re.search(r"nu_xp cnn ([\d.]+)", out).group(1))
    assert ours >= 0.95
    assert (tmp_path / "digits_cnn.png").stat().st_size > 5000
    assert isinstance(__import__("nu_xp").load(tmp_path / "digits_cnn.npz")[0], __import__("nu_xp").Conv2d)


def test_mnist1d_example_tracks_pytorch(tmp_path, capsys):
    """A short run (the full table is in the README): same weights and batches give nearly the same accuracy."""
    pytest.importorskip("mnist1d")
    pytest.importorskip("torch")
    out = run_example("mnist1d", capsys, "--steps", "300", "--every", "150", "--out", str(tmp_path))
    rows = {
        m.group(1): (float(m.group(2)), float(m.group(3)))
        for m in re.finditer(r"^(\w[\w ]+?)\s+\d+%\s+([\d.]+)%\s+([\d.]+)%$", out, re.M)
    }
    assert set(rows) == {"logistic regression", "MLP", "CNN"}
    for ours, theirs in rows.values():
        assert abs(ours - theirs) < 6.0  # percentage points, after 300 steps
    assert rows["CNN"][0] > 60.0
    assert (tmp_path / "mnist1d.png").stat().st_size > 5000


def test_chargpt_example_tracks_pytorch(tmp_path, capsys):
    """A short run of the character-level GPT: the same weights and batches give the same losses as PyTorch."""
    pytest.importorskip("torch")
    args = ["--steps", "30", "--every", "15", "--width", "32", "--heads", "2", "--context", "16", "--batch", "8"]
    out = run_example("chargpt", capsys, *args, "--sample", "40", "--out", str(tmp_path))
    rows = [
        tuple(map(float, m.groups()))
        for m in re.finditer(r"^\s+\d+\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", out, re.M)
    ]
    assert len(rows) == 2
    for train, valid, torch_train, torch_valid in rows:
        assert abs(valid - torch_valid) < 0.05 and abs(train - torch_train) < 0.05
    assert rows[-1][1] < rows[0][1] < 4.7  # it learns (log 103 ≈ 4.63 at the start)
    assert "sample (temperature 0.8)" in out
    model = __import__("nu_xp").load(tmp_path / "chargpt_model.npz")
    assert model[-1].weight is model[0].tok.weight  # the tie survives the file


def test_sequences_example(backend, tmp_path, capsys):
    out = run_example(
        "sequences", capsys, "--epochs", "6", "--backend", backend, "--out", str(tmp_path), "--no-progress"
    )
    accuracy = float(re.search(r"test accuracy ([\d.]+)", out).group(1))
    assert accuracy > 0.85
    assert (tmp_path / "sequences.png").stat().st_size > 5000


@pytest.mark.parametrize(("up", "bound"), [("transpose", 0.7), ("upsample", 0.9)])
def test_autoencoder_example_denoises_beside_pytorch(backend, up, bound, tmp_path, capsys):
    """Both decoders cut the noisy images' error in 3 epochs; with torch installed, PyTorch's twin trains
    from the same weights on the same batches to the same losses (float32, a few steps apart at most)."""
    out = run_example(
        "autoencoder", capsys, "--epochs", "3", "--up", up, "--backend", backend, "--out", str(tmp_path),
        "--no-progress",
    )  # fmt: skip
    found = re.search(r"noisy input ([\d.]+), denoised by nu_xp ([\d.]+)(?:, by PyTorch ([\d.]+))?", out)
    noisy, ours, theirs = float(found.group(1)), float(found.group(2)), found.group(3)
    assert ours < bound * noisy
    if theirs is not None:
        assert abs(ours - float(theirs)) < 0.05 * ours
        rows = re.findall(r"^\s+(\d+)\s+([\d.]+)\s+([\d.]+)", out, re.MULTILINE)
        assert len(rows) == 3 and all(abs(float(a) - float(b)) < 0.03 * float(b) for _, a, b in rows)
    assert (tmp_path / "autoencoder.png").stat().st_size > 5000


def test_realrun_example_resumes_to_the_bit(backend, tmp_path, capsys):
    out = run_example(
        "realrun", capsys, "--samples", "8000", "--batch-size", "64", "--epochs", "4", "--backend", backend,
        "--out", str(tmp_path), "--no-progress",
    )  # fmt: skip
    assert "resumed run == uninterrupted run, bit for bit (weights and EMA): True" in out
    assert "resumed from" in out and "-- stopped after epoch 2 --" in out
    assert float(re.search(r"test accuracy ([\d.]+)", out).group(1)) > 0.85
    rows = (tmp_path / "realrun.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,") and [r.split(",")[0] for r in rows[1:]] == ["0", "1", "2", "3"]
    assert (tmp_path / "realrun.png").stat().st_size > 5000


def test_examples_run_as_scripts(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "xor.py"), "--epochs", "50", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "after 50 epochs" in out


def test_cli_demo(tmp_path, monkeypatch, capsys):
    from nu_xp import cli

    monkeypatch.chdir(tmp_path)
    assert cli.main(["demo", "xor", "--epochs", "100"]) == 0
    out = capsys.readouterr().out
    assert "after 100 epochs" in out and "nu_xp_demo" in out
    assert (tmp_path / "nu_xp_demo" / "xor.png").exists()  # the demos' default output folder
    with pytest.raises(SystemExit):
        cli.main(["demo", "mnist"])
    with pytest.raises(SystemExit):
        cli.main(["demo", "xor", "--help"])
    shown = capsys.readouterr().out
    for option in ("--backend", "--epochs", "--seed", "--lr", "--out", "--no-progress"):
        assert option in shown


def test_demo_help_describes_every_demo(capsys):
    from nu_xp.cli import main
    from nu_xp.demos import DEMOS

    with pytest.raises(SystemExit) as info:
        main(["demo", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in DEMOS) and "MNIST-1D" in out


def test_every_demo_takes_the_common_options(capsys):
    from nu_xp.demos import DEMOS

    for name in DEMOS:
        module = importlib.import_module(f"nu_xp.demos.{name}")
        with pytest.raises(SystemExit) as info:
            module.main(["--help"])
        assert info.value.code == 0
        shown = capsys.readouterr().out
        missing = [o for o in ("--backend", "--epochs", "--seed", "--lr", "--out", "--no-progress") if o not in shown]
        assert not missing, f"nu-xp demo {name} lacks {missing}"
        assert f"usage: nu-xp demo {name}" in shown


def test_epochs_set_the_steps_of_a_demo_that_counts_steps(tmp_path, capsys):
    out = run_example("mnist1d", capsys, "--epochs", "1", "--models", "logistic", "--no-torch", "--out",
                      str(tmp_path), "--every", "20")  # fmt: skip
    assert "after 40 steps" in out  # 4000 series in batches of 100


def test_a_demo_run_as_a_script_names_the_script_in_its_help(tmp_path):
    out = subprocess.run(
        [sys.executable, "examples/digits.py", "--help"], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert out.startswith("usage: python examples/digits.py")
