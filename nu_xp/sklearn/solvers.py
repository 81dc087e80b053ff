"""scikit-learn's two kinds of solver, on nu_xp's model: minibatch SGD/Adam with its schedule and stopping rule,
and L-BFGS on the flat parameter vector.

Both minimize [`objective`][nu_xp.sklearn.objective]'s batch loss (sample weights as its argument) plus
its L2 penalty. The stochastic solver runs nu_xp's one epoch loop
([`run_epoch`][nu_xp.training.loop.run_epoch]) with a step that adds the penalty; L-BFGS hands
``scipy.optimize.minimize`` the loss and gradient that nu_xp's forward and backward compute.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.optimize
from sklearn.exceptions import ConvergenceWarning

from .. import optim
from ..backends import asarray, ops_of, to_host
from ..layers import Layer, Linear
from ..training.hooks import StepHooks
from ..training.loop import run_epoch
from .objective import BatchLoss, l2_penalty

__all__ = ["PenalizedStep", "Schedule", "fit_lbfgs", "fit_stochastic", "loss_and_gradient", "pack", "unpack"]


class PenalizedStep(StepHooks):
    """One step of scikit-learn's stochastic solvers: the batch loss with the batch's sample weights, its
    backward, then the L2 penalty's gradient (``α W / Σs``) before the optimizer steps.

    Parameters
    ----------
    weights : list of Parameter
        The weight matrices the penalty applies to (not the biases).
    alpha : float
        The penalty's strength.
    loss : BatchLoss
        The batch loss (the loop's ``loss``: it takes the batch's sample weights as a third argument).
    """

    def __init__(self, weights: list[Any], alpha: float, loss: BatchLoss) -> None:
        self.weights, self.alpha, self.loss = weights, alpha, loss

    def forward_backward(self, model: Layer, loss: Any, xs: Any, ys: Any) -> tuple[Any, Any]:
        targets, sample_weight = ys
        pred = model(xs)
        value = self.loss.forward(pred, targets, sample_weight)
        model.backward_into(self.loss.backward(), input_grad=False)
        weight_sum = xs.shape[0] if sample_weight is None else ops_of(sample_weight).sum(sample_weight)
        value = value + l2_penalty(self.weights, self.alpha, weight_sum)
        return value * xs.shape[0], pred


class Schedule:
    """scikit-learn's learning-rate schedule around a nu_xp optimizer (scikit-learn's ``_optimizer``).

    ``"constant"``; ``"invscaling"``: ``η = η₀ / (t + 1)^power_t`` after each
    epoch, ``t`` the samples seen; ``"adaptive"``: ``η /= 5`` each time the
    stopping rule fires, until ``η ≤ 1e-6``. Only ``solver="sgd"`` schedules
    (Adam keeps ``learning_rate_init``, as scikit-learn). ``learning_rate`` is
    the rate in use.

    Parameters
    ----------
    est : MLPClassifier or MLPRegressor
        The estimator whose ``solver``, rates and momenta to follow (its ``model_`` built).
    """

    def __init__(self, est: Any) -> None:
        self.kind = est.learning_rate if est.solver == "sgd" else "constant"
        self.initial, self.power_t = est.learning_rate_init, est.power_t
        params = est.model_.parameters()
        if est.solver == "sgd":
            self.optimizer: Any = optim.SGD(
                params,
                lr=est.learning_rate_init,
                momentum=est.momentum,
                nesterov=est.nesterovs_momentum and est.momentum > 0,
            )
        else:
            self.optimizer = optim.Adam(
                params, lr=est.learning_rate_init, betas=(est.beta_1, est.beta_2), eps=est.epsilon
            )

    @property
    def learning_rate(self) -> float:
        """The learning rate in use."""
        return float(self.optimizer.lr)

    def set_rate(self, rate: float) -> None:
        """Use ``rate`` from now on, as scikit-learn's velocity does.

        scikit-learn keeps the velocity ``v ← μv − ηg`` (the rate inside it),
        nu_xp's SGD the buffer ``b ← μb + g`` (``θ ← θ − ηb``, so ``v = −ηb``);
        a new rate would apply to the whole buffer, so the buffers are scaled
        by ``η_old/η_new`` to keep ``v`` as it is: the two then agree step for
        step through ``"invscaling"`` and ``"adaptive"``, Nesterov or not.
        """
        old = self.learning_rate
        self.optimizer.lr = rate
        if rate != old and rate > 0 and isinstance(self.optimizer, optim.SGD):
            for entries in self.optimizer.state.values():
                if entries.get("momentum_buffer") is not None:
                    entries["momentum_buffer"] = entries["momentum_buffer"] * (old / rate)

    def iteration_ends(self, time_step: int) -> None:
        """After each epoch: ``"invscaling"`` lowers the rate."""
        if self.kind == "invscaling":
            self.set_rate(self.initial / (time_step + 1) ** self.power_t)

    def trigger_stopping(self, message: str, verbose: Any) -> bool:
        """The stopping rule fired: stop (True), or for ``"adaptive"`` divide the rate by 5 and go on."""
        if self.kind != "adaptive":
            if verbose:
                print(message + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(message + " Learning rate too small. Stopping.")
            return True
        self.set_rate(self.learning_rate / 5.0)
        if verbose:
            print(message + f" Setting learning rate to {self.learning_rate:f}")
        return False


def _batches(
    x: Any, targets: Any, weights: Any, order: np.ndarray | None, batch: int
) -> Iterator[tuple[Any, tuple[Any, Any]]]:
    """``(x_b, (targets_b, weights_b))`` over one epoch, in ``order`` (host indices; None: as they are)."""
    if order is not None:
        ops = ops_of(x)
        index = ops.asarray(order, device=ops.device_of(x))
        x, targets = ops.xp.take(x, index, axis=0), ops.xp.take(targets, index, axis=0)
        weights = None if weights is None else ops.xp.take(weights, index, axis=0)
    n = x.shape[0]
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        yield x[start:stop, ...], (targets[start:stop, ...], None if weights is None else weights[start:stop])


def fit_stochastic(
    est: Any, X: Any, targets: np.ndarray, y: Any, weights: np.ndarray | None, incremental: bool
) -> None:
    """scikit-learn's epochs, schedule and stopping rule around nu_xp's one epoch loop.

    Each epoch reshuffles the previous epoch's order with ``random_state``'s
    generator (scikit-learn's ``sample_idx = shuffle(sample_idx)``); each step
    is a [`PenalizedStep`][]. ``weights`` None: every sample weighs 1.
    """
    if not incremental or not hasattr(est, "_optimizer"):
        est._optimizer = Schedule(est)
    if est.early_stopping and incremental:
        raise ValueError("partial_fit does not support early_stopping=True")
    x_val = y_val = w_val = None
    if est.early_stopping:
        X, x_val, targets, weights, y_val, w_val = est._split(X, targets, weights, y)
    n = X.shape[0]
    be = est._backend_
    x_all = asarray(X, like=be, dtype=be.dtype)
    t_all = asarray(targets, like=be, dtype=be.dtype)
    w_all = None if weights is None else asarray(weights, like=be, dtype=be.dtype)
    asked: Any = est.batch_size
    batch = min(200, n) if asked == "auto" else int(np.clip(asked, 1, n))
    if asked != "auto" and asked > n:
        warnings.warn(
            "Got `batch_size` less than 1 or larger than sample size. It is going to be clipped", stacklevel=4
        )
    loss = est._loss()
    step = PenalizedStep([layer.weight for layer in est.model_ if isinstance(layer, Linear)], est.alpha, loss)
    opt = est._optimizer.optimizer
    order = np.arange(n)
    est.n_iter_ = 0
    try:
        for _ in range(est.max_iter):
            if est.shuffle:
                order = order[est._random_state.permutation(n)]
            batches = _batches(x_all, t_all, w_all, order if est.shuffle else None, batch)
            est.loss_ = run_epoch(est.model_, loss, opt, batches, stop_on_nan=False, hooks=step)["loss"]
            est.n_iter_ += 1
            est.t_ += n
            est.loss_curve_.append(est.loss_)
            if est.verbose:
                print(f"Iteration {est.n_iter_}, loss = {est.loss_:.8f}")
            est._update_no_improvement_count(x_val, y_val, w_val)
            est._optimizer.iteration_ends(est.t_)
            if est._no_improvement_count > est.n_iter_no_change:
                what = "Validation score" if est.early_stopping else "Training loss"
                message = (
                    f"{what} did not improve more than tol={est.tol:f} for {est.n_iter_no_change} consecutive epochs."
                )
                if est._optimizer.trigger_stopping(message, est.verbose):
                    break
                est._no_improvement_count = 0
            if incremental:
                break
            if est.n_iter_ == est.max_iter:
                warnings.warn(
                    f"Stochastic Optimizer: Maximum iterations ({est.max_iter}) reached and the optimization "
                    "hasn't converged yet.",
                    ConvergenceWarning,
                    stacklevel=4,
                )
    except KeyboardInterrupt:
        warnings.warn("Training interrupted by user.", stacklevel=4)
    if est.early_stopping and est._best_state is not None:
        est.model_.load_state_dict(est._best_state)


def fit_lbfgs(est: Any, X: Any, targets: np.ndarray, weights: np.ndarray | None) -> None:
    """scikit-learn's L-BFGS: ``scipy.optimize.minimize(method="L-BFGS-B")`` on the flat parameter vector.

    The loss and its gradient (the L2 term included) come from nu_xp on the
    model's backend ([`loss_and_gradient`][]); only the vector crosses to the host per evaluation.
    """
    be = est._backend_
    x_all = asarray(X, like=be, dtype=be.dtype)
    t_all = asarray(targets, like=be, dtype=be.dtype)
    w_all = None if weights is None else asarray(weights, like=be, dtype=be.dtype)
    loss = est._loss()
    result = scipy.optimize.minimize(
        loss_and_gradient,
        pack(est.coefs_, est.intercepts_),
        method="L-BFGS-B",
        jac=True,
        options={"maxfun": est.max_fun, "maxiter": est.max_iter, "gtol": est.tol},
        args=(est, loss, x_all, t_all, w_all),
    )
    if result.status != 0:
        warnings.warn(
            f"lbfgs failed to converge after {result.nit} iteration(s) (status={result.status}): "
            f"{result.message}. Increase the number of iterations (max_iter) or scale the data as shown in "
            "https://scikit-learn.org/stable/modules/preprocessing.html",
            ConvergenceWarning,
            stacklevel=4,
        )
    est.n_iter_ = min(int(result.nit), est.max_iter)
    est.loss_ = float(result.fun)
    unpack(est, result.x)


def loss_and_gradient(
    packed: np.ndarray, est: Any, loss: BatchLoss, x: Any, targets: Any, weights: Any
) -> tuple[float, np.ndarray]:
    """``(L, dL/dθ)`` for the flat parameter vector ``θ`` (scikit-learn's packing), on the host as float64."""
    unpack(est, packed)
    model = est.model_
    model.zero_grad()
    value = loss.forward(model(x), targets, weights)
    model.backward(loss.backward(), input_grad=False)
    linears = [layer for layer in model if isinstance(layer, Linear)]
    weight_sum = x.shape[0] if weights is None else ops_of(weights).sum(weights)
    total = float(value + l2_penalty([layer.weight for layer in linears], est.alpha, weight_sum))
    grads = [np.asarray(to_host(layer.weight.grad), dtype=np.float64).T for layer in linears]
    grads += [np.asarray(to_host(layer.bias.grad), dtype=np.float64) for layer in linears]  # type: ignore[union-attr]
    return total, np.concatenate([g.ravel() for g in grads])


def pack(coefs: list[Any], intercepts: list[Any]) -> np.ndarray:
    """Every ``coefs_`` entry raveled, then every ``intercepts_`` entry: scikit-learn's flat parameter vector."""
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in (*coefs, *intercepts)])


def unpack(est: Any, packed: np.ndarray) -> None:
    """Put a flat vector (every ``coefs_`` entry raveled, then every ``intercepts_`` entry) into the model."""
    be = est._backend_
    linears = [layer for layer in est.model_ if isinstance(layer, Linear)]
    start = 0
    for layer in linears:
        n_out, n_in = layer.weight.shape
        w = np.asarray(packed[start : start + n_in * n_out], dtype=be.dtype_name).reshape(n_in, n_out)
        layer.weight.data = be.from_host(w.T)  # a view where the backend can (x @ W.T is then x @ w)
        start += n_in * n_out
    for layer in linears:
        n_out = layer.weight.shape[0]
        layer.bias.data = be.from_host(np.asarray(packed[start : start + n_out], dtype=be.dtype_name))  # type: ignore[union-attr]
        start += n_out
