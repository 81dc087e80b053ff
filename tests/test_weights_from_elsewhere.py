"""Weights from elsewhere: nu_xp's own safetensors files, any safetensors file, PyTorch state_dict files."""

from __future__ import annotations

import json
import pickle
import struct
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import nu_xp
from nu_xp.formats import file_format


def _cnn(backend="numpy", seed=0):
    return nu_xp.Sequential(
        nu_xp.Conv2d(1, 4, 3, seed=seed, backend=backend),
        nu_xp.BatchNorm2d(4, backend=backend),
        nu_xp.ReLU(),
        nu_xp.Flatten(),
        nu_xp.Linear(4 * 6 * 6, 3, seed=seed + 1, backend=backend),
    )


def _torch_cnn():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    t = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(144, 3)
    )
    t.train()
    t(torch.randn(5, 1, 8, 8))  # running statistics and num_batches_tracked move away from their start
    return t.eval()


def _safetensors_bytes(header: dict, data: bytes = b"", length: int | None = None) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + data


# ------------------------------------------------------------------------------------------ nu_xp's own


def test_save_and_load_safetensors_on_every_backend(backend, tmp_path):
    pytest.importorskip("safetensors")
    model = _cnn(backend).eval()
    path = nu_xp.save(model, tmp_path / "m.safetensors")
    assert file_format(path) == "safetensors"
    again = nu_xp.load(path, backend=backend).eval()
    x = nu_xp.asarray(np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32), like=model)
    np.testing.assert_array_equal(nu_xp.to_host(again(x)), nu_xp.to_host(model(x)))
    from safetensors import safe_open
    from safetensors.numpy import load_file

    other = load_file(str(path))  # any safetensors reader takes the weights under their state_dict names
    assert other.keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(other[key], value)
        assert other[key].shape == value.shape  # 0-d num_batches_tracked stays 0-d
    with safe_open(str(path), framework="numpy") as f:
        assert json.loads(f.metadata()["__nu_xp__"])["format"] == "nu_xp"


def test_safetensors_keeps_ties_and_checkpoints(tmp_path):
    pytest.importorskip("safetensors")
    embed = nu_xp.Embedding(10, 4, seed=0)
    head = nu_xp.Linear(4, 10, bias=False, seed=1)
    head.weight = embed.weight
    model = nu_xp.Sequential(embed, head)
    opt = nu_xp.optim.Adam(model.parameters(), lr=0.01)
    nu_xp.fit(model, nu_xp.CrossEntropyLoss(), opt, np.array([1, 2, 3]), np.array([2, 3, 4]), epochs=2, verbose=0)
    path = nu_xp.save(model, tmp_path / "c.safetensors", optimizer=opt, extra={"epoch": 2, "curve": np.arange(3.0)})
    again = nu_xp.load(path)
    assert again[1].weight is again[0].weight
    opt2 = nu_xp.optim.Adam(again.parameters(), lr=0.01)
    extra = nu_xp.load_checkpoint(path, again, opt2)
    assert extra["epoch"] == 2 and np.array_equal(extra["curve"], np.arange(3.0))
    assert opt2.state_dict()["state"].keys() == opt.state_dict()["state"].keys()


def test_saving_safetensors_without_the_package_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    target = tmp_path / "m.safetensors"
    target.write_bytes(b"old")
    with pytest.raises(ImportError, match=r"nu_xp\[safetensors\]"):
        nu_xp.save(_cnn(), target)
    assert target.read_bytes() == b"old"  # nothing half-written, the old file kept


# ------------------------------------------------------------------------------------------ from PyTorch


def test_a_torch_state_dict_file_loads_into_the_same_named_model(backend, tmp_path):
    torch = pytest.importorskip("torch")
    twin = _torch_cnn()
    path = tmp_path / "cnn.pt"
    torch.save(twin.state_dict(), path)
    assert file_format(path) == "pytorch"
    model = _cnn(backend, seed=7).eval()
    assert model.load_weights(path) == ([], [])
    x = np.random.default_rng(1).random((3, 1, 8, 8), dtype=np.float32)
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    got = nu_xp.to_host(model(nu_xp.asarray(x, like=model)))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert int(nu_xp.to_host(model[1].num_batches_tracked)) == 1


def test_a_torch_lstm_and_a_checkpoint_dict(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(5, 7, num_layers=2, bidirectional=True, batch_first=True)
    path = tmp_path / "ckpt.pth"
    torch.save({"epoch": 3, "model_state_dict": lstm.state_dict(), "lr": 0.1}, path)
    ours = nu_xp.LSTM(5, 7, num_layers=2, bidirectional=True, batch_first=True)
    ours.load_state_dict(str(path))  # load_state_dict takes a path too
    x = np.random.default_rng(2).random((2, 4, 5), dtype=np.float32)
    with torch.no_grad():
        expected = lstm(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(ours(x)[0], expected, rtol=1e-5, atol=1e-6)


def test_torch_files_that_are_not_state_dicts_are_refused(tmp_path):
    torch = pytest.importorskip("torch")
    listed = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], listed)
    with pytest.raises(nu_xp.ModelFileError, match="not a state_dict"):
        _cnn().load_weights(listed)
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    hostile = tmp_path / "hostile.pt"
    with open(hostile, "wb") as f:
        pickle.dump({"0.weight": Payload()}, f, protocol=2)
    with pytest.raises(nu_xp.ModelFileError, match="weights_only=True"):
        _cnn().load_weights(hostile)
    assert not marker.exists()  # the pickle never ran


def test_reading_a_torch_file_without_torch_names_the_extra(tmp_path, monkeypatch):
    path = tmp_path / "w.pt"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=2))  # a pickle: told apart by its first byte
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"nu_xp\[torch\]"):
        _cnn().load_weights(path)


def test_any_safetensors_file_bf16_and_float16(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    from safetensors.torch import save_file

    twin = _torch_cnn()
    half = {k: (v.to(torch.bfloat16) if v.is_floating_point() else v) for k, v in twin.state_dict().items()}
    path = tmp_path / "hub.safetensors"
    save_file(half, str(path))
    model = _cnn().eval()
    model.load_weights(path)  # bfloat16 is read as float32, exactly
    for key, value in half.items():
        np.testing.assert_array_equal(
            model.state_dict()[key], value.float().numpy() if value.is_floating_point() else value.numpy()
        )
    save_file({k: (v.half() if v.is_floating_point() else v) for k, v in twin.state_dict().items()}, str(path))
    with pytest.raises(nu_xp.ModelFileError, match="cast=True"):
        model.load_weights(path)
    model.load_weights(path, cast=True)
    np.testing.assert_array_equal(model.state_dict()["0.weight"], twin.state_dict()["0.weight"].half().float().numpy())


# ------------------------------------------------------------------------------------------ hostile headers

GOOD = {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}
HOSTILE = {
    "header longer than the file": _safetensors_bytes(GOOD, b"\0" * 24, length=10_000),
    "header length 2**63": _safetensors_bytes(GOOD, b"\0" * 24, length=2**63),
    "not JSON": struct.pack("<Q", 5) + b"{abc}" + b"\0" * 8,
    "not UTF-8": struct.pack("<Q", 3) + b"{\xff}",
    "a JSON list": _safetensors_bytes([1, 2]),  # type: ignore[arg-type]
    "NaN in the header": struct.pack("<Q", 9) + b'{"a":NaN}',
    "unknown dtype": _safetensors_bytes({"w": {"dtype": "F8", "shape": [2], "data_offsets": [0, 2]}}, b"\0\0"),
    "negative size": _safetensors_bytes({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4),
    "huge declared shape": _safetensors_bytes(
        {"w": {"dtype": "F64", "shape": [2**40, 2**40], "data_offsets": [0, 16]}}, b"\0" * 16
    ),
    "offsets past the data": _safetensors_bytes(
        {"w": {"dtype": "F32", "shape": [2**28], "data_offsets": [0, 2**30]}}, b"\0" * 16
    ),
    "overlapping tensors": _safetensors_bytes(
        {
            "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
            "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]},
        },
        b"\0" * 24,
    ),
    "offsets reversed": _safetensors_bytes({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}}, b"\0" * 8),
    "a missing field": _safetensors_bytes({"w": {"dtype": "F32", "shape": [2]}}, b"\0" * 8),
    "metadata not text": _safetensors_bytes({"__metadata__": {"__nu_xp__": {"format": "nu_xp"}}, **GOOD}, b"\0" * 24),
    "bad nu_xp metadata": _safetensors_bytes({"__metadata__": {"__nu_xp__": "[1, 2"}, **GOOD}, b"\0" * 24),
    "truncated data": _safetensors_bytes(GOOD, b"\0" * 10),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_safetensors_header_is_refused_fast(case, tmp_path):
    path = tmp_path / "evil.safetensors"
    path.write_bytes(HOSTILE[case])
    start = time.perf_counter()
    with pytest.raises(nu_xp.ModelFileError, match="evil.safetensors"):
        nu_xp.load(path)
    with pytest.raises(nu_xp.ModelFileError, match="evil.safetensors"):
        nu_xp.Sequential(nu_xp.Linear(3, 2)).load_weights(path)
    assert time.perf_counter() - start < 5  # no allocation of what the header declares, no long parse


def test_a_hostile_header_costs_no_memory(tmp_path):
    """A header declaring 8 TiB tensors is refused in a process whose peak memory stays small."""
    if not sys.platform.startswith("linux"):
        pytest.skip("peak memory is read from /proc/self/status (Linux)")
    path = tmp_path / "evil.safetensors"
    path.write_bytes(HOSTILE["huge declared shape"])
    script = textwrap.dedent(
        f"""
        import nu_xp
        from nu_xp.safetensors_file import read_safetensors
        before = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
        try:
            read_safetensors({str(path)!r})
        except nu_xp.ModelFileError:
            pass
        after = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
        print((after - before) // 1024)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.split()[-1]) < 16  # MiB more than the interpreter and nu_xp needed anyway


def test_a_valid_handwritten_file_reads(tmp_path):
    """The reader follows the format, not one writer: big-endian is never declared, data after the header."""
    data = np.arange(6, dtype="<f4").tobytes()
    path = tmp_path / "w.safetensors"
    path.write_bytes(_safetensors_bytes({"__metadata__": {"who": "me"}, **GOOD}, data))
    from nu_xp.safetensors_file import read_safetensors

    tensors, metadata = read_safetensors(path)
    np.testing.assert_array_equal(tensors["w"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert metadata == {"who": "me"}
