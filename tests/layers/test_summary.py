"""``model.summary(input_shape)``: rows, shapes, totals, and the model left unchanged."""

from __future__ import annotations

import numpy as np
import pytest

import nu_xp


def test_summary_rows_shapes_and_totals(backend):
    model = nu_xp.Sequential(
        nu_xp.Conv1d(1, 4, 5, stride=2, seed=0, backend=backend),
        nu_xp.BatchNorm1d(4, backend=backend),
        nu_xp.ReLU(),
        nu_xp.Flatten(),
        nu_xp.Linear(72, 3, seed=1, backend=backend),
    )
    before = model.state_dict()
    text = model.summary((1, 40))
    lines = text.splitlines()
    assert lines[0].split() == ["layer", "type", "output", "shape", "parameters"]
    rows = {line.split()[0]: line for line in lines[2:7]}
    assert "Conv1d" in rows["0"] and "(N, 4, 18)" in rows["0"] and rows["0"].endswith("24")
    assert "(N, 72)" in rows["3"] and rows["4"].endswith("219")
    assert f"total parameters: {model.num_parameters():,}" in text and "buffers: 9" in text
    after = model.state_dict()
    for k, v in before.items():
        np.testing.assert_array_equal(after[k], v)  # running statistics untouched
    assert model.training  # the mode too


def test_summary_of_nested_containers_and_embeddings():
    model = nu_xp.Sequential(nu_xp.Embedding(10, 4), nu_xp.Residual(nu_xp.Linear(4, 4), nu_xp.Tanh()), nu_xp.Flatten())
    text = model.summary((3,))
    assert "1.0" in text and "(N, 3, 4)" in text and "(N, 12)" in text


def test_register_layer_refuses_a_config_it_would_lose():
    class Kept(nu_xp.Layer):
        def __init__(self, width=3):
            super().__init__()
            self.width = width

    class Renamed(nu_xp.Layer):
        def __init__(self, width=3):
            super().__init__()
            self._w = width

    class Explicit(Renamed):
        def get_config(self):
            return {"width": self._w}

    try:
        nu_xp.register_layer(Kept)
        nu_xp.register_layer(Explicit)
        with pytest.raises(TypeError, match=r"\['width'\] are not kept.*override get_config"):
            nu_xp.register_layer(Renamed)
        assert "Renamed" not in nu_xp.LAYER_REGISTRY
    finally:
        for name in ("Kept", "Explicit", "Renamed"):
            nu_xp.LAYER_REGISTRY.pop(name, None)


def test_the_batch_axis_is_found_wherever_it_stands_and_the_table_shows_itself(backend):
    model = nu_xp.Sequential(nu_xp.Embedding(20, 8, backend=backend), nu_xp.LSTM(8, 16, batch_first=True,
                             backend=backend), nu_xp.Select(1), nu_xp.Select(0))  # fmt: skip
    text = model.summary((19,))
    rows = {line.split()[0]: line for line in text.splitlines()[2:6]}
    assert "((N, 19, 16), ((1, N, 16), (1, N, 16)))" in rows["1"]  # LSTM: output, (h_n, c_n)
    assert "((1, N, 16), (1, N, 16))" in rows["2"] and "(1, N, 16)" in rows["3"]
    assert "→ output (1, N, 16)" in text
    assert repr(text) == str(text)  # at a prompt the table shows itself, as Keras prints it
    assert isinstance(text, str)
