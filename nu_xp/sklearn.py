"""scikit-learn estimators: ``MLPClassifier`` and ``MLPRegressor`` with nu_xp underneath.

Swap ``from sklearn.neural_network import MLPClassifier`` for
``from nu_xp.sklearn import MLPClassifier``: the arguments, the training
algorithm (minibatch SGD or Adam, L2 penalty ``alpha``, the stopping rule on
``tol``/``n_iter_no_change``, ``early_stopping`` on a held-out
``validation_fraction``) and the fitted attributes are scikit-learn's; the
arithmetic is nu_xp's, on any backend (``backend="torch", device="cuda"``…).

What scikit-learn computes, and so do these, per minibatch of ``n`` samples::

    classifier, 2 classes or multilabel: L = -Σ (y log σ(z) + (1-y) log(1-σ(z))) / n     (one logistic output per label)
    classifier, > 2 classes:             L = -Σ y log softmax(z) / n
    regressor:                           L = Σ (z - y)² / (2 n · n_outputs)
    every one:                           L += α/2 · Σ_layers ||W||² / n,    dL/dW += α W / n

and the gradient reaching the logits ``z`` is ``(p - y) / n`` (``p = z`` for
the regressor, as in scikit-learn). Weights start as scikit-learn's (Glorot
uniform, factor 6, or 2 for ``"logistic"``), drawn from ``random_state``.

``model_`` is the fitted nu_xp ``Sequential`` (it outputs logits: apply
``nu_xp.Sigmoid``/``Softmax``, or call ``predict_proba``); ``coefs_`` and
``intercepts_`` are host copies in scikit-learn's ``(n_in, n_out)`` layout.
With ``sklearn.set_config(array_api_dispatch=True)``, torch or CuPy inputs
are trained and predicted on their own device (``backend=None`` follows the
input), and ``predict``/``predict_proba`` return arrays of the input's kind.
"""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import scipy.optimize
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from . import losses, optim
from .backends import asarray, backend_of, dtype_name, get_backend, ops_of, to_host
from .functional import sigmoid
from .layers import Identity, Linear, ReLU, Sequential, Sigmoid, Softmax, Tanh
from .training.hooks import StepHooks
from .training.loop import minibatches, run_epoch

__all__ = ["MLPClassifier", "MLPRegressor"]

_ACTIVATIONS = {"identity": Identity, "logistic": Sigmoid, "tanh": Tanh, "relu": ReLU}


class _BaseMLP(BaseEstimator):
    """What both estimators share: parameters, the network, scikit-learn's solvers and stopping rule."""

    _parameter_constraints: ClassVar[dict] = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(_ACTIVATIONS))],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "backend": [None, str, object],
        "device": [None, str, object],
        "dtype": [None, str, type, np.dtype],
    }

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool | int = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int | float = 10,
        max_fun: int = 15000,
        backend: Any = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.backend = backend
        self.device = device
        self.dtype = dtype

    # ------------------------------------------------------------------ what subclasses say
    def _targets(self, y: np.ndarray, *, first: bool, incremental: bool, classes: Any = None) -> np.ndarray:
        """The training targets as floats ``(n, n_outputs)`` (labels encoded for a classifier)."""
        raise NotImplementedError

    def _loss(self, reduction: str) -> losses.Loss:
        """The nu_xp loss, summed over a batch (``"sum"``) or per element (``"none"``, for sample weights)."""
        raise NotImplementedError

    def _batch_loss(self, weights: np.ndarray) -> tuple[Any, bool]:
        """``(scikit-learn's batch loss, whether the weights ride as the targets' last column)``.

        Without sample weights (all ones) the plain per-sample mean, which needs no weight column.
        """
        if np.all(weights == 1.0):
            return _PerSample(self._loss("sum")), False
        return _Weighted(self._loss("none")), True

    def _device_targets(self, targets: np.ndarray, weights: np.ndarray, weighted: bool) -> Any:
        """The targets on the model's backend, with the sample weights as a last column when ``weighted``."""
        place = self._place_
        values = np.concatenate([targets, weights[:, None]], axis=1) if weighted else targets
        return asarray(values, like=place, dtype=place.dtype)

    def _out_activation(self) -> str:
        raise NotImplementedError

    def _score_function(self, y: Any, y_pred: Any, sample_weight: Any) -> float:
        raise NotImplementedError

    def _check_solver(self) -> bool:
        """``partial_fit`` exists for the stochastic solvers only (as in scikit-learn)."""
        if self.solver not in ("sgd", "adam"):
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. {self.solver} is not.")
        return True

    # ------------------------------------------------------------------ building
    def _hidden(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, Integral) else list(sizes)
        if any(not isinstance(s, Integral) or s < 1 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {self.hidden_layer_sizes!r}.")
        return [int(s) for s in sizes]

    def _place(self, X: Any) -> Any:
        """The Backend: the user's choice, else the input's own kind of array (array API dispatch), else numpy."""
        if self.dtype is not None:
            dtype = dtype_name(self.dtype)
            if dtype not in ("float32", "float64"):
                raise ValueError(f"dtype must be None, 'float32' or 'float64', got {self.dtype!r}")
        else:
            dtype = dtype_name(X.dtype) if dtype_name(X.dtype) in ("float32", "float64") else "float64"
        if self.backend is None and self.device is None and not isinstance(X, np.ndarray):
            return get_backend(backend_of(X), dtype=dtype)
        return get_backend(self.backend or "numpy", self.device, dtype)

    def _build(self, sizes: list[int], rng: np.random.RandomState, place: Any) -> Sequential:
        """scikit-learn's Glorot-uniform weights and biases (or coefs_ set by hand), in a ``Sequential``."""
        factor = 2.0 if self.activation == "logistic" else 6.0
        assigned = self.__dict__.pop("_assigned", None)
        layers: list[Any] = []
        for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
            linear = Linear(a, b, init="zeros", backend=place)
            bound = math.sqrt(factor / (a + b))
            w = rng.uniform(-bound, bound, (a, b))
            bias = rng.uniform(-bound, bound, b)
            if assigned is not None:  # coefs_/intercepts_ set by hand before the first fit
                w, bias = np.asarray(assigned[0][i], dtype=np.float64), np.asarray(assigned[1][i], dtype=np.float64)
            linear.weight.data = place.from_host(np.ascontiguousarray(w.T).astype(place.dtype_name))
            linear.bias.data = place.from_host(np.asarray(bias).reshape(b).astype(place.dtype_name))  # type: ignore[union-attr]
            layers.append(linear)
            if i < len(sizes) - 2:
                layers.append(_ACTIVATIONS[self.activation]())
        return Sequential(*layers)

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
        """Train on ``(X, y)`` (from scratch, or from the current weights with ``warm_start``); returns ``self``."""
        self._validate_params()
        return self._fit(X, y, sample_weight, incremental=False)

    def _fit(self, X: Any, y: Any, sample_weight: Any, *, incremental: bool, classes: Any = None) -> Any:
        """scikit-learn's ``_fit``: validate, ``_initialize`` on a first pass, run the solver, check the weights."""
        hidden = self._hidden()
        first = not hasattr(self, "model_") or (not self.warm_start and not incremental)
        X, y = validate_data(
            self,
            X,
            y,
            reset=first,
            accept_sparse=["csr", "csc"],
            dtype=_float_dtypes(X),
            multi_output=True,
            y_numeric=isinstance(self, RegressorMixin),
        )
        if sp.issparse(X):  # nu_xp computes on dense arrays
            X = X.toarray()
        if y.ndim == 2 and y.shape[1] == 1:  # as scikit-learn's MLP: warn, and treat it as 1-D
            warnings.warn(
                "A column-vector y was passed when a 1d array was expected. Please change the shape of y to "
                "(n_samples,), for example using ravel().",
                DataConversionWarning,
                stacklevel=3,
            )
            y = y[:, 0]
        y_host = to_host(y) if not isinstance(y, np.ndarray) else y
        targets = self._targets(y_host, first=first, incremental=incremental, classes=classes)
        weights = _sample_weights(sample_weight, X.shape[0])
        self._random_state = check_random_state(self.random_state)
        if first:
            self._initialize(X, [X.shape[1], *hidden, targets.shape[1]], incremental)
        if self.solver == "lbfgs":
            self._fit_lbfgs(X, targets, weights)
        else:
            self._fit_stochastic(X, targets, y_host, weights, incremental)
        if not all(np.all(np.isfinite(w)) for w in (*self.coefs_, *self.intercepts_)):
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may contain large values and need "
                "to be preprocessed."
            )
        return self

    def _initialize(self, X: Any, sizes: list[int], incremental: bool) -> None:
        """Every fitted attribute, set in one place (scikit-learn's ``_initialize``), and the model built."""
        self.n_iter_, self.t_ = 0, 0
        self.n_outputs_ = sizes[-1]
        self.n_layers_ = len(sizes)
        self.out_activation_ = self._out_activation()
        self._place_ = self._place(X)
        self.model_ = self._build(sizes, self._random_state, self._place_)
        self.__dict__.pop("_optimizer", None)
        if self.solver in ("sgd", "adam"):
            self.loss_curve_: list[float] = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_: list[float] | None = []
                self.best_validation_score_: float | None = -np.inf
                self.best_loss_: float | None = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _fit_stochastic(self, X: Any, targets: np.ndarray, y: Any, weights: np.ndarray, incremental: bool) -> None:
        """scikit-learn's epochs, schedule and stopping rule around nu_xp's one epoch loop
        ([`run_epoch`][nu_xp.training.loop.run_epoch]).

        Each epoch shuffles with ``random_state``'s generator; each step adds
        the L2 penalty's gradient before the optimizer steps (`_L2Penalty`).
        """
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = _Schedule(self)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        x_val = y_val = w_val = None
        if self.early_stopping:
            X, x_val, targets, weights, y_val, w_val = self._split(X, targets, weights, y)
        n = X.shape[0]
        place = self._place_
        x_all = asarray(X, like=place, dtype=place.dtype)
        loss, weighted = self._batch_loss(weights)
        # sample weights ride along as the targets' last column: shuffled and batched with them
        t_all = self._device_targets(targets, weights, weighted)
        asked: Any = self.batch_size
        batch = min(200, n) if asked == "auto" else int(np.clip(asked, 1, n))
        if asked != "auto" and asked > n:
            warnings.warn(
                "Got `batch_size` less than 1 or larger than sample size. It is going to be clipped", stacklevel=4
            )
        hooks = _L2Penalty([layer.weight for layer in self.model_ if isinstance(layer, Linear)], self.alpha, loss)
        opt = self._optimizer.optimizer
        self.n_iter_ = 0
        try:
            for _ in range(self.max_iter):
                batches = minibatches(x_all, t_all, batch, shuffle=self.shuffle, rng=self._random_state)
                self.loss_ = run_epoch(self.model_, loss, opt, batches, stop_on_nan=False, hooks=hooks)["loss"]
                self.n_iter_ += 1
                self.t_ += n
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
                self._update_no_improvement_count(x_val, y_val, w_val)
                self._optimizer.iteration_ends(self.t_)
                if self._no_improvement_count > self.n_iter_no_change:
                    what = "Validation score" if self.early_stopping else "Training loss"
                    message = (
                        f"{what} did not improve more than tol={self.tol:f} for {self.n_iter_no_change} "
                        "consecutive epochs."
                    )
                    if self._optimizer.trigger_stopping(message, self.verbose):
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn(
                        f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the optimization "
                        "hasn't converged yet.",
                        ConvergenceWarning,
                        stacklevel=4,
                    )
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.", stacklevel=4)
        if self.early_stopping and self._best_state is not None:
            self.model_.load_state_dict(self._best_state)

    def _fit_lbfgs(self, X: Any, targets: np.ndarray, weights: np.ndarray) -> None:
        """scikit-learn's L-BFGS: ``scipy.optimize.minimize(method="L-BFGS-B")`` on the flat parameter vector.

        The loss and its gradient (the L2 term included) come from nu_xp on the
        model's backend; only the vector crosses to the host per evaluation.
        """
        place = self._place_
        x_all = asarray(X, like=place, dtype=place.dtype)
        loss, weighted = self._batch_loss(weights)
        t_all = self._device_targets(targets, weights, weighted)
        result = scipy.optimize.minimize(
            self._objective,
            _pack(self.coefs_, self.intercepts_),
            method="L-BFGS-B",
            jac=True,
            options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol},
            args=(x_all, t_all, loss),
        )
        if result.status != 0:
            warnings.warn(
                f"lbfgs failed to converge after {result.nit} iteration(s) (status={result.status}): "
                f"{result.message}. Increase the number of iterations (max_iter) or scale the data as shown in "
                "https://scikit-learn.org/stable/modules/preprocessing.html",
                ConvergenceWarning,
                stacklevel=4,
            )
        self.n_iter_ = min(int(result.nit), self.max_iter)
        self.loss_ = float(result.fun)
        self._unpack(result.x)

    def _objective(self, packed: np.ndarray, x_all: Any, t_all: Any, loss: Any) -> tuple[float, np.ndarray]:
        """``(L, dL/dθ)`` for the flat parameter vector ``θ`` (scikit-learn's packing), on the host as float64."""
        self._unpack(packed)
        model = self.model_
        model.zero_grad()
        value = loss.forward(model(x_all), t_all)
        model.backward(loss.backward(), input_grad=False)
        linears = [layer for layer in model if isinstance(layer, Linear)]
        n_coefs = sum(layer.weight.data.shape[0] * layer.weight.data.shape[1] for layer in linears)
        coefs = packed[:n_coefs]  # the penalty from the host vector itself: no device round trip
        total = float(value) + 0.5 * self.alpha * float(coefs @ coefs) / loss.weight_sum
        if self.alpha:
            for layer in linears:
                w = layer.weight
                w.grad = w.grad + (self.alpha / loss.weight_sum) * w.data
        grads = [np.asarray(to_host(layer.weight.grad), dtype=np.float64).T for layer in linears]
        grads += [np.asarray(to_host(layer.bias.grad), dtype=np.float64) for layer in linears]  # type: ignore[union-attr]
        return total, np.concatenate([g.ravel() for g in grads])

    def _loss_grad_lbfgs(
        self, packed: np.ndarray, X: Any, y: Any, sample_weight: Any = None, *unused: Any
    ) -> tuple[float, np.ndarray]:
        """scikit-learn's ``_loss_grad_lbfgs(packed, X, Y, sample_weight, ...)``: the same loss and gradient,
        for code that checks them (``Y`` already encoded, ``(n, n_outputs)``)."""
        place = self._place_
        targets = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        weights = _sample_weights(sample_weight, targets.shape[0])
        loss, weighted = self._batch_loss(weights)
        x_all = asarray(np.asarray(X), like=place, dtype=place.dtype)
        return self._objective(packed, x_all, self._device_targets(targets, weights, weighted), loss)

    def _unpack(self, packed: np.ndarray) -> None:
        """Put a flat vector (every ``coefs_`` entry raveled, then every ``intercepts_`` entry) into the model."""
        place = self._place_
        linears = [layer for layer in self.model_ if isinstance(layer, Linear)]
        start = 0
        for layer in linears:
            n_out, n_in = layer.weight.shape
            w = np.asarray(packed[start : start + n_in * n_out], dtype=place.dtype_name).reshape(n_in, n_out)
            layer.weight.data = place.from_host(w.T)  # a view where the backend can (x @ W.T is then x @ w)
            start += n_in * n_out
        for layer in linears:
            n_out = layer.weight.shape[0]
            layer.bias.data = place.from_host(np.asarray(packed[start : start + n_out], dtype=place.dtype_name))  # type: ignore[union-attr]
            start += n_out

    def _split(self, X: Any, targets: np.ndarray, weights: np.ndarray, y: Any) -> tuple:
        """The held-out validation part for ``early_stopping`` (stratified for single-output classification)."""
        stratify = y if isinstance(self, ClassifierMixin) and self.n_outputs_ == 1 else None
        x_tr, x_val, t_tr, _, w_tr, w_val, _, y_val = train_test_split(
            X,
            targets,
            weights,
            y,
            random_state=self._random_state,
            test_size=self.validation_fraction,
            stratify=stratify,
        )
        if x_val.shape[0] < 2:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' or the size of your dataset."
            )
        self._best_state: dict[str, np.ndarray] | None = None
        return x_tr, x_val, t_tr, w_tr, y_val, w_val

    def _update_no_improvement_count(self, x_val: Any, y_val: Any, w_val: Any) -> None:
        """scikit-learn's rule: count epochs without an improvement of ``tol`` in the loss or validation score."""
        if x_val is not None:
            score = self._validation_score(x_val, y_val, w_val)
            self.validation_scores_.append(score)  # type: ignore[union-attr]
            if self.verbose:
                print(f"Validation score: {score:f}")
            if score < self.best_validation_score_ + self.tol:  # type: ignore[operator]
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:  # type: ignore[operator]
                self.best_validation_score_ = score
                self._best_state = self.model_.state_dict()
            return
        if self.loss_curve_[-1] > self.best_loss_ - self.tol:  # type: ignore[operator]
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        if self.loss_curve_[-1] < self.best_loss_:  # type: ignore[operator]
            self.best_loss_ = self.loss_curve_[-1]

    def _validation_score(self, X: np.ndarray, y: np.ndarray, sample_weight: Any) -> float:
        """The score on the held-out part; NaN (recorded, training goes on) when the predictions are not finite."""
        z = np.asarray(to_host(self.model_.predict(asarray(X, like=self._place_, dtype=self._place_.dtype))))
        if not np.all(np.isfinite(z)):
            return float("nan")
        weights = None if sample_weight is None or np.all(sample_weight == 1) else sample_weight
        return float(self._score_function(y, self._decode(z), weights))

    def _decode(self, z: np.ndarray) -> np.ndarray:
        """What ``predict`` returns for the model's outputs ``z`` (host arrays)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ predicting
    def _logits(self, X: Any) -> Any:
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, accept_sparse=["csr", "csc"], dtype=_float_dtypes(X))
        if sp.issparse(X):
            X = X.toarray()
        place = self._place_
        return self.model_.predict(asarray(X, like=place, dtype=place.dtype))

    def _out(self, values: Any, like: Any) -> Any:
        """``values`` as an array of the input's kind: a torch tensor or CuPy array stays one, the rest is numpy."""
        device_input = _device_array(like)
        return to_host(values) if device_input is None else asarray(values, like=device_input)

    @property
    def coefs_(self) -> list[np.ndarray]:
        """Weight matrices in scikit-learn's layout ``(n_in, n_out)``, host copies (assignable)."""
        if "model_" not in self.__dict__ and "_assigned" in self.__dict__:
            return self.__dict__["_assigned"][0]
        check_is_fitted(self, "model_")
        return [np.array(to_host(layer.weight.data)).T.copy() for layer in self.model_ if isinstance(layer, Linear)]

    @coefs_.setter
    def coefs_(self, value: list[Any]) -> None:
        self._assign(value, None)

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """Bias vectors ``(n_out,)``, host copies (assignable)."""
        if "model_" not in self.__dict__ and "_assigned" in self.__dict__:
            return self.__dict__["_assigned"][1]
        check_is_fitted(self, "model_")
        return [
            np.array(to_host(layer.bias.data))
            for layer in self.model_
            if isinstance(layer, Linear) and layer.bias is not None
        ]

    @intercepts_.setter
    def intercepts_(self, value: list[Any]) -> None:
        self._assign(None, value)

    def _assign(self, coefs: Any, intercepts: Any) -> None:
        """``coefs_``/``intercepts_`` set by hand: into the fitted model, or kept for the first fit to start from."""
        if "model_" in self.__dict__:
            packed = _pack(
                coefs if coefs is not None else self.coefs_, intercepts if intercepts is not None else self.intercepts_
            )
            self._unpack(packed)
            return
        old = self.__dict__.get("_assigned", ([], []))
        self.__dict__["_assigned"] = (
            list(coefs) if coefs is not None else old[0],
            list(intercepts) if intercepts is not None else old[1],
        )

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def _device_array(x: Any) -> Any:
    """``x`` when it is an array of a backend other than numpy (array API dispatch), else None."""
    if isinstance(x, np.ndarray):
        return None
    try:
        ops_of(x)
    except TypeError:
        return None
    return x


def _float_dtypes(x: Any) -> tuple[Any, Any]:
    """(float64, float32) of the input's own library: what ``validate_data`` may keep or convert to."""
    device_input = _device_array(x)
    xp = np if device_input is None else ops_of(device_input).xp
    return xp.float64, xp.float32


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier: scikit-learn's ``MLPClassifier``, trained by nu_xp.

    Binary and multilabel targets get one logistic output per label (a binary
    target has ONE output unit: the last ``coefs_`` entry is ``(n_hidden, 1)``);
    more than two classes a softmax. Labels may be any sortable values
    (strings, non-contiguous integers). The first ``partial_fit`` needs
    ``classes=``. See [`nu_xp.sklearn`][nu_xp.sklearn] for the arguments and the loss.

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default (100,)
        The widths of the hidden layers.
    activation : {"relu", "tanh", "logistic", "identity"}, default "relu"
        The hidden layers' activation.
    solver : {"adam", "sgd"}, default "adam"
        The optimizer (scikit-learn's "lbfgs" is not offered).
    alpha : float, default 1e-4
        Strength of the L2 penalty on the weights (not the biases), ``alpha/(2·n)·Σ‖W‖²`` per batch.
    batch_size : int or "auto", default "auto"
        Minibatch size; ``"auto"``: ``min(200, n_samples)``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default "constant"
        The schedule of the step size for ``solver="sgd"``.
    learning_rate_init : float, default 1e-3
        The initial step size.
    power_t : float, default 0.5
        The exponent of ``"invscaling"``.
    max_iter : int, default 200
        Epochs at most.
    shuffle : bool, default True
        Whether to shuffle the samples every epoch.
    random_state : int, RandomState or None
        Seed of the initial weights, the shuffling and the validation split.
    tol : float, default 1e-4
        Improvement below which an epoch counts as no progress.
    verbose : bool or int, default False
        Print the loss every epoch.
    warm_start : bool, default False
        Continue from the previous ``fit``'s weights.
    momentum : float, default 0.9
        Momentum of ``solver="sgd"``.
    nesterovs_momentum : bool, default True
        Nesterov momentum for ``solver="sgd"``.
    early_stopping : bool, default False
        Stop when the score on a held-out ``validation_fraction`` stops improving.
    validation_fraction : float, default 0.1
        The held-out share for ``early_stopping``.
    beta_1, beta_2, epsilon : float
        Adam's ``β₁`` (0.9), ``β₂`` (0.999) and ``ε`` (1e-8).
    n_iter_no_change : int, default 10
        Epochs without progress (``tol``) before stopping.
    max_fun : int, default 15000
        Accepted for compatibility (used by "lbfgs" only).
    backend, device, dtype : optional
        Where the parameters live, as for every [`Layer`][nu_xp.layers.base.Layer] (default: the current backend).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from nu_xp.sklearn import MLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=1000, random_state=0).fit(X, y)
    >>> clf.score(X, y) > 0.9
    True
    """

    def _out_activation(self) -> str:
        return "softmax" if self._multiclass else "logistic"

    def _targets(self, y: np.ndarray, *, first: bool, incremental: bool, classes: Any = None) -> np.ndarray:
        kind = type_of_target(y)
        if kind == "multilabel-indicator":
            if first or not hasattr(self, "classes_"):
                self.classes_ = np.arange(y.shape[1])
                self._multilabel, self._multiclass = True, False
            elif y.shape[1] != len(self.classes_):
                raise ValueError(f"y has {y.shape[1]} labels, but this classifier was fitted with {len(self.classes_)}")
            return np.asarray(y, dtype=np.float64)
        check_classification_targets(y)
        present = np.unique(y)
        if first and not (incremental and self.warm_start and hasattr(self, "classes_")):
            self.classes_ = present if classes is None else np.unique(np.asarray(classes))
            self._multilabel = False
            self._multiclass = len(self.classes_) > 2
        elif self.warm_start and not incremental and set(present) != set(self.classes_):
            raise ValueError(
                "warm_start can only be used where `y` has the same classes as in the previous call to fit. "
                f"Previously got {self.classes_}, `y` has {present}"
            )
        unseen = np.setdiff1d(present, self.classes_)
        if unseen.size:
            raise ValueError(
                f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. 'y' has {present}."
            )
        codes = np.searchsorted(self.classes_, y)
        if self._multiclass:
            return np.eye(len(self.classes_))[codes]
        return (codes == 1).astype(np.float64)[:, None] if len(self.classes_) == 2 else np.zeros((len(y), 1))

    def _loss(self, reduction: str) -> losses.Loss:
        if self._multiclass:
            return losses.CrossEntropyLoss(reduction=reduction)
        return losses.BCEWithLogitsLoss(reduction=reduction)

    def _score_function(self, y: Any, y_pred: Any, sample_weight: Any) -> float:
        return float(accuracy_score(y, y_pred, sample_weight=sample_weight))

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None) -> Any:
        """One pass over ``(X, y)``; the first call needs ``classes`` (every label), later calls the same ones."""
        if not hasattr(self, "model_"):
            self._validate_params()
            if classes is None and type_of_target(y) != "multilabel-indicator":
                raise ValueError("classes must be passed on the first call to partial_fit.")
        elif classes is not None and not np.array_equal(np.unique(np.asarray(classes)), self.classes_):
            raise ValueError(
                f"`classes={np.unique(np.asarray(classes))!r}` is not the same as on last call to partial_fit, "
                f"was: {self.classes_!r}"
            )
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities ``(n_samples, n_classes)`` (``(n_samples, n_labels)`` for multilabel)."""
        z = self._logits(X)
        ops = ops_of(z)
        if self._multiclass:
            p = Softmax()(z)
        else:
            p = sigmoid(ops, z)
            if not self._multilabel:
                p = ops.xp.concat([1.0 - p, p], axis=1) if len(self.classes_) == 2 else ops.xp.ones_like(p)
        return self._out(p, X)

    def predict_log_proba(self, X: Any) -> Any:
        """``log(predict_proba(X))``."""
        p = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(p) if isinstance(p, np.ndarray) else ops_of(p).xp.log(p)

    def _decode(self, z: np.ndarray) -> np.ndarray:
        if self._multilabel:
            return (z > 0).astype(int)
        if self._multiclass:
            return self.classes_[np.argmax(z, axis=1)]
        if len(self.classes_) == 2:
            return self.classes_[(z[:, 0] > 0).astype(int)]
        return self.classes_[np.zeros(len(z), dtype=int)]

    def predict(self, X: Any) -> Any:
        """The most probable class of each sample (a 0/1 indicator row per sample for multilabel)."""
        labels = self._decode(np.asarray(to_host(self._logits(X))))
        device_input = _device_array(X)
        if device_input is None or labels.dtype.kind not in "iufb":
            return labels
        return asarray(labels, like=device_input)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor: scikit-learn's ``MLPRegressor``, trained by nu_xp.

    Identity output with ``loss="squared_error"``; ``loss="poisson"`` uses an
    exponential output (the predictions are ``exp(z)``) and the Poisson
    deviance. ``y`` of shape ``(n,)`` or ``(n, n_outputs)``. See
    [`nu_xp.sklearn`][nu_xp.sklearn] for the arguments and the loss.

    Parameters
    ----------
    hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate, learning_rate_init, power_t :
        As for [`MLPClassifier`][nu_xp.sklearn.MLPClassifier].
    max_iter, shuffle, random_state, tol, verbose, warm_start, momentum, nesterovs_momentum, early_stopping :
        As for [`MLPClassifier`][nu_xp.sklearn.MLPClassifier].
    validation_fraction, beta_1, beta_2, epsilon, n_iter_no_change, max_fun, backend, device, dtype :
        As for [`MLPClassifier`][nu_xp.sklearn.MLPClassifier].
    loss : {"squared_error", "poisson"}, default "squared_error"
        The loss (and output: identity, or ``exp`` for "poisson").

    Examples
    --------
    >>> import numpy as np
    >>> from nu_xp.sklearn import MLPRegressor
    >>> X = np.linspace(-1, 1, 200)[:, None]
    >>> reg = MLPRegressor(hidden_layer_sizes=(32,), max_iter=1000, random_state=0).fit(X, 3 * X[:, 0] + 1)
    >>> reg.score(X, 3 * X[:, 0] + 1) > 0.95
    True
    """

    _parameter_constraints: ClassVar[dict] = {
        **_BaseMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    def __init__(
        self,
        loss: str = "squared_error",
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool | int = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int | float = 10,
        max_fun: int = 15000,
        backend: Any = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        self.loss = loss
        super().__init__(
            hidden_layer_sizes,
            activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
            backend=backend,
            device=device,
            dtype=dtype,
        )

    def _out_activation(self) -> str:
        return "exp" if self.loss == "poisson" else "identity"

    def _targets(self, y: np.ndarray, *, first: bool, incremental: bool, classes: Any = None) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if first or not hasattr(self, "_y_1d"):
            self._y_1d = y.ndim == 1
        return y[:, None] if y.ndim == 1 else y

    def _loss(self, reduction: str) -> losses.Loss:
        # scikit-learn: L = Σ (z - y)² / (2 n · n_outputs) and dL/dz = (z - y) / n (its delta ignores n_outputs)
        if self.loss == "poisson":
            return _PoissonDeviance(reduction)
        return _HalfSquaredError(self.n_outputs_, reduction)

    def _score_function(self, y: Any, y_pred: Any, sample_weight: Any) -> float:
        return float(r2_score(y, y_pred, sample_weight=sample_weight))

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
        """One pass over ``(X, y)``."""
        if not hasattr(self, "model_"):
            self._validate_params()
        return self._fit(X, y, sample_weight, incremental=True)

    def _decode(self, z: np.ndarray) -> np.ndarray:
        z = np.exp(z) if self.loss == "poisson" else z
        return z.reshape(-1) if self._y_1d else z

    def predict(self, X: Any) -> Any:
        """The predicted values, ``(n_samples,)`` or ``(n_samples, n_outputs)``."""
        z = self._logits(X)
        xp = ops_of(z).xp
        if self.loss == "poisson":
            z = xp.exp(z)
        if self._y_1d:
            z = xp.reshape(z, (-1,))
        return self._out(z, X)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


class _PerSample(losses.Loss):
    """scikit-learn's batch loss without sample weights: ``inner`` (``reduction="sum"``) over the batch's ``n``.

    ``L = Σ ℓ / n`` and ``dL/dz = (dΣℓ/dz) / n``, whatever the number of outputs per sample.
    """

    def __init__(self, inner: losses.Loss) -> None:
        super().__init__()
        self.inner = inner
        self.weight_sum = 1.0

    def forward(self, pred: Any, target: Any) -> Any:
        self.weight_sum = n = pred.shape[0]
        self.save_for_backward(n)
        return self.inner.forward(pred, target) / n

    def backward(self, grad: Any = None) -> Any:
        (n,) = self.saved_tensors()
        return self.inner.backward(1.0 / n)


class _Weighted(losses.Loss):
    """scikit-learn's batch loss: ``L = Σ_i s_i ℓ_i / Σ_i s_i``, with ``ℓ_i`` the per-element losses of
    ``inner`` (``reduction="none"``) summed over a sample's outputs and ``s_i`` its weight (1 by default).

    The weights come as the targets' last column (so they are shuffled and
    batched with them). ``dL/dz = s_i (dℓ_i/dz) / Σ s`` (``(p - y) s_i / Σ s``
    for scikit-learn's losses). ``weight_sum`` is the latest batch's ``Σ s``,
    by which the L2 penalty divides too.
    """

    def __init__(self, inner: losses.Loss) -> None:
        super().__init__()
        self.inner = inner
        self.weight_sum = 1.0

    def forward(self, pred: Any, target: Any) -> Any:
        ops = ops_of(pred)
        weights = target[:, -1]
        values = self.inner.forward(pred, target[:, :-1])  # ℓ per element: (n,) or (n, n_outputs)
        shape = tuple(values.shape)
        if values.ndim > 1:
            values = ops.sum(values, axis=1)
        self.weight_sum = total = float(ops.sum(weights))
        self.save_for_backward(weights, total, shape)
        return ops.sum(values * weights) / total

    def backward(self, grad: Any = None) -> Any:
        weights, total, shape = self.saved_tensors()
        xp = ops_of(weights).xp
        share = weights / total
        if len(shape) > 1:
            share = xp.broadcast_to(xp.reshape(share, (-1, 1)), shape)
        return self.inner.backward(share)


class _L2Penalty(StepHooks):
    """scikit-learn's ``alpha``: ``L += α/2 · Σ ||W||² / Σs`` and ``dL/dW += α W / Σs`` (weights, not biases).

    ``Σs`` is the batch's summed sample weight (its number of samples without weights).
    """

    def __init__(self, weights: list[Any], alpha: float, loss: _Weighted) -> None:
        self.weights, self.alpha, self.loss = weights, alpha, loss

    def after_backward(self, batch_loss: Any, rows: int, batch_rows: int) -> Any:
        if not self.alpha:
            return batch_loss
        total = self.loss.weight_sum
        penalty = 0.0
        for w in self.weights:
            penalty += float(ops_of(w.data).sum(w.data * w.data))
            w.grad = w.grad + (self.alpha / total) * w.data
        return batch_loss + 0.5 * self.alpha * penalty / total * rows


class _Schedule:
    """scikit-learn's learning-rate schedule around a nu_xp optimizer (scikit-learn's ``_optimizer``).

    ``"constant"``; ``"invscaling"``: ``η = η₀ / (t + 1)^power_t`` after each
    epoch, ``t`` the samples seen; ``"adaptive"``: ``η /= 5`` each time the
    stopping rule fires, until ``η ≤ 1e-6``. Only ``solver="sgd"`` schedules
    (Adam keeps ``learning_rate_init``, as scikit-learn). ``learning_rate`` is
    the rate in use.
    """

    def __init__(self, est: _BaseMLP) -> None:
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

    def iteration_ends(self, time_step: int) -> None:
        """After each epoch: ``"invscaling"`` lowers the rate."""
        if self.kind == "invscaling":
            self.optimizer.lr = self.initial / (time_step + 1) ** self.power_t

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
        self.optimizer.lr = self.learning_rate / 5.0
        if verbose:
            print(message + f" Setting learning rate to {self.learning_rate:f}")
        return False


class _PoissonDeviance(losses.Loss):
    """scikit-learn's Poisson loss on the log-scale output ``z`` (prediction ``exp(z)``), per element:

    ``ℓ = y log y - y z - y + exp(z)`` (``y log y = 0`` at ``y = 0``);  ``dℓ/dz = exp(z) - y``.
    """

    def forward(self, pred: Any, target: Any) -> Any:
        ops, z, y = self._prepare(pred, target)
        xp = ops.xp
        mu = xp.exp(z)
        ylogy = xp.where(y > 0.0, y * xp.log(xp.where(y > 0.0, y, xp.ones_like(y))), xp.zeros_like(y))
        return self._reduce(ops, ylogy - y * z - y + mu, math.prod(pred.shape), mu - y)

    def _grad(self, kept: Any, scale: Any) -> Any:
        return kept * scale


def _sample_weights(sample_weight: Any, n: int) -> np.ndarray:
    """Per-sample weights as float64 ``(n,)``: ones when None; refused unless finite and non-negative."""
    if sample_weight is None:
        return np.ones(n)
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.ndim == 0:
        w = np.full(n, float(w))
    if w.shape != (n,):
        raise ValueError(f"sample_weight.shape == {w.shape}, expected {(n,)}!")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
        raise ValueError("sample_weight must be finite, non-negative and not all zero")
    return w


def _pack(coefs: list[Any], intercepts: list[Any]) -> np.ndarray:
    """Every ``coefs_`` entry raveled, then every ``intercepts_`` entry: scikit-learn's flat parameter vector."""
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in (*coefs, *intercepts)])


class _HalfSquaredError(losses.MSELoss):
    """Per element ``(z - y)² / (2 n_outputs)`` with gradient ``z - y`` (scikit-learn's squared loss and delta)."""

    def __init__(self, n_outputs: int, reduction: str = "sum") -> None:
        super().__init__(reduction=reduction)
        self.n_outputs = n_outputs

    def forward(self, pred: Any, target: Any) -> Any:
        return super().forward(pred, target) / (2.0 * self.n_outputs)

    def _grad(self, kept: Any, scale: Any) -> Any:
        return kept * scale
