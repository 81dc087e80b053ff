"""Backend selection, data movement and the errors the contract promises."""

from __future__ import annotations

import os
import subprocess
import sys
import types

import numpy as np
import pytest

import nu_xp
from nu_xp.backends import backend as backend_module
from nu_xp.backends import cupy_ops, registry
from tests.helpers import host, on


def test_default_is_numpy_float32():
    model = nu_xp.Linear(2, 3, seed=0)
    assert model.backend == "numpy"
    assert isinstance(model.weight.data, np.ndarray)
    assert model.weight.data.dtype == np.float32


def test_set_backend_by_name(backend):
    nu_xp.set_backend(backend)
    layer = nu_xp.Linear(2, 3, seed=0)
    assert layer.backend == backend
    assert nu_xp.backends.ops_of(layer.weight.data).name == backend


def test_set_backend_by_namespace(backend):
    ns = __import__(nu_xp.backends.OPS_CLASSES[backend].modules[0])
    nu_xp.set_backend(ns)
    assert nu_xp.Linear(2, 3).backend == backend


def test_use_backend_restores_previous(backend):
    before = nu_xp.get_backend()
    with nu_xp.use_backend(backend, dtype="float64"):
        inner = nu_xp.Linear(2, 3)
        assert inner.backend == backend
        assert nu_xp.backends.dtype_name(inner.dtype) == "float64"
    outer = nu_xp.Linear(2, 3)
    assert outer.backend == before
    assert nu_xp.backends.dtype_name(outer.dtype) == "float32"


def test_use_backend_restores_after_exception():
    with pytest.raises(RuntimeError), nu_xp.use_backend("numpy", dtype="float64"):
        raise RuntimeError("boom")
    assert nu_xp.Linear(1, 1).weight.data.dtype == np.float32


def test_per_layer_backend_and_dtype(backend):
    layer = nu_xp.Linear(2, 3, backend=backend, dtype="float64", seed=0)
    assert layer.backend == backend
    assert nu_xp.backends.dtype_name(layer.weight.data.dtype) == "float64"


@pytest.mark.parametrize("name", ["numpy", "array_api_strict", "torch"])
def test_env_variable_selects_default(name):
    pytest.importorskip(name)
    code = "import nu_xp; print(nu_xp.Linear(2, 2).backend_name)"
    env = dict(os.environ, NU_XP_BACKEND=name)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == name


def test_env_variable_unknown_name_is_clear():
    env = dict(os.environ, NU_XP_BACKEND="tensorflow")
    out = subprocess.run([sys.executable, "-c", "import nu_xp"], env=env, capture_output=True, text=True)
    assert out.returncode != 0
    assert "NU_XP_BACKEND" in out.stderr and "'numpy'" in out.stderr


def test_unknown_backend_lists_valid_names():
    with pytest.raises(
        ValueError, match="unknown backend 'mxnet'.*'numpy'.*'cupy'.*'torch'.*'array_api_strict'.*'jax'"
    ):
        nu_xp.set_backend("mxnet")
    with pytest.raises(ValueError, match="valid backends"):
        nu_xp.Linear(2, 2, backend="tensorflow")


def test_unknown_namespace_object():
    with pytest.raises(ValueError, match="unknown backend"):
        nu_xp.set_backend(types.ModuleType("mxnet.numpy"))


def test_missing_backend_names_the_extra(monkeypatch):
    monkeypatch.setattr(cupy_ops.CupyOps, "namespace_module", "nu_xp_no_such_module_for_test")
    registry.ops_for.cache_clear()
    backend_module._make_backend.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"'cupy' backend.*pip install \"nu_xp\[cupy\]\""):
            nu_xp.Linear(2, 2, backend="cupy")
    finally:
        registry.ops_for.cache_clear()
        backend_module._make_backend.cache_clear()


def test_cupy_without_cuda_is_a_runtime_error(monkeypatch):
    fake_runtime = types.SimpleNamespace(getDeviceCount=lambda: 0)
    fake_cupy = types.ModuleType("cupy")
    fake_cupy.cuda = types.SimpleNamespace(runtime=fake_runtime)
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    ops = object.__new__(cupy_ops.CupyOps)  # the class without importing a real cupy
    ops.library = fake_cupy
    with pytest.raises(RuntimeError, match="CUDA device"):
        ops.check_available()

    def broken():
        raise OSError("libcuda.so: cannot open shared object file")

    fake_cupy.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=broken))
    with pytest.raises(RuntimeError, match="working CUDA device.*libcuda"):
        ops.check_available()


def test_bad_dtype_and_device():
    with pytest.raises(ValueError, match="dtype must be one of"):
        nu_xp.Linear(2, 2, dtype="int32")
    with pytest.raises(ValueError, match="cpu"):
        nu_xp.Linear(2, 2, backend="numpy", device="cuda")


def test_torch_cuda_device_without_cuda_is_clear(torch):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(RuntimeError, match="CUDA"):
        nu_xp.Linear(2, 2, backend="torch", device="cuda")


# ------------------------------------------------------------------ inputs


OTHER = {"numpy": "array_api_strict", "array_api_strict": "numpy", "torch": "numpy", "cupy": "numpy", "jax": "numpy"}


def test_input_from_another_backend_is_a_type_error(backend):
    other = OTHER[backend]
    pytest.importorskip(other)
    model = nu_xp.Sequential(nu_xp.Linear(2, 3, backend=backend, seed=0), nu_xp.ReLU())
    x = on(other, [[1.0, 2.0]], dtype="float32")
    with pytest.raises(TypeError) as info:
        model(x)
    message = str(info.value)
    assert other in message and backend in message
    assert "model.to(" in message and "nu_xp.asarray(x, like=model)" in message


def test_input_on_another_strict_device_is_a_type_error():
    strict = pytest.importorskip("array_api_strict")
    layer = nu_xp.Linear(2, 3, backend="array_api_strict", seed=0)
    x = strict.asarray(np.ones((1, 2), dtype=np.float32), device=strict.Device("device1"))
    with pytest.raises(TypeError, match="device1.*CPU_DEVICE"):
        layer(x)


def test_real_inputs_are_cast_to_model_dtype(backend):
    layer = nu_xp.Linear(2, 3, backend=backend, seed=0)
    y64 = layer(on(backend, [[1.0, 2.0]], dtype="float64"))
    yint = layer(on(backend, [[1, 2]], dtype=None))
    assert y64.dtype == layer.dtype and yint.dtype == layer.dtype
    np.testing.assert_array_equal(host(y64), host(yint))


@pytest.mark.parametrize("bad", ["bool", "complex"])
def test_bool_and_complex_inputs_are_refused(backend, bad):
    if bad == "complex" and backend == "array_api_strict":
        x = nu_xp.asarray(np.array([[1 + 1j, 2]], dtype=np.complex64), like=backend)
    elif bad == "complex":
        x = nu_xp.asarray(np.array([[1 + 1j, 2]], dtype=np.complex64), like=backend)
    else:
        x = nu_xp.asarray(np.array([[True, False]]), like=backend)
    with pytest.raises(TypeError, match="dtype"):
        nu_xp.Linear(2, 3, backend=backend)(x)


@pytest.mark.parametrize("bad", [[[1.0, 2.0]], 3.0, "text", None])
def test_non_array_input_is_refused(bad):
    with pytest.raises(TypeError, match="array"):
        nu_xp.Linear(2, 3)(bad)
    with pytest.raises(TypeError, match="array"):
        nu_xp.Sigmoid()(bad)


def test_wrong_feature_count_names_shapes(backend):
    with pytest.raises(ValueError, match=r"\(N, 2\).*\(4, 3\)"):
        nu_xp.Linear(2, 3, backend=backend)(on(backend, np.ones((4, 3))))


# ------------------------------------------------------------------ moving data


def test_to_host_from_every_backend(backend):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    moved = nu_xp.asarray(a, like=backend)
    back = nu_xp.to_host(moved)
    assert isinstance(back, np.ndarray)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, a)


def test_to_host_lists_and_scalars():
    np.testing.assert_array_equal(nu_xp.to_host([1, 2]), np.array([1, 2]))
    assert nu_xp.to_host(2.5).shape == ()


def test_asarray_keeps_dtype_unless_asked(backend):
    labels = nu_xp.asarray(np.array([0, 2, 1]), like=backend)
    assert nu_xp.backends.dtype_name(labels.dtype) == "int64"
    floats = nu_xp.asarray(np.array([0.5]), like=backend)
    assert nu_xp.backends.dtype_name(floats.dtype) == "float64"
    cast = nu_xp.asarray(np.array([0.5]), like=backend, dtype="float32")
    assert nu_xp.backends.dtype_name(cast.dtype) == "float32"


def test_asarray_like_model_and_like_array(backend):
    model = nu_xp.Linear(2, 2, backend=backend, seed=0)
    x = nu_xp.asarray([[1.0, 2.0]], like=model)
    assert nu_xp.backends.ops_of(x).name == backend
    y = nu_xp.asarray(np.ones(3), like=x)
    assert nu_xp.backends.ops_of(y).name == backend
    assert nu_xp.asarray(x, like=model) is x


def test_asarray_between_every_pair(backend):
    for other in ("numpy", "array_api_strict", "torch"):
        try:
            source = nu_xp.asarray(np.array([1.5, -2.0], dtype=np.float32), like=other)
        except ImportError:
            continue
        moved = nu_xp.asarray(source, like=backend)
        assert nu_xp.backends.ops_of(moved).name == backend
        np.testing.assert_array_equal(nu_xp.to_host(moved), [1.5, -2.0])


def test_asarray_bad_like():
    with pytest.raises(TypeError, match="like="):
        nu_xp.asarray([1.0], like=3.0)


def test_model_to_moves_parameters_and_gradients(backend):
    model = nu_xp.Sequential(
        nu_xp.Linear(2, 3, seed=0, backend="numpy"), nu_xp.Tanh(), nu_xp.Linear(3, 1, seed=1, backend="numpy")
    )
    before = model.state_dict()
    model.backward(model(np.ones((2, 2), dtype=np.float32)) * 0 + 1)
    assert model.to(backend) is model
    assert model.backend == backend
    for p in model.parameters():
        assert nu_xp.backends.ops_of(p.data).name == backend
        assert nu_xp.backends.ops_of(p.grad).name == backend
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    out = model(nu_xp.asarray(np.ones((2, 2)), like=model))
    assert nu_xp.backends.ops_of(out).name == backend
    model.to(dtype="float64")
    assert nu_xp.backends.dtype_name(model.dtype) == "float64"
    assert model.backend == backend


def test_outputs_keep_backend_and_dtype(backend):
    x64 = on(backend, np.ones((2, 3)))
    for layer in (nu_xp.Sigmoid(), nu_xp.Tanh(), nu_xp.ReLU(), nu_xp.Softmax(), nu_xp.Identity()):
        y = layer(x64)
        assert nu_xp.backends.ops_of(y).name == backend
        assert nu_xp.backends.dtype_name(y.dtype) == "float64"
        g = layer.backward(x64)
        assert nu_xp.backends.dtype_name(g.dtype) == "float64"


def test_device_objects_round_trip_through_backend_keys():
    cupy_device = types.SimpleNamespace(id=1)
    assert cupy_ops.CupyOps.device_key(None, cupy_device) == 1  # type: ignore[arg-type]
    assert nu_xp.backends.ops_for("numpy").device_key("cuda:0") == "cuda:0"
    assert nu_xp.backends.ops_for("numpy").device_key(None) is None


def test_backend_device_objects_are_accepted_back(backend):
    layer = nu_xp.Linear(2, 2, backend=backend)
    again = nu_xp.get_backend(backend, layer.device, "float64")
    assert again.device_name == layer.backend.device_name
    assert layer.to(backend, layer.device) is layer


def test_strict_device_object():
    strict = pytest.importorskip("array_api_strict")
    layer = nu_xp.Linear(2, 2, backend="array_api_strict", device=strict.Device("device1"))
    assert layer.backend.device_name == "device1"
    x = strict.asarray(np.ones((1, 2), dtype=np.float32), device=strict.Device("device1"))
    assert layer(x).device == strict.Device("device1")


@pytest.mark.parametrize("name", ["float32", "float64", "int64", "int32", "int8", "uint8", "bool"])
def test_dtype_name_is_the_same_for_every_library(backend, name):
    """``dtype_name`` of each backend's own dtype object (and of numpy's), read without an exception raised
    and caught on the way (torch.compile cannot trace one)."""
    from nu_xp.backends import dtype_name, ops_for

    xp = ops_for(backend).xp
    assert dtype_name(getattr(xp, name)) == name
    assert dtype_name(np.dtype(name)) == name
    assert dtype_name(xp.asarray([1], dtype=getattr(xp, name)).dtype) == name
