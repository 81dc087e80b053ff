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
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from . import losses, optim
from .backends import asarray, backend_of, dtype_name, get_backend, ops_of, to_host
from .functional import sigmoid
from .layers import Identity, Linear, ReLU, Sequential, Sigmoid, Softmax, Tanh
from .training.loop import StepHooks, minibatches, run_epoch

__all__ = ["MLPClassifier", "MLPRegressor"]

_ACTIVATIONS = {"identity": Identity, "logistic": Sigmoid, "tanh": Tanh, "relu": ReLU}


class _BaseMLP(BaseEstimator):
    """What both estimators share: the network, the training loop, the stopping rule."""

    _parameter_constraints: ClassVar[dict] = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(_ACTIVATIONS))],
        "solver": [StrOptions({"adam", "sgd"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "backend": [None, str, object],
        "device": [None, str, object],
        "dtype": [None, str, object],
    }

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate_init: float = 0.001,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int = 10,
        backend: Any = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.backend = backend
        self.device = device
        self.dtype = dtype

    # ------------------------------------------------------------------ what subclasses say
    def _targets(self, y: np.ndarray, *, first: bool, classes: Any = None) -> np.ndarray:
        """The training targets as floats ``(n, n_outputs)`` (labels encoded for a classifier)."""
        raise NotImplementedError

    def _loss(self) -> Any:
        """The nu_xp loss with ``reduction="sum"`` (the batch loss is its value over the batch's ``n`` samples)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ building
    def _hidden(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, Integral) else list(sizes)
        if any(not isinstance(s, Integral) or s < 1 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must hold positive integers, got {self.hidden_layer_sizes!r}")
        return [int(s) for s in sizes]

    def _place(self, X: Any) -> Any:
        """The Backend: the user's choice, else the input's own kind of array (array API dispatch), else numpy."""
        dtype = self.dtype if self.dtype is not None else dtype_name(X.dtype)
        if dtype not in ("float32", "float64"):
            dtype = "float64"
        if self.backend is None and self.device is None and not isinstance(X, np.ndarray):
            return get_backend(backend_of(X), dtype=dtype)
        return get_backend(self.backend or "numpy", self.device, dtype)

    def _build(self, n_in: int, n_out: int, rng: np.random.RandomState, place: Any) -> Sequential:
        """scikit-learn's Glorot-uniform weights and biases, in a nu_xp ``Sequential`` on ``place``."""
        sizes = [n_in, *self._hidden(), n_out]
        factor = 2.0 if self.activation == "logistic" else 6.0
        layers: list[Any] = []
        for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
            linear = Linear(a, b, init="zeros", backend=place)
            bound = math.sqrt(factor / (a + b))
            w = rng.uniform(-bound, bound, (a, b))
            bias = rng.uniform(-bound, bound, b)
            linear.weight.data = place.from_host(np.ascontiguousarray(w.T).astype(place.dtype_name))
            linear.bias.data = place.from_host(bias.astype(place.dtype_name))  # type: ignore[union-attr]
            layers.append(linear)
            if i < len(sizes) - 2:
                layers.append(_ACTIVATIONS[self.activation]())
        return Sequential(*layers)

    def _optimizer(self, model: Sequential) -> Any:
        if self.solver == "sgd":
            return optim.SGD(
                model.parameters(),
                lr=self.learning_rate_init,
                momentum=self.momentum,
                nesterov=self.nesterovs_momentum and self.momentum > 0,
            )
        return optim.Adam(
            model.parameters(), lr=self.learning_rate_init, betas=(self.beta_1, self.beta_2), eps=self.epsilon
        )

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any) -> Any:
        """Train from scratch on ``(X, y)`` for up to ``max_iter`` epochs; returns ``self``."""
        self._validate_params()
        return self._fit(X, y, incremental=False)

    def _fit(self, X: Any, y: Any, *, incremental: bool, classes: Any = None) -> Any:
        first = not (incremental and hasattr(self, "model_"))
        X, y = validate_data(
            self,
            X,
            y,
            reset=first,
            dtype=_float_dtypes(X),
            multi_output=True,
            y_numeric=isinstance(self, RegressorMixin),
        )
        if y.ndim == 2 and y.shape[1] == 1:  # as scikit-learn's MLP: warn, and treat it as 1-D
            warnings.warn(
                "A column-vector y was passed when a 1d array was expected. Please change the shape of y to "
                "(n_samples,), for example using ravel().",
                DataConversionWarning,
                stacklevel=3,
            )
            y = y[:, 0]
        targets = self._targets(to_host(y) if not isinstance(y, np.ndarray) else y, first=first, classes=classes)
        if first:
            self._initialize(X, targets, incremental)
        place = self._place_
        x_all = asarray(X, like=place, dtype=place.dtype)
        t_all = asarray(targets, like=place, dtype=place.dtype)
        x_val = y_val = None
        if self.early_stopping and not incremental:
            x_all, x_val, t_all, y_val = self._split(X, targets, y)
        n = x_all.shape[0]
        asked: Any = self.batch_size
        batch = min(200, n) if asked == "auto" else int(np.clip(asked, 1, n))
        if asked != "auto" and not 1 <= asked <= n:
            warnings.warn(
                "Got `batch_size` less than 1 or larger than sample size. It is going to be clipped", stacklevel=3
            )
        self._fit_stochastic(x_all, t_all, x_val, y_val, batch, incremental)
        return self

    def _initialize(self, X: Any, targets: np.ndarray, incremental: bool) -> None:
        """Every fitted attribute, set in one place (scikit-learn's ``_initialize``), and the model built."""
        self._rng = check_random_state(self.random_state)
        self._place_ = self._place(X)
        self.n_outputs_ = targets.shape[1]
        self.model_ = self._build(X.shape[1], self.n_outputs_, self._rng, self._place_)
        self._opt = self._optimizer(self.model_)
        self.n_iter_, self.t_ = 0, 0
        self.loss_curve_: list[float] = []
        self.best_loss_ = np.inf
        self._no_improvement_count = 0
        self.validation_scores_: list[float] | None = [] if self.early_stopping and not incremental else None
        self.best_validation_score_: float | None = -np.inf if self.validation_scores_ is not None else None
        self.n_layers_ = len(self._hidden()) + 2
        self.out_activation_ = self._out_activation()

    def _fit_stochastic(self, x_all: Any, t_all: Any, x_val: Any, y_val: Any, batch: int, incremental: bool) -> None:
        """scikit-learn's epochs and stopping rule around nu_xp's one epoch loop (:func:`run_epoch`).

        Each epoch shuffles with ``random_state``'s generator; each step adds
        the L2 penalty's gradient before the optimizer steps (:class:`_L2Penalty`).
        """
        n = x_all.shape[0]
        loss = _PerSample(self._loss())
        hooks = _L2Penalty([layer.weight for layer in self.model_ if isinstance(layer, Linear)], self.alpha)
        for _ in range(1 if incremental else self.max_iter):
            batches = minibatches(x_all, t_all, batch, shuffle=self.shuffle, rng=self._rng)
            self.loss_ = run_epoch(self.model_, loss, self._opt, batches, stop_on_nan=False, hooks=hooks)["loss"]
            self.n_iter_ += 1
            self.t_ += n
            self.loss_curve_.append(self.loss_)
            self._update_no_improvement_count(x_val, y_val)
            if self._no_improvement_count > self.n_iter_no_change:
                break
            if not incremental and self.n_iter_ == self.max_iter:
                warnings.warn(
                    f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the optimization "
                    "hasn't converged yet.",
                    ConvergenceWarning,
                    stacklevel=4,
                )
        if x_val is not None and self._best_state is not None:
            self.model_.load_state_dict(self._best_state)

    def _split(self, X: Any, targets: np.ndarray, y: Any) -> tuple:
        stratify = y if isinstance(self, ClassifierMixin) and self.n_outputs_ == 1 else None
        x_tr, x_val, t_tr, _t_val, _y_tr, y_val = train_test_split(
            to_host(X) if not isinstance(X, np.ndarray) else X,
            targets,
            to_host(y) if not isinstance(y, np.ndarray) else y,
            random_state=self._rng,
            test_size=self.validation_fraction,
            stratify=stratify,
        )
        if x_val.shape[0] < 2:
            raise ValueError(
                f"The validation set is too small ({x_val.shape[0]} samples): increase validation_fraction "
                f"({self.validation_fraction}) or pass more data"
            )
        place = self._place_
        self._best_state: dict[str, np.ndarray] | None = None
        return (
            asarray(x_tr, like=place, dtype=place.dtype),
            x_val,
            asarray(t_tr, like=place, dtype=place.dtype),
            y_val,
        )

    def _update_no_improvement_count(self, x_val: Any, y_val: Any) -> None:
        """scikit-learn's rule: count epochs without an improvement of ``tol`` in the loss or validation score."""
        if x_val is not None:
            score = self._score_host(x_val, y_val)
            self.validation_scores_.append(score)  # type: ignore[union-attr]
            if score < self.best_validation_score_ + self.tol:  # type: ignore[operator]
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:  # type: ignore[operator]
                self.best_validation_score_ = score
                self._best_state = self.model_.state_dict()
            return
        if self.loss_curve_[-1] > self.best_loss_ - self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        if self.loss_curve_[-1] < self.best_loss_:
            self.best_loss_ = self.loss_curve_[-1]

    def _score_host(self, X: np.ndarray, y: np.ndarray) -> float:
        return float(self.score(X, y))

    # ------------------------------------------------------------------ predicting
    def _logits(self, X: Any) -> Any:
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=_float_dtypes(X))
        place = self._place_
        return self.model_.predict(asarray(X, like=place, dtype=place.dtype))

    def _out(self, values: Any, like: Any) -> Any:
        """``values`` as an array of the input's kind: a torch tensor or CuPy array stays one, the rest is numpy."""
        device_input = _device_array(like)
        return to_host(values) if device_input is None else asarray(values, like=device_input)

    @property
    def coefs_(self) -> list[np.ndarray]:
        """Weight matrices in scikit-learn's layout ``(n_in, n_out)``, host copies."""
        check_is_fitted(self, "model_")
        return [np.array(to_host(layer.weight.data)).T.copy() for layer in self.model_ if isinstance(layer, Linear)]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """Bias vectors ``(n_out,)``, host copies."""
        check_is_fitted(self, "model_")
        return [
            np.array(to_host(layer.bias.data))
            for layer in self.model_
            if isinstance(layer, Linear) and layer.bias is not None
        ]

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")


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
    ``classes=``. See :mod:`nu_xp.sklearn` for the arguments and the loss.

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

    def _targets(self, y: np.ndarray, *, first: bool, classes: Any = None) -> np.ndarray:
        kind = type_of_target(y)
        if kind == "multilabel-indicator":
            if first:
                self.classes_ = np.arange(y.shape[1])
                self._multilabel, self._multiclass = True, False
            elif y.shape[1] != len(self.classes_):
                raise ValueError(f"y has {y.shape[1]} labels, but this classifier was fitted with {len(self.classes_)}")
            return np.asarray(y, dtype=np.float64)
        check_classification_targets(y)
        if first:
            self.classes_ = np.unique(y) if classes is None else np.unique(np.asarray(classes))
            self._multilabel = False
            self._multiclass = len(self.classes_) > 2
        unseen = np.setdiff1d(np.unique(y), self.classes_)
        if unseen.size:
            raise ValueError(f"y holds labels {unseen.tolist()} that are not in classes {self.classes_.tolist()}")
        codes = np.searchsorted(self.classes_, y)
        if self._multiclass:
            return np.eye(len(self.classes_))[codes]
        return (codes == 1).astype(np.float64)[:, None] if len(self.classes_) == 2 else np.zeros((len(y), 1))

    def _loss(self) -> Any:
        if self._multiclass:
            return losses.CrossEntropyLoss(reduction="sum")
        return losses.BCEWithLogitsLoss(reduction="sum")

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> Any:
        """One pass over ``(X, y)``; the first call needs ``classes`` (every label, as scikit-learn's)."""
        if not hasattr(self, "model_"):
            self._validate_params()
            if classes is None and type_of_target(y) != "multilabel-indicator":
                raise ValueError("classes must be passed on the first call to partial_fit.")
        return self._fit(X, y, incremental=True, classes=classes)

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

    def predict(self, X: Any) -> Any:
        """The most probable class of each sample (a 0/1 indicator row per sample for multilabel)."""
        z = self._logits(X)
        host = np.asarray(to_host(z))
        if self._multilabel:
            labels = (host > 0).astype(int)
        elif self._multiclass:
            labels = self.classes_[np.argmax(host, axis=1)]
        else:
            labels = (
                self.classes_[(host[:, 0] > 0).astype(int)]
                if len(self.classes_) == 2
                else self.classes_[np.zeros(len(host), dtype=int)]
            )
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

    Identity output; ``y`` of shape ``(n,)`` or ``(n, n_outputs)``. See
    :mod:`nu_xp.sklearn` for the arguments and the loss.

    Examples
    --------
    >>> import numpy as np
    >>> from nu_xp.sklearn import MLPRegressor
    >>> X = np.linspace(-1, 1, 200)[:, None]
    >>> reg = MLPRegressor(hidden_layer_sizes=(32,), max_iter=1000, random_state=0).fit(X, 3 * X[:, 0] + 1)
    >>> reg.score(X, 3 * X[:, 0] + 1) > 0.95
    True
    """

    def _out_activation(self) -> str:
        return "identity"

    def _targets(self, y: np.ndarray, *, first: bool, classes: Any = None) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if first:
            self._y_1d = y.ndim == 1
        return y[:, None] if y.ndim == 1 else y

    def _loss(self) -> Any:
        # scikit-learn: L = Σ (z - y)² / (2 n · n_outputs) and dL/dz = (z - y) / n (its delta ignores n_outputs)
        return _HalfSquaredError(self.n_outputs_)

    def partial_fit(self, X: Any, y: Any) -> Any:
        """One pass over ``(X, y)``."""
        if not hasattr(self, "model_"):
            self._validate_params()
        return self._fit(X, y, incremental=True)

    def predict(self, X: Any) -> Any:
        """The predicted values, ``(n_samples,)`` or ``(n_samples, n_outputs)``."""
        z = self._logits(X)
        if self._y_1d:
            z = ops_of(z).xp.reshape(z, (-1,))
        return self._out(z, X)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


class _PerSample(losses.Loss):
    """scikit-learn's batch loss: ``inner`` (``reduction="sum"``) divided by the batch's number of samples ``n``.

    ``L = Σ ℓ / n`` and ``dL/dz = (dΣℓ/dz) / n``, whatever the number of outputs per sample.
    """

    def __init__(self, inner: losses.Loss) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, pred: Any, target: Any) -> Any:
        self.save_for_backward(pred.shape[0])
        return self.inner.forward(pred, target) / pred.shape[0]

    def backward(self, grad: Any = None) -> Any:
        (n,) = self.saved_tensors()
        return self.inner.backward(1.0 / n)


class _L2Penalty(StepHooks):
    """scikit-learn's ``alpha``: ``L += α/2 · Σ ||W||² / n`` and ``dL/dW += α W / n`` (weights only, not biases)."""

    def __init__(self, weights: list[Any], alpha: float) -> None:
        self.weights, self.alpha = weights, alpha

    def after_backward(self, batch_loss: Any, rows: int, batch_rows: int) -> Any:
        if not self.alpha:
            return batch_loss
        penalty = 0.0
        for w in self.weights:
            penalty += float(ops_of(w.data).sum(w.data * w.data))
            w.grad = w.grad + (self.alpha / rows) * w.data
        return batch_loss + 0.5 * self.alpha * penalty


class _HalfSquaredError(losses.MSELoss):
    """``Σ (z - y)² / (2 n_outputs)`` with gradient ``z - y`` (scikit-learn's squared loss and delta)."""

    def __init__(self, n_outputs: int) -> None:
        super().__init__(reduction="sum")
        self.n_outputs = n_outputs

    def forward(self, pred: Any, target: Any) -> Any:
        return super().forward(pred, target) / (2.0 * self.n_outputs)

    def _grad(self, scale: Any) -> Any:
        return self._cache * scale
