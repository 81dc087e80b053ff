"""The third hostile review: each case failed before its fix, on every backend it concerns.

Items 3 (the loss scale's floor) and 4 (thread counts) are in ``tests/training``; the estimators' in
``test_sklearn.py``.
"""

from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pytest

import nu_xp
from tests.helpers import host, on, rewrite_meta

# ---------------------------------------------------------------------------- 1. the first layer


@pytest.mark.parametrize("empty", ["one", "nested"])
def test_empty_containers_in_front_do_not_hide_the_embedding(backend, tmp_path, empty):
    front = nu_xp.Sequential() if empty == "one" else nu_xp.Sequential(nu_xp.Sequential(), nu_xp.Sequential())
    model = nu_xp.Sequential(front, nu_xp.Embedding(10, 3, seed=0, backend=backend), nu_xp.Flatten(),
                             nu_xp.Linear(6, 2, seed=1, backend=backend))  # fmt: skip
    assert isinstance(model.first_layer(), nu_xp.Embedding) and model.input_is_indices()
    ids = np.array([[1, 2], [3, 9]])
    assert host(model.predict(ids)).shape == (2, 2)
    assert "(N, 2, 3)" in model.summary((2,))
    history = nu_xp.fit(model, nu_xp.CrossEntropyLoss(), nu_xp.optim.SGD(model.parameters(), lr=0.1), ids,
                        np.array([0, 1]), epochs=1, progress=False)  # fmt: skip
    assert np.isfinite(history["loss"][-1])


def test_onnx_export_of_an_embedding_behind_an_empty_container_takes_int64(tmp_path):
    onnx = pytest.importorskip("onnx")
    model = nu_xp.Sequential(nu_xp.Sequential(), nu_xp.Embedding(10, 3, seed=0), nu_xp.Flatten())
    path = nu_xp.export_onnx(model, tmp_path / "m.onnx", input_shape=(4,))
    graph = onnx.load(str(path)).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64


# ---------------------------------------------------------------------------- 2. probes checked before they are made


@pytest.mark.parametrize("what", ["summary", "export_onnx"])
def test_a_huge_input_shape_is_a_value_error_naming_it(tmp_path, what):
    model = nu_xp.Sequential(nu_xp.Linear(3, 2, seed=0))
    with pytest.raises(ValueError, match=r"input_shape \(1000000000000,\).*GiB.*Linear\(in_features=3"):
        if what == "summary":
            model.summary((10**12,))
        else:
            pytest.importorskip("onnx")
            nu_xp.export_onnx(model, tmp_path / "m.onnx", input_shape=(10**12,))
    assert not (tmp_path / "m.onnx").exists()


# ---------------------------------------------------------------------------- 6. pickling on JAX


def test_optimizer_state_and_a_fitted_estimator_pickle_on_every_backend(backend):
    model = nu_xp.Linear(3, 2, seed=0, backend=backend)
    opt = nu_xp.optim.Adam(model.parameters(), lr=0.1)
    x = nu_xp.asarray(np.ones((4, 3), np.float32), like=model, dtype=model.dtype)
    for _ in range(2):
        opt.zero_grad()
        model(x)
        model.backward(nu_xp.asarray(np.ones((4, 2), np.float32), like=model, dtype=model.dtype))
        opt.step()
    for twin in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        np.testing.assert_array_equal(host(twin.state[0]["exp_avg"]), host(opt.state[0]["exp_avg"]))
    pytest.importorskip("sklearn")
    from nu_xp.sklearn import MLPRegressor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # three iterations do not converge
        reg = MLPRegressor(backend=backend, hidden_layer_sizes=(4,), max_iter=3, random_state=0)
        reg.fit(np.random.default_rng(0).normal(size=(10, 3)), np.arange(10.0))
    again = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(again.predict(np.ones((2, 3))), reg.predict(np.ones((2, 3))))


# ---------------------------------------------------------------------------- 7. empty sequences


def test_attention_over_no_keys_gives_the_output_bias_as_pytorch(backend, torch):
    ours = nu_xp.MultiheadAttention(4, 2, batch_first=True, seed=0, backend=backend, dtype="float64")
    ours.out_proj.bias.data = on(backend, np.arange(4.0))
    theirs = torch.nn.MultiheadAttention(4, 2, batch_first=True, dtype=torch.float64)
    theirs.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in ours.state_dict().items()})
    q = np.random.default_rng(0).normal(size=(2, 3, 4))
    empty = np.zeros((2, 0, 4))
    out, weights = ours(on(backend, q), on(backend, empty), on(backend, empty))
    expected, _ = theirs(torch.from_numpy(q), torch.from_numpy(empty), torch.from_numpy(empty))
    np.testing.assert_allclose(host(out), expected.detach().numpy(), atol=1e-12)
    assert tuple(weights.shape) == (2, 3, 0)
    dq, dk, _ = ours.backward(on(backend, np.ones((2, 3, 4))))
    assert tuple(dq.shape) == (2, 3, 4) and not np.any(host(dq)) and tuple(dk.shape) == (2, 0, 4)


def test_an_encoder_layer_on_an_empty_sequence_returns_an_empty_output(backend):
    layer = nu_xp.TransformerEncoderLayer(4, 2, 8, dropout=0.0, batch_first=True, seed=0, backend=backend)
    x = on(backend, np.zeros((2, 0, 4)), dtype="float32")
    out = layer(x)
    assert tuple(out.shape) == (2, 0, 4)
    assert tuple(layer.backward(out).shape) == (2, 0, 4)


# ---------------------------------------------------------------------------- 8. flags in files


@pytest.mark.parametrize("value", ["no", [True], 1, None])
@pytest.mark.parametrize(
    ("layer", "flag"),
    [
        (lambda: nu_xp.MultiheadAttention(4, 2), "batch_first"),
        (lambda: nu_xp.LSTM(3, 4), "batch_first"),
        (lambda: nu_xp.TransformerEncoderLayer(4, 2, 8), "norm_first"),
        (lambda: nu_xp.Linear(3, 2), "bias"),
        (lambda: nu_xp.BatchNorm1d(3), "affine"),
    ],
    ids=["mha", "lstm", "encoder", "linear", "batchnorm"],
)
def test_every_flag_in_a_file_must_be_true_or_false(tmp_path, layer, flag, value):
    nu_xp.save(nu_xp.Sequential(layer()), tmp_path / "good.npz")

    def forge(meta):
        meta["architecture"]["layers"][0]["config"][flag] = value
        return meta

    rewrite_meta(tmp_path / "good.npz", tmp_path / "bad.npz", forge)
    with pytest.raises(nu_xp.ModelFileError, match=rf"{flag}=.*must be true or false"):
        nu_xp.load(tmp_path / "bad.npz")


def test_attention_flags_are_checked_in_code_too():
    with pytest.raises(TypeError, match="batch_first must be True or False"):
        nu_xp.MultiheadAttention(4, 2, batch_first="no")


# ---------------------------------------------------------------------------- 9. ties


CYCLE = {"0.weight": "1.weight", "1.weight": "0.weight"}
CHAIN = {"2.weight": "1.weight", "1.weight": "0.weight"}


@pytest.mark.parametrize("ties", [CYCLE, CHAIN], ids=["cycle", "chain"])
def test_tie_cycles_and_chains_are_refused(tmp_path, ties):
    model = nu_xp.Sequential(nu_xp.Linear(3, 3, seed=0), nu_xp.Linear(3, 3, seed=1), nu_xp.Linear(3, 3, seed=2))
    nu_xp.save(model, tmp_path / "good.npz")

    def forge(meta):
        meta["ties"] = ties
        return meta

    rewrite_meta(tmp_path / "good.npz", tmp_path / "bad.npz", forge)
    with pytest.raises(nu_xp.ModelFileError, match="no chains, no cycles"):
        nu_xp.load(tmp_path / "bad.npz")


# ---------------------------------------------------------------------------- 10. float64 on JAX


def test_asarray_refuses_float64_where_jax_computes_float32():
    """In a process without JAX's 64-bit mode (the tests turn it on)."""
    pytest.importorskip("jax")
    import os
    import subprocess
    import sys

    script = (
        "import numpy as np, nu_xp\n"
        "model = nu_xp.Linear(2, 2, backend='jax', seed=0)\n"
        "assert nu_xp.asarray(np.ones(3), like=model, dtype='float32').dtype == model.dtype\n"
        "try:\n"
        "    nu_xp.asarray(np.ones(3), like=model, dtype='float64')\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
    )
    env = {**os.environ, "JAX_ENABLE_X64": "0", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "64-bit mode" in out.stdout


# ---------------------------------------------------------------------------- 11. earlier reviews


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16"])
def test_embedding_takes_small_integer_indices(backend, torch, dtype):
    layer = nu_xp.Embedding(300, 2, seed=0, backend=backend, dtype="float64", padding_idx=299)
    ids = np.array([[1, 2, 100], [3, 3, 7]], dtype=dtype)
    out = layer(nu_xp.asarray(ids, like=layer))
    np.testing.assert_array_equal(host(out), host(layer.weight.data)[ids.astype(np.int64)])
    layer.backward(on(backend, np.ones((2, 3, 2))))
    twin = torch.nn.Embedding(300, 2, padding_idx=299, dtype=torch.float64)
    twin(torch.from_numpy(ids.astype(np.int64))).sum().backward()
    np.testing.assert_array_equal(host(layer.weight.grad), twin.weight.grad.numpy())
    with pytest.raises(ValueError, match=r"indices must be in \[0, 300\)"):
        layer(nu_xp.asarray(np.array([-1], dtype=dtype) if dtype != "uint8" else np.array([1]) - 2, like=layer))


def test_evaluate_with_small_integer_labels_equals_int64_labels(backend):
    model = nu_xp.Linear(4, 300, seed=0, backend=backend)
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 256, 20)
    wide = nu_xp.evaluate(model, nu_xp.CrossEntropyLoss(), x, y)["loss"]
    assert nu_xp.evaluate(model, nu_xp.CrossEntropyLoss(), x, y.astype(np.uint8))["loss"] == wide
    assert nu_xp.evaluate(model, nu_xp.CrossEntropyLoss(), x, y.astype(np.int16))["loss"] == wide


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_a_loss_gradient_of_another_backend_is_a_type_error(torch, reduction):
    loss = nu_xp.MSELoss(reduction=reduction)
    loss(np.ones((2, 2)), np.zeros((2, 2)))
    grad = torch.ones(2, 2, dtype=torch.float64) if reduction == "none" else torch.tensor(2.0, dtype=torch.float64)
    with pytest.raises(TypeError, match="grad is a torch tensor.*the forward computed on numpy"):
        loss.backward(grad)
    np.testing.assert_array_equal(loss.backward(np.ones((2, 2)) if reduction == "none" else np.float32(2.0)),
                                  np.full((2, 2), 2.0 if reduction == "none" else 1.0))  # fmt: skip


def test_validation_split_names_the_sizes_the_user_gave():
    model = nu_xp.Linear(2, 1, seed=0)
    with pytest.raises(ValueError, match="x has 10 samples but y has 12"):
        nu_xp.fit(model, nu_xp.MSELoss(), nu_xp.optim.SGD(model.parameters(), lr=0.1), np.ones((10, 2)),
                  np.ones((12, 1)), epochs=1, validation_split=0.2, progress=False)  # fmt: skip


# ---------------------------------------------------------------------------- 12. save never writes a dead file


def test_save_refuses_an_array_reshaped_behind_its_layer_and_keeps_the_old_file(backend, tmp_path):
    model = nu_xp.Sequential(nu_xp.Linear(4, 6, seed=0, backend=backend))
    path = tmp_path / "good.npz"
    nu_xp.save(model, path)
    before = path.read_bytes()
    w = model[0].weight.data
    model[0].weight.data = nu_xp.backends.ops_of(w).xp.reshape(w, (4, 6))
    with pytest.raises(nu_xp.ModelFileError, match=r"left as it was.*0\.weight has shape \(6, 4\)"):
        nu_xp.save(model, path)
    assert path.read_bytes() == before
    nu_xp.load(path)


def test_save_refuses_a_flag_its_own_layer_would_not_load(tmp_path):
    @nu_xp.register_layer
    class Flagged(nu_xp.Layer):
        def __init__(self, on: bool = False) -> None:
            super().__init__()
            self.on = on

        def forward(self, x):
            return x

        def backward(self, grad):
            return grad

    try:
        with pytest.raises(nu_xp.ModelFileError, match="on=1.*must be true or false"):
            nu_xp.save(nu_xp.Sequential(Flagged(on=1)), tmp_path / "f.npz")
        assert not (tmp_path / "f.npz").exists()
        nu_xp.save(nu_xp.Sequential(Flagged(on=True)), tmp_path / "f.npz")
        assert nu_xp.load(tmp_path / "f.npz")[0].on is True
    finally:
        nu_xp.LAYER_REGISTRY.pop("Flagged", None)
