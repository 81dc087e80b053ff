"""What both estimators share: scikit-learn's parameters and their checks, the network, ``fit`` up to the
solver, prediction, and the fitted attributes (``coefs_``, ``intercepts_``). The solvers are in
[`solvers`][nu_xp.sklearn.solvers], the loss and penalty in [`objective`][nu_xp.sklearn.objective].
"""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import DataConversionWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from .. import losses
from ..backends import asarray, backend_of, dtype_name, get_backend, ops_of, to_host
from ..layers import Identity, Linear, ReLU, Sequential, Sigmoid, Tanh
from .objective import BatchLoss
from .solvers import fit_lbfgs, fit_stochastic, loss_and_gradient, pack, unpack

__all__ = ["ACTIVATIONS", "BaseMLP"]

ACTIVATIONS = {"identity": Identity, "logistic": Sigmoid, "tanh": Tanh, "relu": ReLU}


class BaseMLP(BaseEstimator):
    """What both estimators share: parameters, the network, scikit-learn's solvers and stopping rule.

    Parameters
    ----------
    hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate, learning_rate_init, power_t :
        As for [`MLPClassifier`][nu_xp.sklearn.MLPClassifier].
    max_iter, shuffle, random_state, tol, verbose, warm_start, momentum, nesterovs_momentum, early_stopping :
        As for [`MLPClassifier`][nu_xp.sklearn.MLPClassifier].
    validation_fraction, beta_1, beta_2, epsilon, n_iter_no_change, max_fun, backend, device, dtype :
        As for [`MLPClassifier`][nu_xp.sklearn.MLPClassifier].
    """

    _parameter_constraints: ClassVar[dict] = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
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

    def _element_loss(self, reduction: str) -> losses.Loss:
        """The nu_xp loss ``ℓ`` of one output, summed over a batch (``"sum"``) or per element (``"none"``)."""
        raise NotImplementedError

    def _loss(self) -> BatchLoss:
        """scikit-learn's batch loss ([`BatchLoss`][nu_xp.sklearn.objective.BatchLoss]) of this estimator."""
        return BatchLoss(self._element_loss)

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
        """The Backend: the user's choice, else the input's own kind of array (array API dispatch), else numpy.

        The dtype: ``dtype`` if given, else the input's float dtype, else float64; float32 when ``dtype`` is
        None and the backend has no float64 (JAX without its 64-bit mode).
        """
        if self.dtype is not None:
            dtype = dtype_name(self.dtype)
            if dtype not in ("float32", "float64"):
                raise ValueError(f"dtype must be None, 'float32' or 'float64', got {self.dtype!r}")
        else:
            dtype = dtype_name(X.dtype) if dtype_name(X.dtype) in ("float32", "float64") else "float64"
        if self.backend is None and self.device is None and not isinstance(X, np.ndarray):
            return get_backend(backend_of(X), dtype=dtype)
        try:
            return get_backend(self.backend or "numpy", self.device, dtype)
        except ValueError:
            if self.dtype is None and dtype == "float64":  # JAX without its 64-bit mode: float32, as jax.numpy does
                return get_backend(self.backend or "numpy", self.device, "float32")
            raise

    def _build(self, sizes: list[int], rng: np.random.RandomState, be: Any) -> Sequential:
        """scikit-learn's Glorot-uniform weights and biases (or coefs_ set by hand), in a ``Sequential``."""
        factor = 2.0 if self.activation == "logistic" else 6.0
        given = self.__dict__.pop("_weights_given", None)
        if given is not None:
            _check_weight_shapes(given[0], given[1], sizes)
        layers: list[Any] = []
        for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
            linear = Linear(a, b, init="zeros", backend=be)
            bound = math.sqrt(factor / (a + b))
            w = rng.uniform(-bound, bound, (a, b))
            bias = rng.uniform(-bound, bound, b)
            if given is not None:  # coefs_/intercepts_ set by hand before the first fit
                w, bias = np.asarray(given[0][i], dtype=np.float64), np.asarray(given[1][i], dtype=np.float64)
            linear.weight.data = be.from_host(np.ascontiguousarray(w.T).astype(be.dtype_name))
            linear.bias.data = be.from_host(np.asarray(bias).reshape(b).astype(be.dtype_name))  # type: ignore[union-attr]
            layers.append(linear)
            if i < len(sizes) - 2:
                layers.append(ACTIVATIONS[self.activation]())
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
        weights = None  # every sample weighs 1 (the batch loss needs no weights then)
        if sample_weight is not None:
            weights = _check_sample_weight(sample_weight, np.empty((X.shape[0], 0)), dtype=np.float64)
            weights = None if np.all(weights == 1.0) else weights
        self._random_state = check_random_state(self.random_state)
        if first:
            self._initialize(X, [X.shape[1], *hidden, targets.shape[1]], incremental)
        if self.solver == "lbfgs":
            fit_lbfgs(self, X, targets, weights)
        else:
            fit_stochastic(self, X, targets, y_host, weights, incremental)
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
        self._backend_ = self._place(X)
        self.model_ = self._build(sizes, self._random_state, self._backend_)
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

    def _loss_grad_lbfgs(
        self, packed: np.ndarray, X: Any, y: Any, sample_weight: Any = None, *unused: Any
    ) -> tuple[float, np.ndarray]:
        """scikit-learn's ``_loss_grad_lbfgs(packed, X, Y, sample_weight, ...)``: the loss and gradient of the L-BFGS
        solver ([`loss_and_gradient`][nu_xp.sklearn.solvers.loss_and_gradient]), for code that checks them
        (``Y`` already encoded, ``(n, n_outputs)``)."""
        be = self._backend_
        targets = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        x = asarray(np.asarray(X), like=be, dtype=be.dtype)
        t = asarray(targets, like=be, dtype=be.dtype)
        w = None if sample_weight is None else asarray(np.asarray(sample_weight), like=be, dtype=be.dtype)
        return loss_and_gradient(packed, self, self._loss(), x, t, w)

    def _split(self, X: Any, targets: np.ndarray, weights: np.ndarray | None, y: Any) -> tuple:
        """The held-out validation part for ``early_stopping`` (stratified for single-output classification)."""
        stratify = y if isinstance(self, ClassifierMixin) and self.n_outputs_ == 1 else None
        weights_or_ones = np.ones(X.shape[0]) if weights is None else weights
        x_tr, x_val, t_tr, _, w_tr, w_val, _, y_val = train_test_split(
            X,
            targets,
            weights_or_ones,
            y,
            random_state=self._random_state,
            test_size=self.validation_fraction,
            stratify=stratify,
        )
        if weights is None:
            w_tr = w_val = None
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
        z = np.asarray(to_host(self.model_.predict(asarray(X, like=self._backend_, dtype=self._backend_.dtype))))
        if not np.all(np.isfinite(z)):
            return float("nan")
        return float(self._score_function(y, self._decode(z), sample_weight))

    def _decode(self, z: np.ndarray) -> np.ndarray:
        """What ``predict`` returns for the model's outputs ``z`` (host arrays)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ predicting
    def _logits(self, X: Any) -> Any:
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, accept_sparse=["csr", "csc"], dtype=_float_dtypes(X))
        if sp.issparse(X):
            X = X.toarray()
        be = self._backend_
        return self.model_.predict(asarray(X, like=be, dtype=be.dtype))

    def _out(self, values: Any, like: Any) -> Any:
        """``values`` as an array of the input's kind: a torch tensor or CuPy array stays one, the rest is numpy."""
        device_input = _device_array(like)
        return to_host(values) if device_input is None else asarray(values, like=device_input)

    @property
    def coefs_(self) -> list[np.ndarray]:
        """Weight matrices in scikit-learn's layout ``(n_in, n_out)``, host copies (assignable)."""
        if "model_" not in self.__dict__ and "_weights_given" in self.__dict__:
            return self._weights_given[0]
        check_is_fitted(self, "model_")
        return [np.array(to_host(layer.weight.data)).T.copy() for layer in self.model_ if isinstance(layer, Linear)]

    @coefs_.setter
    def coefs_(self, value: list[Any]) -> None:
        self._assign(value, None)

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """Bias vectors ``(n_out,)``, host copies (assignable)."""
        if "model_" not in self.__dict__ and "_weights_given" in self.__dict__:
            return self._weights_given[1]
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
        """``coefs_``/``intercepts_`` set by hand: into the fitted model (their shapes checked), or, before the
        first fit, kept as given (``_weights_given``: the lists themselves, so that editing ``coefs_[0]`` in
        place counts, as scikit-learn's own tests do) for the first fit to start from."""
        if "model_" in self.__dict__:
            coefs = coefs if coefs is not None else self.coefs_
            intercepts = intercepts if intercepts is not None else self.intercepts_
            sizes = [c.shape[0] for c in self.coefs_] + [self.coefs_[-1].shape[1]]
            _check_weight_shapes(coefs, intercepts, sizes)
            unpack(self, pack(coefs, intercepts))
            return
        old = self.__dict__.get("_weights_given", ([], []))
        self._weights_given = (
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


def _check_weight_shapes(coefs: list[Any], intercepts: list[Any], sizes: list[int]) -> None:
    """``ValueError`` unless ``coefs[i]`` is ``(sizes[i], sizes[i+1])`` and ``intercepts[i]`` ``(sizes[i+1],)``:
    a transposed or reshaped array of the right size is refused, never silently reshaped."""
    layers = len(sizes) - 1
    if len(coefs) != layers or len(intercepts) != layers:
        raise ValueError(
            f"coefs_ and intercepts_ need {layers} entries each (one per layer), got {len(coefs)} and {len(intercepts)}"
        )
    for i in range(layers):
        want_w, want_b = (sizes[i], sizes[i + 1]), (sizes[i + 1],)
        got_w, got_b = np.shape(coefs[i]), np.shape(intercepts[i])
        if got_w != want_w:
            raise ValueError(f"coefs_[{i}] must have shape {want_w} (n_in, n_out), got {got_w}")
        if got_b != want_b:
            raise ValueError(f"intercepts_[{i}] must have shape {want_b}, got {got_b}")
