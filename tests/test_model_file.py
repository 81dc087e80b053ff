"""Saving and loading: round trips on and across backends, PyTorch interop, hostile and broken files."""

from __future__ import annotations

import io
import json
import os
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nu_xp
from nu_xp import archive
from nu_xp import model_file as nio
from tests.helpers import host, linear_members, meta_member, npy_bytes, npz_bytes

BACKENDS = ("numpy", "array_api_strict", "torch")


def make_model(backend="numpy", dtype="float32"):
    return nu_xp.Sequential(
        nu_xp.Linear(3, 5, seed=0, backend=backend, dtype=dtype),
        nu_xp.Tanh(),
        nu_xp.Dropout(0.2),
        nu_xp.Linear(5, 4, seed=1, init="he_normal", backend=backend, dtype=dtype),
        nu_xp.ReLU(),
        nu_xp.Linear(4, 2, bias=False, seed=2, backend=backend, dtype=dtype),
        nu_xp.Softmax(),
    )


X = np.random.default_rng(0).normal(size=(7, 3))


def outputs(model):
    return host(model.predict(X))


def test_file_layout(tmp_path):
    path = tmp_path / "m.npz"
    returned = nu_xp.save(make_model(), path)
    assert returned == path and path.exists()
    with np.load(path, allow_pickle=False) as data:
        keys = set(data.files)
        meta = json.loads(str(data["__nu_xp__"]))
        assert data["0.weight"].dtype == np.float32
    assert keys == {"0.weight", "0.bias", "3.weight", "3.bias", "5.weight", "__nu_xp__"}
    assert meta["format"] == "nu_xp" and meta["format_version"] == nio.FORMAT_VERSION
    assert meta["library_version"] == nu_xp.__version__ and meta["dtype"] == "float32"
    layers = meta["architecture"]["layers"]
    assert [layer["class"] for layer in layers] == ["Linear", "Tanh", "Dropout", "Linear", "ReLU", "Linear", "Softmax"]
    assert layers[5]["config"] == {"in_features": 4, "out_features": 2, "bias": False, "init": "auto"}
    assert layers[2]["config"] == {"p": 0.2}
    assert not list(tmp_path.glob(".*tmp")), "temporary file left behind"


def test_round_trip_same_backend_bit_exact(backend, tmp_path):
    model = make_model(backend)
    nu_xp.save(model, tmp_path / "m.npz")
    loaded = nu_xp.load(tmp_path / "m.npz", backend=backend)
    assert loaded.backend == backend
    np.testing.assert_array_equal(outputs(loaded), outputs(model))


@pytest.mark.parametrize("target", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_across_backends_bit_exact(backend, target, dtype, tmp_path):
    pytest.importorskip(target)
    model = make_model(backend, dtype)
    nu_xp.save(model, tmp_path / "m.npz")
    loaded = nu_xp.load(tmp_path / "m.npz", backend=target)
    assert loaded.backend == target and nu_xp.backends.dtype_name(loaded.dtype) == dtype
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[k], v)
    reference = make_model(target, dtype)
    reference.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(outputs(loaded), outputs(reference))


def test_load_with_dtype_override(tmp_path):
    nu_xp.save(make_model(), tmp_path / "m.npz")
    loaded = nu_xp.load(tmp_path / "m.npz", dtype="float64")
    assert loaded[0].weight.data.dtype == np.float64


def test_load_weights_into_existing_model(backend, tmp_path):
    nu_xp.save(make_model(), tmp_path / "m.npz")
    fresh = nu_xp.Sequential(
        *[
            nu_xp.Linear(3, 5, backend=backend),
            nu_xp.Tanh(),
            nu_xp.Dropout(0.2),
            nu_xp.Linear(5, 4, backend=backend),
            nu_xp.ReLU(),
            nu_xp.Linear(4, 2, bias=False, backend=backend),
            nu_xp.Softmax(),
        ]
    )
    result = fresh.load_weights(tmp_path / "m.npz")
    assert result.missing_keys == [] and result.unexpected_keys == []
    np.testing.assert_array_equal(outputs(fresh), outputs(make_model(backend)))


def test_load_weights_mismatches_name_the_key(tmp_path):
    nu_xp.save(make_model(), tmp_path / "m.npz")
    other = nu_xp.Sequential(nu_xp.Linear(3, 6), nu_xp.Tanh())
    with pytest.raises(ValueError, match=r"missing \[\].*unexpected \['3.weight'"):
        other.load_weights(tmp_path / "m.npz")
    with pytest.raises(ValueError, match=r"'0.weight' has shape \(5, 3\).*\(6, 3\)"):
        other.load_weights(tmp_path / "m.npz", strict=False)
    f64 = make_model(dtype="float64")
    with pytest.raises(ValueError, match="'0.weight' has dtype float32.*float64"):
        f64.load_weights(tmp_path / "m.npz")


def test_load_weights_non_strict_reports_keys(tmp_path):
    nu_xp.save(make_model(), tmp_path / "m.npz")
    partial = nu_xp.Sequential(nu_xp.Linear(3, 5, seed=9), nu_xp.Tanh(), nu_xp.Linear(5, 1))
    before = partial.state_dict()
    result = partial.load_weights(tmp_path / "m.npz", strict=False)
    assert result.missing_keys == ["2.weight", "2.bias"]
    assert "3.weight" in result.unexpected_keys
    np.testing.assert_array_equal(partial.state_dict()["0.weight"], make_model().state_dict()["0.weight"])
    np.testing.assert_array_equal(partial.state_dict()["2.weight"], before["2.weight"])


def test_failed_load_changes_nothing(tmp_path):
    model = make_model()
    state = model.state_dict()
    state["5.weight"] = np.zeros((3, 3), dtype=np.float32)  # wrong shape, last key
    before = model.state_dict()
    with pytest.raises(ValueError, match="5.weight"):
        model.load_state_dict(state)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_state_dict_is_a_host_copy(backend):
    model = make_model(backend)
    sd = model.state_dict()
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    sd["0.weight"][:] = 0
    assert np.any(model.state_dict()["0.weight"] != 0)
    model.load_state_dict(sd)
    sd["0.weight"][:] = 1
    assert np.all(model.state_dict()["0.weight"] == 0)


# ------------------------------------------------------------------ PyTorch interop


def torch_twin(torch):
    return torch.nn.Sequential(
        torch.nn.Linear(3, 5),
        torch.nn.Tanh(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(5, 4),
        torch.nn.ReLU(),
        torch.nn.Linear(4, 2, bias=False),
        torch.nn.Softmax(dim=-1),
    ).eval()


def test_nu_xp_file_loads_into_torch_sequential(backend, torch, tmp_path):
    model = make_model(backend)
    nu_xp.save(model, tmp_path / "m.npz")
    net = torch_twin(torch)
    with np.load(tmp_path / "m.npz", allow_pickle=False) as data:
        net.load_state_dict({k: torch.from_numpy(data[k]) for k in data.files if k != "__nu_xp__"})
    with torch.no_grad():
        ref = net(torch.from_numpy(X.astype(np.float32))).numpy()
    np.testing.assert_allclose(outputs(model), ref, rtol=1e-5, atol=1e-6)


def test_torch_state_dict_saved_with_numpy_loads_into_nu_xp(backend, torch, tmp_path):
    torch.manual_seed(0)
    net = torch_twin(torch)
    np.savez(tmp_path / "t.npz", **{k: v.numpy() for k, v in net.state_dict().items()})
    model = make_model(backend)
    model.load_weights(tmp_path / "t.npz")
    with torch.no_grad():
        ref = net(torch.from_numpy(X.astype(np.float32))).numpy()
    np.testing.assert_allclose(outputs(model), ref, rtol=1e-5, atol=1e-6)
    model2 = make_model(backend)
    model2.load_state_dict(net.state_dict())  # torch tensors directly
    np.testing.assert_array_equal(outputs(model2), outputs(model))
    with pytest.raises(nu_xp.ModelFileError, match="architecture is unknown.*load_weights"):
        nu_xp.load(tmp_path / "t.npz")


# ------------------------------------------------------------------ custom layers


@nu_xp.register_layer
class Scale(nu_xp.Layer):
    """y = factor · x; dL/dx = factor · g."""

    def __init__(self, factor=2.0):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor

    def backward(self, grad):
        return grad * self.factor


def test_registered_custom_layer_round_trips(tmp_path):
    model = nu_xp.Sequential(nu_xp.Linear(3, 2, seed=0), Scale(3.0))
    nu_xp.save(model, tmp_path / "m.npz")
    loaded = nu_xp.load(tmp_path / "m.npz")
    assert isinstance(loaded[1], Scale) and loaded[1].factor == 3.0
    np.testing.assert_array_equal(host(loaded(X.astype(np.float32))), host(model(X.astype(np.float32))))


def test_unregistered_class_cannot_be_saved(tmp_path):
    class Hidden(nu_xp.Identity):
        pass

    with pytest.raises(TypeError, match="register_layer"):
        nu_xp.save(nu_xp.Sequential(Hidden()), tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


def test_register_layer_validates():
    with pytest.raises(TypeError, match="Layer subclass"):
        nu_xp.register_layer(int)

    with pytest.raises(ValueError, match="built-in"):

        @nu_xp.register_layer
        class Linear(nu_xp.Layer):
            pass


# ------------------------------------------------------------------ checkpoints


def test_checkpoint_resumes_training_exactly(backend, tmp_path):
    x = np.random.default_rng(1).normal(size=(32, 3))
    y = np.random.default_rng(2).integers(0, 2, size=32)

    def new():
        model = make_model(backend)
        return model, nu_xp.optim.Adam(model.parameters(), lr=0.01)

    model, opt = new()
    loss = nu_xp.CrossEntropyLoss()
    nu_xp.fit(model, loss, opt, x, y, epochs=2, batch_size=8, seed=0, progress=False)
    nu_xp.save(model, tmp_path / "ckpt.npz", optimizer=opt, extra={"epoch": 2})
    nu_xp.fit(model, loss, opt, x, y, epochs=2, batch_size=8, seed=5, progress=False)

    model2, opt2 = new()
    extra = nio.load_checkpoint(tmp_path / "ckpt.npz", model2, opt2)
    assert extra == {"epoch": 2}
    nu_xp.fit(model2, loss, opt2, x, y, epochs=2, batch_size=8, seed=5, progress=False)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(model2.state_dict()[k], v)
    assert isinstance(nu_xp.load(tmp_path / "ckpt.npz"), nu_xp.Sequential)  # still a model file


def test_checkpoint_errors(tmp_path):
    model = make_model()
    nu_xp.save(model, tmp_path / "plain.npz")
    with pytest.raises(nu_xp.ModelFileError, match="no optimizer state"):
        nio.load_checkpoint(tmp_path / "plain.npz", model, nu_xp.optim.SGD(model, lr=0.1))
    nu_xp.save(model, tmp_path / "adam.npz", optimizer=nu_xp.optim.Adam(model))
    with pytest.raises(nu_xp.ModelFileError, match="Adam state, not SGD"):
        nio.load_checkpoint(tmp_path / "adam.npz", model, nu_xp.optim.SGD(model, lr=0.1))


# ------------------------------------------------------------------ bad files


def _good_bytes(tmp_path):
    nu_xp.save(make_model(), tmp_path / "good.npz")
    return (tmp_path / "good.npz").read_bytes()


BAD_FILES = {
    "empty": (b"", "not a model file"),
    "random": (bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "not a model file"),
    "plain-zip": (npz_bytes({"readme.txt": b"hello"}), "plain zip archive"),
    "empty-zip": (npz_bytes({}), "holds no arrays"),
    "npy-not-npz": (npy_bytes(np.ones(3)), "not a model file"),
    "pickle": (pickle.dumps({"0.weight": np.ones(3)}), "not a model file"),
    "future-version": (
        npz_bytes({**linear_members(), "__nu_xp__.npy": meta_member(format_version=99)}),
        "version 99.*upgrade",
    ),
    "bad-json": (npz_bytes({**linear_members(), "__nu_xp__.npy": npy_bytes(np.array("{not json"))}), "not valid JSON"),
    "meta-not-text": (npz_bytes({**linear_members(), "__nu_xp__.npy": npy_bytes(np.ones(2))}), "must be a JSON text"),
    "unknown-class": (
        npz_bytes(
            {**linear_members(), "__nu_xp__.npy": meta_member(architecture={"class": "os.system", "config": {}})}
        ),
        "'os.system', which is not registered.*register_layer",
    ),
    "bad-config": (
        npz_bytes(
            {**linear_members(), "__nu_xp__.npy": meta_member(architecture={"class": "Linear", "config": {"nope": 1}})}
        ),
        r"holds \['nope'\], which are not arguments of Linear",
    ),
    "wrong-shape": (
        npz_bytes(
            {
                "0.weight.npy": npy_bytes(np.zeros((3, 2), np.float32)),
                "0.bias.npy": npy_bytes(np.zeros(1, np.float32)),
                "__nu_xp__.npy": meta_member(),
            }
        ),
        r"0.weight has shape \(1, 2\), but the file holds shape \(3, 2\)",
    ),
    "huge-layer": (
        npz_bytes(
            {
                **linear_members(),
                "__nu_xp__.npy": meta_member(
                    architecture={
                        "class": "Sequential",
                        "config": {},
                        "layers": [{"class": "Linear", "config": {"in_features": 2, "out_features": 10**12}}],
                    }
                ),
            }
        ),
        r"0.weight has shape \(1000000000000, 2\).*holds shape \(1, 2\)",
    ),
    "int-weights": (
        npz_bytes(
            {
                "0.weight.npy": npy_bytes(np.zeros((1, 2), np.int32)),
                "0.bias.npy": npy_bytes(np.zeros(1, np.float32)),
                "__nu_xp__.npy": meta_member(),
            }
        ),
        "floating point",
    ),
    "missing-key": (
        npz_bytes({"0.weight.npy": npy_bytes(np.zeros((1, 2), np.float32)), "__nu_xp__.npy": meta_member()}),
        r"0.bias has shape \(1,\), but the file holds nothing",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_raise_model_file_error(tmp_path, case):
    data, match = BAD_FILES[case]
    path = tmp_path / f"{case}.npz"
    path.write_bytes(data)
    with pytest.raises(nu_xp.ModelFileError, match=match) as info:
        nu_xp.load(path)
    assert str(path) in str(info.value)


def test_truncated_file(tmp_path):
    data = _good_bytes(tmp_path)
    for cut in (10, len(data) // 3, len(data) // 2, len(data) - 10):
        path = tmp_path / f"cut{cut}.npz"
        path.write_bytes(data[:cut])
        with pytest.raises(nu_xp.ModelFileError, match=str(path)):
            nu_xp.load(path)
        with pytest.raises(nu_xp.ModelFileError):
            make_model().load_weights(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(nu_xp.ModelFileError, match="no such model file") as info:
        nu_xp.load(tmp_path / "nope.npz")
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(nu_xp.ModelFileError, match="is a directory"):
        nu_xp.load(tmp_path)
    with pytest.raises(nu_xp.ModelFileError, match="is a directory"):
        nu_xp.save(make_model(), tmp_path)
    with pytest.raises(nu_xp.ModelFileError, match="does not exist"):
        nu_xp.save(make_model(), tmp_path / "no" / "such" / "dir.npz")


def test_pickled_object_array_is_never_unpickled(tmp_path):
    marker = tmp_path / "PWNED"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    payload = np.empty(1, dtype=object)
    payload[0] = Exploit()
    for key in ("0.weight", "__nu_xp__"):
        members = {**linear_members(), "__nu_xp__.npy": meta_member()}
        members[f"{key}.npy"] = npy_bytes(payload, allow_pickle=True)
        path = tmp_path / f"evil-{key}.npz"
        path.write_bytes(npz_bytes(members))
        with pytest.raises(nu_xp.ModelFileError, match="never unpickles"):
            nu_xp.load(path)
        with pytest.raises(nu_xp.ModelFileError, match="never unpickles"):
            nu_xp.Sequential(nu_xp.Linear(2, 1)).load_weights(path)
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(nu_xp.ModelFileError):
        nu_xp.load(raw)
    assert not marker.exists()


def test_nan_weights_load_with_a_warning(tmp_path):
    model = make_model()
    model[0].weight.data[0, 0] = np.nan
    nu_xp.save(model, tmp_path / "nan.npz")
    with pytest.warns(nu_xp.ModelFileWarning, match="0.weight"):
        nu_xp.load(tmp_path / "nan.npz")


def test_interrupted_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    nu_xp.save(make_model(), path)
    good = path.read_bytes()
    real_savez = np.savez

    def half_then_fail(f, **arrays):
        buf = io.BytesIO()
        real_savez(buf, **arrays)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(archive.np, "savez", half_then_fail)
    other = make_model()
    other[0].weight.data[:] = 0
    with pytest.raises(nu_xp.ModelFileError, match="m.npz: No space left") as info:
        nu_xp.save(other, path)
    assert isinstance(info.value.__cause__, OSError)
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


def test_save_keeps_exact_name_and_permissions(tmp_path):
    path = nu_xp.save(make_model(), tmp_path / "weights")
    assert path.name == "weights" and path.exists()
    umask = os.umask(0)
    os.umask(umask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~umask)


@given(st.data())
def test_property_random_architectures_round_trip(tmp_path_factory, data):
    sizes = data.draw(st.lists(st.integers(1, 6), min_size=2, max_size=5))
    dtype = data.draw(st.sampled_from(["float32", "float64"]))
    acts = [nu_xp.Tanh, nu_xp.ReLU, nu_xp.Sigmoid, nu_xp.Identity]
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nu_xp.Linear(a, b, bias=data.draw(st.booleans()), seed=i, dtype=dtype))
        layers.append(data.draw(st.sampled_from(acts))())
    model = nu_xp.Sequential(*layers)
    path = tmp_path_factory.mktemp("rt") / "m.npz"
    nu_xp.save(model, path)
    loaded = nu_xp.load(path)
    x = np.random.default_rng(0).normal(size=(3, sizes[0]))
    np.testing.assert_array_equal(host(loaded.predict(x)), host(model.predict(x)))
    assert repr(loaded) == repr(model)


@given(st.data())
def test_property_corruption_raises_or_loads_identical(tmp_path_factory, data):
    """Any byte flip either raises ModelFileError or (zip metadata only) loads the very same model."""
    directory = tmp_path_factory.mktemp("corrupt")
    good = _good_bytes(directory)
    reference = make_model().state_dict()
    blob = bytearray(good)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] ^= data.draw(st.integers(1, 255))
    path = directory / "bad.npz"
    path.write_bytes(bytes(blob))
    try:
        loaded = nu_xp.load(path)
    except nu_xp.ModelFileError:
        return
    for k, v in reference.items():
        np.testing.assert_array_equal(loaded.state_dict()[k], v)
