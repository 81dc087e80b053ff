"""RNN, LSTM, GRU, MultiheadAttention, TransformerEncoderLayer and Select: PyTorch's values and gradients.

Every comparison runs in float64 on each backend: outputs, final states, the
gradients of the input(s) and of the initial state, and every parameter
gradient, for random upstream gradients on every output; PyTorch gets our
``state_dict`` unchanged, so the names and layouts are checked too.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import nu_xp
from nu_xp.backends import numpy_norms
from tests.helpers import assert_close, host, on

TOL = 1e-10


def _tensor(torch, a, grad=True):
    if a is None:
        return None
    if a.dtype.kind == "f":
        return torch.tensor(a, dtype=torch.float64, requires_grad=grad)
    return torch.tensor(a)


def _load_into(torch, layer, module):
    module = module.double()
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in layer.state_dict().items()})
    return module


def _assert(ours, theirs, what):
    np.testing.assert_allclose(host(ours), theirs.detach().numpy(), rtol=TOL, atol=TOL, err_msg=what)


def _check_params(layer, module):
    theirs = dict(module.named_parameters())
    assert set(dict(layer.named_parameters())) == set(theirs)
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(host(p.grad), theirs[name].grad.numpy(), rtol=TOL, atol=TOL, err_msg=name)


# ------------------------------------------------------------------------------------------ recurrent
RECURRENT = [("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("LSTM", {}), ("GRU", {})]


def _recurrent_case(torch, backend, kind, options, *, shape, hx, grads, layer_kwargs, seed=0):
    rng = np.random.default_rng(seed)
    ours = getattr(nu_xp, kind)(3, 4, **options, **layer_kwargs, seed=seed, backend=backend, dtype="float64")
    module = _load_into(torch, ours, getattr(torch.nn, kind)(3, 4, **options, **layer_kwargs))
    lstm = kind == "LSTM"
    dirs = 2 if layer_kwargs.get("bidirectional") else 1
    layers = layer_kwargs.get("num_layers", 1)
    x = rng.normal(size=shape)
    state_shape = (layers * dirs, *shape[1:-1][: 1 if len(shape) == 3 else 0], 4)
    if len(shape) == 3 and layer_kwargs.get("batch_first"):
        state_shape = (layers * dirs, shape[0], 4)
    h0 = rng.normal(size=state_shape) if hx else None
    c0 = rng.normal(size=state_shape) if hx and lstm else None
    xt, h0t, c0t = _tensor(torch, x), _tensor(torch, h0), _tensor(torch, c0)
    hx_t = None if not hx else ((h0t, c0t) if lstm else h0t)
    out_t, state_t = module(xt, hx_t)
    h_t, c_t = state_t if lstm else (state_t, None)
    g_out = rng.normal(size=tuple(out_t.shape)) if "out" in grads else None
    g_h = rng.normal(size=tuple(h_t.shape)) if "h" in grads else None
    g_c = rng.normal(size=tuple(h_t.shape)) if "c" in grads and lstm else None
    total = 0
    for value, g in ((out_t, g_out), (h_t, g_h), (c_t, g_c)):
        if g is not None:
            total = total + (value * torch.tensor(g)).sum()
    total.backward()

    hx_ours = None if not hx else ((on(backend, h0), on(backend, c0)) if lstm else on(backend, h0))
    out, state = ours(on(backend, x), hx_ours)
    h_n, c_n = state if lstm else (state, None)
    _assert(out, out_t, "output")
    _assert(h_n, h_t, "h_n")
    if lstm:
        _assert(c_n, c_t, "c_n")
    wrap = lambda a: None if a is None else on(backend, a)  # noqa: E731
    g_state = (wrap(g_h), wrap(g_c)) if lstm else wrap(g_h)
    if grads == ("out",):
        result = ours.backward(wrap(g_out))
    else:
        result = ours.backward((wrap(g_out), g_state if (g_h is not None or g_c is not None) else None))
    if hx:
        dx, d_state = result
        if lstm:
            _assert(d_state[0], h0t.grad, "dh_0")
            _assert(d_state[1], c0t.grad, "dc_0")
        else:
            _assert(d_state, h0t.grad, "dh_0")
    else:
        dx = result
    _assert(dx, xt.grad, "dL/dx")
    _check_params(ours, module)


@pytest.mark.parametrize("kind,options", RECURRENT, ids=[f"{k}{o}" for k, o in RECURRENT])
@pytest.mark.parametrize(
    "layer_kwargs",
    [
        {},
        {"num_layers": 2, "bidirectional": True},
        {"batch_first": True, "num_layers": 2},
        {"bias": False, "bidirectional": True, "batch_first": True},
    ],
    ids=["plain", "2layers-bidir", "batch_first-2layers", "nobias-bidir-bf"],
)
def test_recurrent_equals_torch(torch, backend, kind, options, layer_kwargs):
    shape = (2, 5, 3) if layer_kwargs.get("batch_first") else (5, 2, 3)
    _recurrent_case(
        torch, backend, kind, options, shape=shape, hx=True, grads=("out", "h", "c"), layer_kwargs=layer_kwargs
    )


@pytest.mark.parametrize("kind,options", RECURRENT, ids=[f"{k}{o}" for k, o in RECURRENT])
@pytest.mark.parametrize("grads", [("out",), ("h",), ("c",), ("out", "c")], ids=lambda g: "+".join(g))
def test_recurrent_gradient_on_any_part(torch, backend, kind, options, grads):
    """dL/d(output) alone, or the final state only (None for the rest), with and without hx."""
    if grads == ("c",) and kind != "LSTM":
        grads = ("h",)
    for hx in (False, True):
        _recurrent_case(
            torch, backend, kind, options, shape=(4, 2, 3), hx=hx, grads=grads, layer_kwargs={"num_layers": 2}
        )


@pytest.mark.parametrize("kind,options", RECURRENT, ids=[f"{k}{o}" for k, o in RECURRENT])
def test_recurrent_unbatched_equals_torch(torch, backend, kind, options):
    _recurrent_case(
        torch,
        backend,
        kind,
        options,
        shape=(6, 3),
        hx=True,
        grads=("out", "h", "c"),
        layer_kwargs={"bidirectional": True},
    )


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_recurrent_dropout_between_layers(torch, backend, kind):
    """Dropout 0 in training equals PyTorch; dropout > 0 is off in eval mode; in training it changes the output."""
    _recurrent_case(
        torch,
        backend,
        kind,
        {},
        shape=(4, 2, 3),
        hx=False,
        grads=("out",),
        layer_kwargs={"num_layers": 2, "dropout": 0.0},
    )
    layer = getattr(nu_xp, kind)(3, 4, num_layers=3, dropout=0.5, seed=0, backend=backend, dtype="float64")
    x = on(backend, np.random.default_rng(1).normal(size=(4, 2, 3)))
    a = host(layer(x)[0])
    layer.eval()
    b, c = host(layer(x)[0]), host(layer(x)[0])
    np.testing.assert_array_equal(b, c)
    assert not np.allclose(a, b)
    layer.train()
    assert nu_xp.gradcheck(layer, x) < 1e-6  # gradcheck's copies draw the same masks


# --8<-- [start:lstm_gradcheck]
def test_lstm_backpropagation_through_time(backend):
    """Finite differences of S = Σ g·(output, h_n, c_n) agree with LSTM.backward, for x and every weight."""
    lstm = nu_xp.LSTM(input_size=3, hidden_size=2, seed=0, backend=backend)
    x = on(backend, np.random.default_rng(0).normal(size=(6, 2, 3)))  # 6 time steps, batch 2
    assert nu_xp.gradcheck(lstm, x) < 1e-6


# --8<-- [end:lstm_gradcheck]


@pytest.mark.parametrize("kind,options", RECURRENT, ids=[f"{k}{o}" for k, o in RECURRENT])
@pytest.mark.parametrize(
    "layer_kwargs", [{}, {"num_layers": 2, "bidirectional": True, "batch_first": True}], ids=["plain", "stacked"]
)
def test_recurrent_gradcheck(backend, kind, options, layer_kwargs):
    layer = getattr(nu_xp, kind)(3, 2, **options, **layer_kwargs, seed=0, backend=backend)
    x = on(backend, np.random.default_rng(0).normal(size=(3, 2, 3)))
    assert nu_xp.gradcheck(layer, x) < 1e-6


def test_recurrent_layout_and_init_match_torch(torch):
    for kind in ("RNN", "LSTM", "GRU"):
        ours = getattr(nu_xp, kind)(5, 6, num_layers=2, bidirectional=True, seed=0)
        module = getattr(torch.nn, kind)(5, 6, num_layers=2, bidirectional=True)
        assert list(ours.state_dict()) == list(module.state_dict())
        for (name, mine), theirs in zip(ours.state_dict().items(), module.state_dict().values()):
            assert mine.shape == tuple(theirs.shape), name
            assert np.abs(mine).max() <= 1 / np.sqrt(6) + 1e-7  # U(-1/√H, 1/√H)


def test_recurrent_bad_input(backend):
    lstm = nu_xp.LSTM(3, 4, num_layers=2, backend=backend)
    with pytest.raises(ValueError, match=r"expects input of shape \(L, N, input_size\).*got \(5, 2, 7\)"):
        lstm(on(backend, np.zeros((5, 2, 7)), dtype="float32"))
    with pytest.raises(ValueError, match="rank|expects input"):
        lstm(on(backend, np.zeros((5, 2, 3, 1)), dtype="float32"))
    x = on(backend, np.zeros((5, 2, 3)), dtype="float32")
    h = on(backend, np.zeros((1, 2, 4)), dtype="float32")
    with pytest.raises(ValueError, match=r"h_0 must have shape \(2, 2, 4\).*got \(1, 2, 4\)"):
        lstm(x, (h, h))
    with pytest.raises(TypeError, match=r"pair \(h_0, c_0\)"):
        lstm(x, h)
    with pytest.raises(TypeError, match="one array h_0"):
        nu_xp.GRU(3, 4, backend=backend)(x, (h, h))
    lstm(x)
    with pytest.raises(ValueError, match=r"grad has shape \(5, 2, 3\).*\(5, 2, 4\)"):
        lstm.backward(on(backend, np.zeros((5, 2, 3)), dtype="float32"))
    lstm(x)
    with pytest.raises(ValueError, match="no gradient at all"):
        lstm.backward((None, None))
    with pytest.raises(ValueError, match="input_size"):
        nu_xp.LSTM(0, 3)
    with pytest.raises(ValueError, match="nonlinearity"):
        nu_xp.RNN(2, 3, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="dropout"):
        nu_xp.GRU(2, 3, dropout=1.5)
    with pytest.raises(ValueError, match="num_layers must be at most 10000"):
        nu_xp.LSTM(2, 3, num_layers=10**9)
    with pytest.raises(ValueError, match="no time steps"):
        lstm(on(backend, np.zeros((0, 2, 3)), dtype="float32"))


# ------------------------------------------------------------------------------------------ attention
E, HEADS, N, L, S = 8, 2, 3, 5, 4


def _mha_masks(rng, case, source, batched=True):
    if case == "none":
        return {}
    if case == "bool":
        kpm = rng.random((N, source) if batched else (source,)) < 0.4
        kpm[..., 0] = False
        am = rng.random((L, source)) < 0.3
        am[:, 0] = False
        return {"key_padding_mask": kpm, "attn_mask": am}
    if case == "float-per-head":
        return {"attn_mask": rng.normal(size=(N * HEADS, L, source) if batched else (HEADS, L, source))}
    if case == "float-padding":
        kpm = np.where(rng.random((N, source)) < 0.3, -np.inf, 0.0)
        kpm[:, 0] = 0.0
        return {"key_padding_mask": kpm}
    raise AssertionError(case)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("cross", [False, True], ids=["self", "cross"])
@pytest.mark.parametrize("masks", ["none", "bool", "float-per-head", "float-padding", "causal"])
def test_attention_equals_torch(torch, backend, batch_first, cross, masks):
    rng = np.random.default_rng(0)
    ours = nu_xp.MultiheadAttention(E, HEADS, batch_first=batch_first, seed=1, backend=backend, dtype="float64")
    module = _load_into(torch, ours, torch.nn.MultiheadAttention(E, HEADS, batch_first=batch_first))
    source = S if cross and masks != "causal" else L

    def layout(length):
        return (N, length, E) if batch_first else (length, N, E)

    q = rng.normal(size=layout(L))
    k, v = (rng.normal(size=layout(source)), rng.normal(size=layout(source))) if cross else (q, q)
    kwargs = _mha_masks(rng, masks, source) if masks != "causal" else {}
    torch_kwargs = {name: torch.tensor(value) for name, value in kwargs.items()}
    if masks == "causal":
        torch_kwargs = {"attn_mask": torch.tensor(np.triu(np.ones((L, L), bool), 1)), "is_causal": True}
        kwargs = {"is_causal": True}
    qt = _tensor(torch, q)
    kt, vt = (_tensor(torch, k), _tensor(torch, v)) if cross else (qt, qt)
    out_t, w_t = module(qt, kt, vt, average_attn_weights=False, **torch_kwargs)
    g = rng.normal(size=tuple(out_t.shape))
    out_t.backward(torch.tensor(g))
    backend_kwargs = {n: on(backend, a, dtype=None) for n, a in kwargs.items() if not isinstance(a, bool)}
    backend_kwargs.update({n: a for n, a in kwargs.items() if isinstance(a, bool)})
    qo = on(backend, q)
    ko, vo = (on(backend, k), on(backend, v)) if cross else (qo, qo)
    out, w = ours(qo, ko, vo, average_attn_weights=False, **backend_kwargs)
    _assert(out, out_t, "attn_output")
    _assert(w, w_t, "attn_weights")
    grads = ours.backward((on(backend, g), None))
    if cross:
        for mine, theirs, what in zip(grads, (qt, kt, vt), ("dq", "dk", "dv")):
            _assert(mine, theirs.grad, what)
    else:
        _assert(grads[0] + grads[1] + grads[2], qt.grad, "dq + dk + dv")
    _check_params(ours, module)


@pytest.mark.parametrize("cross", [False, True], ids=["self", "cross"])
def test_attention_unbatched_averaged_and_eval_dropout(torch, backend, cross):
    rng = np.random.default_rng(3)
    ours = nu_xp.MultiheadAttention(E, HEADS, dropout=0.3, seed=2, backend=backend, dtype="float64").eval()
    module = _load_into(torch, ours, torch.nn.MultiheadAttention(E, HEADS, dropout=0.3)).eval()
    q = rng.normal(size=(L, E))
    k, v = (rng.normal(size=(S, E)), rng.normal(size=(S, E))) if cross else (q, q)
    masks = _mha_masks(rng, "bool", S if cross else L, batched=False)
    qt = _tensor(torch, q)
    kt, vt = (_tensor(torch, k), _tensor(torch, v)) if cross else (qt, qt)
    out_t, w_t = module(qt, kt, vt, **{n: torch.tensor(a) for n, a in masks.items()})
    g = rng.normal(size=tuple(out_t.shape))
    out_t.backward(torch.tensor(g))
    qo = on(backend, q)
    ko, vo = (on(backend, k), on(backend, v)) if cross else (qo, qo)
    masks_ours = {n: on(backend, a, dtype=None) for n, a in masks.items()}
    out, w = ours(qo, ko, vo, **masks_ours) if cross else ours(qo, **masks_ours)  # self-attention: the query alone
    _assert(out, out_t, "attn_output")
    _assert(w, w_t, "averaged weights")
    grads = ours.backward(on(backend, g))
    if cross:
        for mine, theirs in zip(grads, (qt, kt, vt)):
            _assert(mine, theirs.grad, "dq/dk/dv")
    else:
        _assert(grads, qt.grad, "dx")
    _check_params(ours, module)
    assert ours(qo, ko, vo, need_weights=False)[1] is None


# --8<-- [start:attention_gradcheck]
def test_attention_gradcheck(backend):
    """Self-attention x → softmax(Q Kᵀ/√d) V: the gradient of x sums what reaches it as query, key and value."""
    x = on(backend, np.random.default_rng(0).normal(size=(3, 2, 4)))  # (L, N, E)
    mha = nu_xp.MultiheadAttention(embed_dim=4, num_heads=2, seed=0, backend=backend)
    assert nu_xp.gradcheck(nu_xp.Sequential(mha, nu_xp.Select(0)), x) < 1e-6
    # --8<-- [end:attention_gradcheck]

    class Cross(nu_xp.Layer):
        """Cross-attention of x's first two steps (queries) over all of x; masks on."""

        def __init__(self):
            super().__init__()
            self.mha = nu_xp.MultiheadAttention(4, 2, dropout=0.4, bias=False, batch_first=True, seed=3)

        def forward(self, x):
            kpm = nu_xp.asarray(np.array([[False, False, True]] * 3), like=x)
            out, _ = self.mha(x[:, :2, :], x * 2.0, x + 1.0, key_padding_mask=kpm)
            return out

        def backward(self, grad):
            dq, dk, dv = self.mha.backward(grad)
            return dk * 2.0 + dv + self.mha.backend.xp.concat([dq, dq[:, :1, :] * 0.0], axis=1)

    layer = Cross().to(backend)
    assert nu_xp.gradcheck(layer, on(backend, np.random.default_rng(1).normal(size=(3, 3, 4)))) < 1e-6


def test_fully_masked_rows_give_zeros_without_warnings(backend):
    mha = nu_xp.MultiheadAttention(4, 2, seed=0, backend=backend, dtype="float64")
    x = on(backend, np.random.default_rng(0).normal(size=(3, 2, 4)) * 1e4)
    kpm = on(backend, np.array([[True, True, True], [False, True, False]]), dtype=None)
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is the point of exp(-inf)
        out, w = mha(x, x, x, key_padding_mask=kpm)
        grads = mha.backward(nu_xp.backends.ops_of(out).xp.ones_like(out))
    assert np.all(host(w)[0] == 0.0) and np.all(np.isfinite(host(out)))
    assert all(np.all(np.isfinite(host(g))) for g in grads)


@pytest.mark.parametrize("masked", [False, True])
def test_numpy_softmax_kernel_of_scores_at_the_ends_of_float32_warns_of_nothing(masked):
    """NumPy's kernel on scores ±3e38 (their differences overflow float32) with a mask of -3e38: the largest score
    gets all the weight, a row whose scores are all the lowest float32 spreads it evenly, and no warning is
    raised (the shifted scores below float32's range are -inf, whose exp is the limit, 0)."""
    big = 3e38
    scores = np.array([[big, -big, 0.0, -big], [-big, -big, -big, -big]], np.float32)
    mask = np.array([0.0, 0.0, 0.0, -big], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = numpy_norms.masked_softmax(scores, mask if masked else None)
    np.testing.assert_array_equal(p[0], [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(p[1], [1 / 3, 1 / 3, 1 / 3, 0.0] if masked else [0.25] * 4, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (4, 1), (3, 0), (6, 64), (0, 3, 4)])
@pytest.mark.parametrize("masked", [False, True])
def test_softmax_kernel_equals_the_formula(backend, dtype, shape, masked):
    """The backend's ``masked_softmax`` and ``softmax_backward`` (NumPy's: rows shifted by one bound, a row far
    below it redone with its own maximum) against ``Ops``'s formulas: masked keys, a row of ``-inf`` only (zeros,
    no warning), large scores, a row 500 below the others, one key, no keys, no rows; the mask given apart (broadcast
    over the leading axis) or already added; the backward's row dots given by the caller or not."""
    ops = nu_xp.backends.ops_for(backend)
    rng = np.random.default_rng(3)
    scores = rng.normal(size=shape) * 30
    mask = np.zeros(shape[1:] if len(shape) > 2 else shape)  # broadcast over the leading axis where there is one
    if shape[-1] > 1:
        mask[..., 1:, -1] = -np.inf  # masked keys
        mask[..., 0, :] = -np.inf  # rows with no key allowed
        mask += rng.normal(size=mask.shape) * 3  # and an additive part
        if scores.size:
            scores.reshape(-1, shape[-1])[1] -= 500.0  # a row far below the rest
    g = rng.normal(size=shape)
    s_b, g_b, m_b = (on(backend, a, dtype=dtype) for a in (scores, g, mask))
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        p = ops.masked_softmax(s_b, m_b) if masked else ops.masked_softmax(s_b + m_b)
        dp = ops.softmax_backward(p, g_b)
        dot = ops.xp.sum(g_b * p, axis=-1, keepdims=True)
        dp_dot = ops.softmax_backward(p, g_b, dot)
    p_ref = nu_xp.backends.Ops.masked_softmax(ops, s_b + m_b)
    dp_ref = nu_xp.backends.Ops.softmax_backward(ops, p_ref, g_b)
    assert tuple(p.shape) == shape and tuple(dp.shape) == shape and host(p).dtype == np.dtype(dtype)
    assert_close(host(p), host(p_ref), ulps=16)
    assert_close(host(dp), host(dp_ref), ulps=16)
    assert_close(host(dp_dot), host(dp_ref), ulps=16)
    if shape[-1] > 1:
        assert np.all(host(p)[..., 0, :] == 0.0)
        assert np.all(host(p)[..., 1:, -1] == 0.0)


def test_attention_bad_input(backend):
    mha = nu_xp.MultiheadAttention(8, 2, backend=backend)
    x = on(backend, np.zeros((5, 3, 8)), dtype="float32")
    with pytest.raises(ValueError, match="divisible"):
        nu_xp.MultiheadAttention(8, 3)
    with pytest.raises(ValueError, match=r"query must be \(L, N, E\).*got \(5, 3, 6\)"):
        mha(on(backend, np.zeros((5, 3, 6)), dtype="float32"))
    with pytest.raises(ValueError, match="key must be"):
        mha(x, on(backend, np.zeros((3, 8)), dtype="float32"), x)
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(3, 5\)"):
        mha(x, x, x, key_padding_mask=np.zeros((5, 3), bool))
    with pytest.raises(ValueError, match=r"attn_mask must have shape \(5, 5\) or \(6, 5, 5\)"):
        mha(x, x, x, attn_mask=np.zeros((4, 5), bool))
    with pytest.raises(TypeError, match="boolean .* or float"):
        mha(x, x, x, attn_mask=np.zeros((5, 5), dtype=np.int64))
    with pytest.raises(ValueError, match="share the batch size"):
        mha(x, on(backend, np.zeros((4, 2, 8)), dtype="float32"), on(backend, np.zeros((4, 2, 8)), dtype="float32"))
    with pytest.raises(TypeError, match="query, key and value"):
        mha(x, x)


# ------------------------------------------------------------------------------------------ encoder layer
@pytest.mark.parametrize("norm_first", [False, True], ids=["post-norm", "pre-norm"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_encoder_layer_equals_torch(torch, backend, norm_first, activation, batch_first):
    rng = np.random.default_rng(0)
    kwargs = dict(dropout=0.0, activation=activation, batch_first=batch_first, norm_first=norm_first)
    ours = nu_xp.TransformerEncoderLayer(8, 2, 16, **kwargs, causal=True, seed=0, backend=backend, dtype="float64")
    module = _load_into(torch, ours, torch.nn.TransformerEncoderLayer(8, 2, 16, **kwargs))
    x = rng.normal(size=(N, L, 8) if batch_first else (L, N, 8))
    padding = np.zeros((N, L), bool)
    padding[0, -2:] = True
    causal = torch.nn.Transformer.generate_square_subsequent_mask(L, dtype=torch.float64)
    xt = _tensor(torch, x)
    yt = module(xt, src_mask=causal, src_key_padding_mask=torch.tensor(padding).double() * -1e300, is_causal=True)
    g = rng.normal(size=tuple(yt.shape))
    yt.backward(torch.tensor(g))
    y = ours(on(backend, x), src_key_padding_mask=on(backend, padding, dtype=None))
    _assert(y, yt, "output")
    _assert(ours.backward(on(backend, g)), xt.grad, "dL/dsrc")
    _check_params(ours, module)


def test_encoder_layer_masks_combine_with_causal(torch, backend):
    """causal=True and a src_mask given too: a position is allowed only where both allow it."""
    rng = np.random.default_rng(5)
    ours = nu_xp.TransformerEncoderLayer(8, 2, 16, dropout=0.0, causal=True, seed=0, backend=backend, dtype="float64")
    module = _load_into(torch, ours, torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0))
    mask = rng.random((L, L)) < 0.3
    np.fill_diagonal(mask, False)
    both = mask | np.triu(np.ones((L, L), bool), 1)
    x = rng.normal(size=(L, N, 8))
    xt = _tensor(torch, x)
    yt = module(xt, src_mask=torch.tensor(both))
    y = ours(on(backend, x), src_mask=on(backend, mask, dtype=None))
    _assert(y, yt, "output")


def test_encoder_layer_gradcheck(backend):
    x = on(backend, np.random.default_rng(0).normal(size=(3, 2, 4)))
    for norm_first in (False, True):
        layer = nu_xp.TransformerEncoderLayer(
            4, 2, 6, dropout=0.2, activation="gelu", norm_first=norm_first, causal=True, seed=0, backend=backend
        )
        assert nu_xp.gradcheck(layer, x) < 1e-6


# ------------------------------------------------------------------------------------------ Select, models, files
def test_a_file_announcing_a_billion_layers_is_refused_at_once(tmp_path):
    """The config is checked before any shape is listed: no endless loop, no memory blow-up."""
    from tests.helpers import rewrite_meta

    path = nu_xp.save(nu_xp.Sequential(nu_xp.LSTM(2, 3)), tmp_path / "m.npz")

    def change(meta):
        meta["architecture"]["layers"][0]["config"]["num_layers"] = 10**9
        return meta

    rewrite_meta(path, tmp_path / "bad.npz", change)
    with pytest.raises(nu_xp.ModelFileError, match="num_layers must be at most"):
        nu_xp.load(tmp_path / "bad.npz")


def test_select_hands_none_to_the_rest(backend):
    select = nu_xp.Select(1)
    assert select(("a", "b", "c")) == "b"
    assert select.backward("g") == (None, "g", None)
    with pytest.raises(TypeError, match="takes a tuple"):
        select(on(backend, np.zeros(3)))
    with pytest.raises(IndexError, match="2 elements"):
        nu_xp.Select(2)((1, 2))
    assert repr(nu_xp.Select(-1)) == "Select(-1)"


def _char_model(backend, tie=True, seed=0):
    emb = nu_xp.Embedding(11, 8, seed=seed, backend=backend, dtype="float64")
    head = nu_xp.Linear(8, 11, bias=False, seed=seed + 1, backend=backend, dtype="float64")
    if tie:
        head.weight = emb.weight
    return nu_xp.Sequential(
        emb,
        nu_xp.TransformerEncoderLayer(
            8, 2, 16, dropout=0.0, batch_first=True, norm_first=True, causal=True, seed=seed, backend=backend,
            dtype="float64",
        ),
        nu_xp.LayerNorm(8, backend=backend, dtype="float64"),
        head,
    )  # fmt: skip


def test_lstm_and_gpt_models_save_load_and_train(backend, tmp_path):
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 11, size=(6, 7))
    lstm = nu_xp.Sequential(
        nu_xp.Embedding(11, 4, seed=0, backend=backend),
        nu_xp.LSTM(4, 5, num_layers=2, batch_first=True, bidirectional=True, dropout=0.1, seed=0, backend=backend),
        nu_xp.Select(0),
        nu_xp.Linear(10, 3, seed=1, backend=backend),
    )
    for model in (lstm, _char_model(backend)):
        path = nu_xp.save(model, tmp_path / "m.npz")
        for target in ("numpy", backend):
            loaded = nu_xp.load(path, backend=target)
            np.testing.assert_allclose(
                host(loaded.predict(tokens)), host(model.predict(tokens)), rtol=1e-5, atol=1e-6, err_msg=target
            )
        assert "LSTM(4, 5, num_layers=2" in repr(lstm) or "TransformerEncoderLayer(" in repr(model)
    gpt = _char_model(backend)
    assert gpt.tied_parameters() == {"3.weight": "0.weight"}
    loaded = nu_xp.load(nu_xp.save(gpt, tmp_path / "gpt.npz"), backend=backend)
    assert loaded[3].weight is loaded[0].weight
    y = tokens[:, 1:]
    x = tokens[:, :-1]

    loss = nu_xp.CrossEntropyLoss()
    opt = nu_xp.optim.Adam(gpt.parameters(), lr=0.01)
    xp = gpt.backend.xp
    first = None
    for _ in range(30):
        gpt.zero_grad()
        logits = gpt(on(backend, x, dtype=None))  # (N, L, V): one prediction per position
        value = loss(xp.reshape(logits, (-1, 11)), xp.reshape(on(backend, y, dtype=None), (-1,)))
        gpt.backward(xp.reshape(loss.backward(), logits.shape))
        opt.step()
        first = float(host(value)) if first is None else first
    assert float(host(value)) < 0.5 * first


def test_sequence_layers_store_nothing_under_no_grad(backend):
    x = on(backend, np.random.default_rng(0).normal(size=(4, 2, 3)), dtype="float32")
    lstm = nu_xp.LSTM(3, 4, backend=backend)
    block = nu_xp.TransformerEncoderLayer(4, 2, 8, causal=True, backend=backend)
    with nu_xp.no_grad():
        lstm(x)
        block(lstm(x)[0])
    assert lstm.pending_backwards() == 0
    assert all(layer.pending_backwards() == 0 for layer in [block, block.self_attn, block.linear1, block.norm1])
    with pytest.raises(RuntimeError, match="before forward"):
        lstm.backward(on(backend, np.zeros((4, 2, 4)), dtype="float32"))


def test_summary_of_a_sequence_model():
    model = nu_xp.Sequential(nu_xp.Embedding(10, 4), nu_xp.GRU(4, 6, batch_first=True), nu_xp.Select(0))
    text = model.summary((7,))
    assert "GRU" in text and "(N, 7, 6)" in text
