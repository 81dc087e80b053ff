"""Frictions a new user met: file names both ways, dtype objects, reprs, and messages that name the fix."""

from __future__ import annotations

import numpy as np
import pytest

import nu_xp


def test_a_model_saved_as_model_loads_as_model_npz_and_back(tmp_path):
    model = nu_xp.Sequential(nu_xp.Linear(2, 1, seed=0))
    nu_xp.save(model, tmp_path / "model")
    assert (tmp_path / "model").is_file() and not (tmp_path / "model.npz").exists()
    assert isinstance(nu_xp.load(tmp_path / "model.npz"), nu_xp.Sequential)
    np.savez(tmp_path / "weights", **model.state_dict())  # numpy appends .npz
    model.load_weights(tmp_path / "weights")
    with pytest.raises(nu_xp.ModelFileError, match=r"nor nothing\.npz"):
        nu_xp.load(tmp_path / "nothing")


def test_model_dtype_is_the_arrays_dtype_object(backend):
    layer = nu_xp.Linear(2, 2, backend=backend)
    assert layer.dtype == layer.weight.data.dtype
    assert nu_xp.backends.dtype_name(layer.dtype) == "float32"


def test_reprs_show_tuples_and_only_non_default_arguments():
    assert repr(nu_xp.Conv2d(1, 6, 5, padding=2)) == "Conv2d(1, 6, kernel_size=(5, 5), padding=(2, 2))"
    assert repr(nu_xp.Embedding(10, 4)) == "Embedding(10, 4)"
    assert repr(nu_xp.Dropout(0.3)) == "Dropout(p=0.3)"
    assert "init" not in repr(nu_xp.Conv1d(2, 3, 3))


def test_messages_say_how_to_fix_it(tmp_path):
    with pytest.raises(ValueError, match=r"y\.ravel\(\)"):
        nu_xp.CrossEntropyLoss()(np.zeros((3, 4)), np.zeros((3, 1), dtype=int))
    with pytest.raises(ValueError, match=r"transpose\(0, 3, 1, 2\)"):
        nu_xp.Conv2d(3, 4, 3)(np.zeros((2, 8, 8, 3), np.float32))
    nu_xp.save(nu_xp.Sequential(nu_xp.Linear(2, 1, dtype="float64")), tmp_path / "f64.npz")
    with pytest.raises(nu_xp.ModelFileError, match=r"nu_xp\.load\(path, dtype='float32'\)"):
        nu_xp.Sequential(nu_xp.Linear(2, 1)).load_weights(tmp_path / "f64.npz")
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": [1.0, 2.0], "city": ["x", "y"]})
    model = nu_xp.Linear(2, 1)
    with pytest.raises(TypeError, match=r"columns \['city'\]"):
        nu_xp.fit(model, nu_xp.MSELoss(), nu_xp.optim.SGD(model.parameters()), frame, np.zeros(2), epochs=1)
