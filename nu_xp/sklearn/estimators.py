"""``MLPClassifier`` and ``MLPRegressor``: what differs between the two (targets, output, loss, score)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target

from .. import losses
from ..backends import asarray, ops_of, to_host
from ..functional import sigmoid
from ..layers import Softmax
from .base import BaseMLP, _device_array
from .objective import HalfSquaredError, PoissonDeviance

__all__ = ["MLPClassifier", "MLPRegressor"]


class MLPClassifier(ClassifierMixin, BaseMLP):
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
        ``dtype=None`` computes in the input's float dtype (float64 for other inputs), or in float32 where the
        backend has no float64 (JAX without its 64-bit mode).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from nu_xp.sklearn import MLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> X = (X - X.mean(axis=0)) / X.std(axis=0)  # standardized, as scikit-learn advises for MLPs
    >>> clf = MLPClassifier((16,), learning_rate_init=0.01, max_iter=1000, random_state=0).fit(X, y)
    >>> clf.score(X, y) > 0.95, clf.n_iter_ < clf.max_iter  # converged: no ConvergenceWarning
    (True, True)
    """

    classes_: np.ndarray
    _multilabel: bool  # y is a multilabel indicator matrix
    _multiclass: bool  # more than two classes: a softmax output

    def _out_activation(self) -> str:
        return "softmax" if self._multiclass else "logistic"

    def _targets(self, y: np.ndarray, *, first: bool, incremental: bool, classes: Any = None) -> np.ndarray:
        kind = type_of_target(y)
        fitted = not first and hasattr(self, "classes_")
        if fitted and (kind == "multilabel-indicator") != self._multilabel:  # as scikit-learn's binarizer refuses
            was = "a multilabel indicator matrix" if self._multilabel else f"classes {self.classes_}"
            raise ValueError(
                f"y is {'a multilabel indicator matrix' if kind == 'multilabel-indicator' else 'a ' + kind} target, "
                f"but this classifier was fitted on {was}; warm_start and partial_fit need the same kind of "
                "target (fit a new classifier, or set warm_start=False)"
            )
        if kind == "multilabel-indicator":
            if not fitted:
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

    def _element_loss(self, reduction: str) -> losses.Loss:
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


class MLPRegressor(RegressorMixin, BaseMLP):
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
        **BaseMLP._parameter_constraints,
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

    def _element_loss(self, reduction: str) -> losses.Loss:
        # scikit-learn: L = Σ (z - y)² / (2 n · n_outputs) and dL/dz = (z - y) / n (its delta ignores n_outputs)
        if self.loss == "poisson":
            return PoissonDeviance(reduction)
        return HalfSquaredError(self.n_outputs_, reduction)

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
