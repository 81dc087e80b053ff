"""Every backend's fast kernels agree with the array-API standard functions they stand in for."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import nu_xp
from tests.helpers import host, on

values_2d = arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 4)), elements=st.floats(-1e3, 1e3))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    ("shape", "axis"), [((6, 3), 0), ((0, 3), 0), ((5, 0), 0), ((2, 3, 4), 0), ((2, 3, 4), (0, 1)), ((2, 3, 4), (0, 2))]
)
@pytest.mark.parametrize("transposed", [False, True])
def test_sum_over_leading_axes_agrees_with_the_standard(backend, dtype, shape, axis, transposed):
    """``ops.sum`` over the leading axes (a bias's gradient; NumPy's as a product with a vector of ones) equals
    ``xp.sum`` in value, shape and dtype, on contiguous and transposed input, empty axes included, and carries
    ``inf`` and NaN as the standard sum does."""
    ops = nu_xp.backends.ops_for(backend)
    values = np.random.default_rng(len(shape)).normal(size=shape[::-1] if transposed else shape) * 100
    if values.size:
        values.flat[0], values.flat[-1] = np.inf, np.nan
    a = on(backend, values, dtype=dtype)
    if transposed:
        a = ops.xp.permute_dims(a, tuple(range(a.ndim))[::-1])
    ours, ref = ops.sum(a, axis=axis), ops.xp.sum(a, axis=axis)
    assert ours.dtype == ref.dtype and tuple(ours.shape) == tuple(ref.shape)
    np.testing.assert_allclose(host(ours), host(ref), rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-3)


@given(
    values_2d,
    st.sampled_from(["float32", "float64", "int64", "bool"]),
    st.sampled_from([None, 0, 1, (0, 1)]),
    st.booleans(),
)
def test_reductions_and_astype_agree_with_the_standard(backend, values, dtype, axis, keepdims):
    ops = nu_xp.backends.ops_for(backend)
    xp = ops.xp
    a = on(backend, values.astype(dtype), dtype=None)
    ref_all = xp.all(a) if dtype == "bool" else xp.all(a != 0)
    assert ops.all(a if dtype == "bool" else a != 0) is bool(ref_all)
    names = ["sum", "max", "min"] if dtype != "bool" else []
    for name in names:
        ours = getattr(ops, name)(a, axis=axis, keepdims=keepdims)
        ref = getattr(xp, name)(a, axis=axis, keepdims=keepdims)
        assert ours.dtype == ref.dtype and tuple(ours.shape) == tuple(ref.shape)
        np.testing.assert_allclose(host(ours), host(ref), rtol=1e-6)
    for target in (xp.float32, xp.float64):
        cast = ops.astype(a, target)
        assert cast.dtype == target
        np.testing.assert_array_equal(host(cast), host(xp.astype(a, target)))


@given(values_2d, st.sampled_from(["float32", "float64"]), st.sampled_from([0.0, -1.5, 2, 7.25]))
def test_clamps_agree_with_maximum_and_minimum(backend, values, dtype, bound):
    ops = nu_xp.backends.ops_for(backend)
    xp = ops.xp
    a = on(backend, values.astype(dtype), dtype=None)
    full = xp.full(a.shape, float(bound), dtype=a.dtype, device=ops.device_of(a))
    for ours, ref in ((ops.clamp_min(a, bound), xp.maximum(a, full)), (ops.clamp_max(a, bound), xp.minimum(a, full))):
        assert ours.dtype == a.dtype
        np.testing.assert_array_equal(host(ours), host(ref))


def test_asarray_keeps_or_casts(backend):
    ops = nu_xp.backends.ops_for(backend)
    host_values = np.arange(6, dtype=np.float64).reshape(2, 3)
    a = ops.asarray(host_values, device=ops.default_device())
    assert nu_xp.backends.dtype_name(a.dtype) == "float64"
    b = ops.asarray(host_values, dtype=ops.xp.float32, device=ops.default_device())
    assert nu_xp.backends.dtype_name(b.dtype) == "float32"
    np.testing.assert_array_equal(host(b), host_values.astype(np.float32))


def test_no_code_outside_a_backend_module_names_a_backend():
    """The architecture's rule: only a backend's own modules name it in code (a string or an import): its
    ``Ops`` class's module and the kernel modules beside it named after it (``jax_windows.py``)."""
    import ast
    import pathlib

    root = pathlib.Path(nu_xp.__file__).parent
    homes = {cls.name: f"{cls.__module__.rsplit('.', 1)[-1]}.py" for cls in nu_xp.backends.OPS_CLASSES.values()}
    homes.pop(nu_xp.backends.BACKENDS[0])  # the default's name is the default argument of set_backend
    found = []
    for path in root.rglob("*.py"):
        if path.parent.name == "demos":  # demos build PyTorch twins to compare with
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Constant) and node.value in homes:
                names = [node.value]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.split(".")[0] in homes]
            found += [
                (path.name, name)
                for name in names
                if path.name != homes[name.split(".")[0]]
                and not (path.parent.name == "backends" and path.name.startswith(name.split(".")[0] + "_"))
            ]
    assert not found, f"backend names outside their backend module: {found}"


@pytest.mark.parametrize(
    ("spatial", "kernel", "stride", "dilation"), [((9,), (3,), (2,), (1,)), ((6, 7), (3, 2), (1, 2), (2, 1))]
)
def test_im2col_by_slicing_equals_by_gather_and_scatter(backend, spatial, kernel, stride, dilation):
    from nu_xp.layers.windows import output_shape, tap_slices

    ops = nu_xp.backends.ops_for(backend)
    out = output_shape(spatial, kernel, stride, ((0, 0),) * len(spatial), dilation, "test")
    taps = tap_slices(kernel, stride, dilation, out)
    x = on(backend, np.random.default_rng(0).normal(size=(2, 3, *spatial)))
    sliced = nu_xp.backends.Ops.stack_taps(ops, x, taps)
    gathered = ops.stack_taps_by_gather(x, taps)
    np.testing.assert_array_equal(host(sliced), host(gathered))
    parts_host = np.random.default_rng(1).normal(size=tuple(sliced.shape))
    parts = on(backend, parts_host)
    reference = nu_xp.backends.Ops.add_taps(nu_xp.backends.ops_for("numpy"), parts_host, taps, tuple(x.shape))
    scattered = ops.add_taps_by_scatter(parts, taps, tuple(x.shape))
    np.testing.assert_allclose(host(scattered), reference, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host(ops.add_taps(parts, taps, tuple(x.shape))), reference, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding", [((0, 0), (0, 0)), ((1, 1), (0, 2)), ((2, 0), (3, 1))])
def test_pad_without_writing_equals_pad_by_writing(backend, padding):
    """``Ops.pad`` (concat, no write: what JAX runs) equals the one-copy version the writeable backends run."""
    ops = nu_xp.backends.ops_for(backend)
    x_host = np.random.default_rng(2).normal(size=(2, 3, 4, 5))
    x = on(backend, x_host)
    expected = np.pad(x_host, ((0, 0), (0, 0), *padding), constant_values=-7.0)
    np.testing.assert_array_equal(host(nu_xp.backends.Ops.pad(ops, x, padding, -7.0)), expected)
    np.testing.assert_array_equal(host(ops.pad(x, padding, -7.0)), expected)
    if nu_xp.backends.is_writeable(x):
        np.testing.assert_array_equal(host(ops.pad_by_writing(x, padding, -7.0)), expected)
