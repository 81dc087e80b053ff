"""Hostile and broken model files: each gives ModelFileError (or loads the identical model), quickly and cheaply.

The fuzzer builds archives from parts that are each valid or invalid
(members, npy headers, dtypes, JSON metadata) and asserts the promise of
``nu_xp.load``/``load_weights``/``load_checkpoint``: a ``ModelFileError``
naming the file, or a model identical to the one a valid file describes; in
bounded time, and never allocating much more than the file's size.
"""

from __future__ import annotations

import json
import os
import stat
import struct
import threading
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nu_xp
from tests.helpers import host, linear_members, meta_member, npy_bytes, npz_bytes


def write(tmp_path, data: bytes, name="m.npz"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def raw_npy(header: dict, payload: bytes = b"") -> bytes:
    """A .npy file with a header we choose (numpy's writer refuses the hostile ones)."""
    text = repr(header).encode("latin1")
    pad = 64 - (10 + len(text) + 1) % 64
    text = text + b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + payload


# ---------------------------------------------------------------------------- the cases


@pytest.mark.parametrize("descr", ["|V0", "|S0", "<U0", "|V8", "|S4", "<M8[s]", "<c8", "|O"])
def test_member_dtypes_other_than_real_numbers_are_refused_before_building(tmp_path, descr):
    header = {"descr": descr, "fortran_order": False, "shape": (60000, 60000)}
    path = write(
        tmp_path,
        npz_bytes({"0.weight.npy": raw_npy(header), "0.bias.npy": raw_npy(header), "__nu_xp__.npy": meta_member()}),
    )
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(nu_xp.ModelFileError, match=str(path.name)):
        nu_xp.load(path)
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 10 * 2**20 and elapsed < 5


def test_byte_count_must_match_the_header(tmp_path):
    header = {"descr": "<f4", "fortran_order": False, "shape": (100000, 100000)}
    path = write(tmp_path, npz_bytes({"0.weight.npy": raw_npy(header, b"\0" * 8), **{"__nu_xp__.npy": meta_member()}}))
    with pytest.raises(nu_xp.ModelFileError, match="declares shape .* holds 8 bytes"):
        nu_xp.load(path)


def test_compressed_members_are_refused_without_inflating(tmp_path):
    path = tmp_path / "c.npz"
    np.savez_compressed(path, **{"0.weight": np.zeros((1, 2), np.float32), "0.bias": np.zeros(1, np.float32)})
    with pytest.raises(nu_xp.ModelFileError, match="compressed.*numpy.savez"):
        nu_xp.Linear(2, 1).load_weights(path)
    # a bomb: 200 MB of zeros deflate to ~200 kB; refused before any inflation
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf, zf.open("0.weight.npy", "w") as f:
        f.write(np.lib.format.magic(1, 0))
        f.write(b"\0" * (200 * 2**20))
    tracemalloc.start()
    with pytest.raises(nu_xp.ModelFileError, match="compressed"):
        nu_xp.load(bomb)
    assert tracemalloc.get_traced_memory()[1] < 10 * 2**20
    tracemalloc.stop()


def test_overlapping_members_are_refused(tmp_path):
    """Two central-directory entries pointing at the same data would be read twice."""
    good = npz_bytes({"a.npy": npy_bytes(np.zeros(1000, np.float32))})
    with zipfile.ZipFile(tmp_path / "one.npz", "w") as zf:
        zf.writestr("a.npy", npy_bytes(np.zeros(1000, np.float32)))
    data = (tmp_path / "one.npz").read_bytes()
    cd = data.index(b"PK\x01\x02")
    eocd = data.index(b"PK\x05\x06")
    entry = data[cd:eocd].replace(b"a.npy", b"b.npy")
    count = struct.unpack("<H", data[eocd + 10 : eocd + 12])[0]
    end = bytearray(data[eocd:])
    struct.pack_into("<HHII", end, 8, count + 1, count + 1, (eocd - cd) * 2, cd)
    twice = data[:eocd] + entry + bytes(end)
    assert good  # the plain archive reads
    with pytest.raises(nu_xp.ModelFileError, match="overlap|more bytes"):
        nu_xp.archive.read_archive(write(tmp_path, twice, "twice.npz"))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("via_symlink", [False, True])
def test_a_fifo_is_refused_without_blocking(tmp_path, via_symlink):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    path = fifo
    if via_symlink:
        path = tmp_path / "link.npz"
        path.symlink_to(fifo)
    model = nu_xp.Sequential(nu_xp.Linear(2, 1, seed=0))
    results = []

    def attempt():
        for call in (
            lambda: nu_xp.load(path),
            lambda: model.load_weights(path),
            lambda: nu_xp.load_checkpoint(path, model),
        ):
            try:
                call()
            except nu_xp.ModelFileError as exc:
                results.append(str(exc))

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=10)
    if worker.is_alive():  # unblock it before failing
        with open(fifo, "wb"):
            pass
        pytest.fail("reading a FIFO blocked")
    assert len(results) == 3 and all("not a regular file" in r for r in results)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[" * 100_000 + "]" * 100_000, "nests deeper"),
        ('{"format": "nu_xp", "format_version": ' + "9" * 5000 + "}", "integer of 5000 digits"),
        ('{"format": "nu_xp", "format_version": NaN}', "not valid JSON"),
        ('"' + "x" * 5_000_000 + '"', "characters"),
    ],
)
def test_metadata_is_bounded(tmp_path, text, match):
    path = write(tmp_path, npz_bytes({**linear_members(), "__nu_xp__.npy": npy_bytes(np.array(text))}))
    with pytest.raises(nu_xp.ModelFileError, match=match):
        nu_xp.load(path)


@pytest.mark.parametrize("key", ["backend", "device", "dtype", "seed", "os_system"])
def test_a_file_never_chooses_for_the_caller(tmp_path, key):
    value = {"backend": "torch", "device": "cuda", "dtype": "float64", "seed": 3, "os_system": "rm"}[key]
    layers = [{"class": "Linear", "config": {"in_features": 2, "out_features": 1, key: value}}]
    path = write(tmp_path, npz_bytes({**linear_members(), "__nu_xp__.npy": meta_member(layers)}))
    with pytest.raises(nu_xp.ModelFileError, match=f"holds \\['{key}'\\], which are not arguments of Linear"):
        nu_xp.load(path, backend="numpy")


@pytest.mark.parametrize("loss", ["MSELoss", "CrossEntropyLoss", "Loss", "Layer"])
def test_only_layers_can_be_rebuilt(tmp_path, loss):
    layers = [{"class": "Linear", "config": {"in_features": 2, "out_features": 1}}, {"class": loss, "config": {}}]
    path = write(tmp_path, npz_bytes({**linear_members(), "__nu_xp__.npy": meta_member(layers)}))
    with pytest.raises(nu_xp.ModelFileError, match="not registered"):
        nu_xp.load(path)
    with pytest.raises(TypeError, match="loss"):
        nu_xp.register_layer(nu_xp.MSELoss)


def test_mixed_dtypes_load_in_the_callers_dtype_with_the_file_named(tmp_path):
    members = {"0.weight.npy": npy_bytes(np.ones((1, 2), np.float64)), "0.bias.npy": npy_bytes(np.ones(1, np.float32))}
    path = write(tmp_path, npz_bytes({**members, "__nu_xp__.npy": meta_member()}))
    model = nu_xp.load(path)
    assert nu_xp.backends.dtype_name(model.dtype) == "float32"
    with pytest.raises(nu_xp.ModelFileError, match=path.name):
        nu_xp.Sequential(nu_xp.Linear(2, 1)).load_weights(path)  # the float64 member is refused by name


def test_overflow_to_inf_in_the_callers_dtype_warns(tmp_path):
    members = {"0.weight.npy": npy_bytes(np.full((1, 2), 1e300)), "0.bias.npy": npy_bytes(np.zeros(1))}
    path = write(tmp_path, npz_bytes({**members, "__nu_xp__.npy": meta_member(dtype="float64")}))
    with pytest.warns(nu_xp.ModelFileWarning, match="NaN or Inf.*float32"):
        nu_xp.load(path, dtype="float32")


def test_os_errors_are_wrapped_naming_the_file(tmp_path):
    long_name = tmp_path / ("x" * 300 + ".npz")
    with pytest.raises(nu_xp.ModelFileError, match="x{20}") as info:
        nu_xp.load(long_name)
    assert isinstance(info.value.__cause__, OSError)
    with pytest.raises(nu_xp.ModelFileError) as info:
        nu_xp.save(nu_xp.Linear(2, 1), long_name)
    assert isinstance(info.value.__cause__, OSError)
    if os.geteuid() != 0:  # root reads everything
        locked = tmp_path / "locked"
        locked.mkdir()
        nu_xp.save(nu_xp.Linear(2, 1), locked / "m.npz")
        locked.chmod(0)
        try:
            with pytest.raises(nu_xp.ModelFileError, match="m.npz"):
                nu_xp.load(locked / "m.npz")
        finally:
            locked.chmod(0o700)


# ---------------------------------------------------------------------------- saving


def test_save_accepts_the_longest_legal_name_and_never_touches_the_umask(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(os, "umask", lambda *a: calls.append(a) or 0o022)
    name = "m" * 250 + ".npz"  # 254 bytes: legal on every common file system
    path = nu_xp.save(nu_xp.Linear(2, 1, seed=0), tmp_path / name)
    assert path.exists() and not calls
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_resave_keeps_the_mode_and_a_new_file_gets_the_default(tmp_path):
    path = tmp_path / "m.npz"
    nu_xp.save(nu_xp.Linear(2, 1), path)
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    path.chmod(0o640)
    nu_xp.save(nu_xp.Linear(2, 1), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_killed_save_leaves_only_a_recognizable_temporary(tmp_path):
    """SIGKILL cannot be caught: what it leaves behind is named so a user knows it (documented)."""
    import subprocess
    import sys

    script = (
        "import os, signal, numpy as np, nu_xp\n"
        "real = np.savez\n"
        "def die(f, **a):\n"
        "    f.write(b'PK partial'); f.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
        "np.savez = die\n"
        f"nu_xp.save(nu_xp.Linear(2, 1), {str(tmp_path / 'm.npz')!r})\n"
    )
    subprocess.run([sys.executable, "-c", script], check=False, timeout=60, stdin=subprocess.DEVNULL)
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(nu_xp.archive.TEMP_PREFIX) and left[0].endswith(".tmp")


# ---------------------------------------------------------------------------- checkpoints


def checkpoint(tmp_path, opt_name="Adam"):
    model = nu_xp.Sequential(nu_xp.Linear(2, 3, seed=0), nu_xp.Dropout(0.5, seed=1), nu_xp.Linear(3, 1, seed=2))
    opt = getattr(nu_xp.optim, opt_name)(model.parameters(), lr=0.01)
    x, y = np.ones((4, 2)), np.zeros((4, 1))
    nu_xp.fit(model, nu_xp.MSELoss(), opt, x, y, epochs=2, progress=False, seed=0)
    path = nu_xp.save(model, tmp_path / "ckpt.npz", optimizer=opt)
    with np.load(path) as f:
        members = {k: f[k] for k in f.files}
    return members, json.loads(str(members.pop("__nu_xp__")))


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda m: m["optimizer"]["param_groups"][0].update(lr=float("nan")),
        lambda m: m["optimizer"]["param_groups"][0].update(lr=-1),
        lambda m: m["optimizer"]["param_groups"][0].update(lr="0.1"),
        lambda m: m["optimizer"]["param_groups"][0].update(betas=[2, 3]),
        lambda m: m["optimizer"]["param_groups"][0].update(betas=[0.9]),
        lambda m: m["optimizer"]["param_groups"][0].update(eps=0),
        lambda m: m["optimizer"]["param_groups"][0].update(momentum=1),
        lambda m: m["optimizer"]["scalars"]["0"].update(step=-1),
        lambda m: m["optimizer"]["scalars"]["0"].update(step=True),
        lambda m: m["extra_state"].update({"1": {"rng": {"bit_generator": "PCG64", "state": "garbage"}}}),
        lambda m: m["extra_state"].update({"7": {"rng": {}}}),
    ],
)
def test_a_bad_checkpoint_changes_nothing(tmp_path, corrupt):
    members, m = checkpoint(tmp_path)
    corrupt(m)
    with open(tmp_path / "bad.npz", "wb") as f:
        np.savez(f, **members, __nu_xp__=np.array(json.dumps(m)))
    model = nu_xp.Sequential(nu_xp.Linear(2, 3, seed=5), nu_xp.Dropout(0.5, seed=6), nu_xp.Linear(3, 1, seed=7))
    opt = nu_xp.optim.Adam(model.parameters(), lr=0.5)
    before = model.state_dict()
    rng_before = model[1].get_extra_state()
    with pytest.raises(nu_xp.ModelFileError, match="bad.npz"):
        nu_xp.load_checkpoint(tmp_path / "bad.npz", model, opt)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    assert opt.lr == 0.5 and opt.state == {}
    assert model[1].get_extra_state() == rng_before


def test_a_good_checkpoint_restores_everything(tmp_path):
    members, m = checkpoint(tmp_path)
    model = nu_xp.Sequential(nu_xp.Linear(2, 3, seed=5), nu_xp.Dropout(0.5, seed=6), nu_xp.Linear(3, 1, seed=7))
    opt = nu_xp.optim.Adam(model.parameters(), lr=0.5)
    nu_xp.load_checkpoint(tmp_path / "ckpt.npz", model, opt)
    assert opt.lr == 0.01 and opt.state[0]["step"] == 2
    np.testing.assert_array_equal(model.state_dict()["0.weight"], members["0.weight"])
    assert model[1].get_extra_state() == m["extra_state"]["1"]


# ---------------------------------------------------------------------------- the fuzzer

GOOD_MEMBERS = {"0.weight": np.arange(6, dtype=np.float32).reshape(3, 2), "0.bias": np.ones(3, np.float32)}
GOOD_ARCH = {
    "class": "Sequential",
    "config": {},
    "layers": [{"class": "Linear", "config": {"in_features": 2, "out_features": 3}}],
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**50), 10**50) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
configs = st.fixed_dictionaries(
    {},
    optional={
        "in_features": st.one_of(st.integers(-2, 4), st.just(10**12), json_values),
        "out_features": st.one_of(st.integers(-2, 4), st.just(10**12), json_values),
        "bias": st.one_of(st.booleans(), json_values),
        "init": st.sampled_from(["auto", "zeros", "he_normal", "nope"]),
        "backend": st.just("torch"),
        "p": st.floats(-1, 2),
    },
)
layer_specs = st.fixed_dictionaries(
    {"class": st.sampled_from(["Linear", "ReLU", "Dropout", "Sequential", "MSELoss", "os.system"]), "config": configs}
)
architectures = st.one_of(
    st.just(GOOD_ARCH),
    st.fixed_dictionaries(
        {"class": st.just("Sequential"), "config": st.just({}), "layers": st.lists(layer_specs, max_size=3)}
    ),
    json_values,
)
metas = st.fixed_dictionaries(
    {
        "format": st.sampled_from(["nu_xp", "other"]),
        "format_version": st.sampled_from([1, 2, 0, "1", True]),
        "dtype": st.sampled_from(["float32", "float64", "int8"]),
        "architecture": architectures,
    }
)


def member_bytes(draw_kind: str, array: np.ndarray) -> bytes:
    if draw_kind == "good":
        return npy_bytes(array)
    if draw_kind == "truncated":
        return npy_bytes(array)[:-3]
    if draw_kind == "bad-header":
        return raw_npy({"descr": "<f4", "fortran_order": False, "shape": (10**9,)})
    if draw_kind == "void":
        return raw_npy({"descr": "|V0", "fortran_order": False, "shape": array.shape})
    if draw_kind == "pickle":
        return npy_bytes(np.array([object()], dtype=object), allow_pickle=True)
    if draw_kind == "int":
        return npy_bytes(array.astype(np.int32))
    return npy_bytes(array.astype(np.float64))  # "float64"


member_kinds = st.sampled_from(["good", "good", "good", "truncated", "bad-header", "void", "pickle", "int", "float64"])


@settings(max_examples=150, deadline=None)
@given(
    meta_value=metas,
    kinds=st.fixed_dictionaries({k: member_kinds for k in GOOD_MEMBERS}),
    extra_member=st.booleans(),
    flip=st.one_of(st.none(), st.tuples(st.integers(0, 10**6), st.integers(1, 255))),
    compress=st.booleans(),
)
def test_fuzzed_archives_error_cleanly_or_load_identically(
    tmp_path_factory, meta_value, kinds, extra_member, flip, compress
):
    members = {f"{k}.npy": member_bytes(kinds[k], v) for k, v in GOOD_MEMBERS.items()}
    if extra_member:
        members["extra.npy"] = npy_bytes(np.zeros(2, np.float32))
    members["__nu_xp__.npy"] = npy_bytes(np.array(json.dumps(meta_value)))
    buf = __import__("io").BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    data = bytearray(buf.getvalue())
    if flip is not None:
        data[flip[0] % len(data)] ^= flip[1]
    path = tmp_path_factory.mktemp("fuzz") / "f.npz"
    path.write_bytes(bytes(data))
    load_or_refuse(path)


def load_or_refuse(path) -> str:
    """The promise: ModelFileError naming the file, or the good model; in bounded time and memory."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        model = nu_xp.load(path, backend="numpy")
    except nu_xp.ModelFileError as exc:
        assert str(path) in str(exc)
        outcome = "refused"
    else:  # only a file that says exactly what the good one says may load, and then it is the good model
        assert [type(layer).__name__ for layer in model] == ["Linear"]
        for k, v in GOOD_MEMBERS.items():
            np.testing.assert_array_equal(host(model.state_dict()[k]), v.astype(nu_xp.backends.dtype_name(model.dtype)))
        outcome = "loaded"
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.perf_counter() - start < 5
    assert peak < 20 * 2**20
    return outcome


def test_the_fuzzers_oracle_loads_the_good_file_and_refuses_a_bad_one(tmp_path):
    good = {f"{k}.npy": npy_bytes(v) for k, v in GOOD_MEMBERS.items()}
    meta_text = json.dumps({"format": "nu_xp", "format_version": 1, "dtype": "float32", "architecture": GOOD_ARCH})
    path = write(tmp_path, npz_bytes({**good, "__nu_xp__.npy": npy_bytes(np.array(meta_text))}))
    assert load_or_refuse(path) == "loaded"
    bad = write(
        tmp_path, npz_bytes({**good, "__nu_xp__.npy": npy_bytes(np.array(meta_text.replace("3}", "4}")))}), "b.npz"
    )
    assert load_or_refuse(bad) == "refused"
