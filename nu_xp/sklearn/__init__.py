"""scikit-learn estimators: ``MLPClassifier`` and ``MLPRegressor`` with nu_xp underneath.

Swap ``from sklearn.neural_network import MLPClassifier`` for
``from nu_xp.sklearn import MLPClassifier``: the arguments, the training
algorithm (minibatch SGD or Adam, or L-BFGS; L2 penalty ``alpha``, the
stopping rule on ``tol``/``n_iter_no_change``, ``early_stopping`` on a
held-out ``validation_fraction``) and the fitted attributes are
scikit-learn's; the arithmetic is nu_xp's, on any backend
(``backend="torch", device="cuda"``…).

What scikit-learn computes, and so do these, per minibatch of ``n`` samples
with weights ``s_i`` (1 without ``sample_weight``)::

    classifier, 2 classes or multilabel: ℓ_i = -Σ (y log σ(z) + (1-y) log(1-σ(z)))    (one logistic output per label)
    classifier, > 2 classes:             ℓ_i = -Σ y log softmax(z)
    regressor:                           ℓ_i = Σ (z - y)² / (2 · n_outputs)
    every one:                           L = Σ s_i ℓ_i / Σ s_i  +  α/2 · Σ_layers ||W||² / Σ s_i

and the gradient reaching the logits ``z`` is ``s_i (p - y) / Σ s`` (``p = z``
for the regressor, as in scikit-learn). Weights start as scikit-learn's
(Glorot uniform, factor 6, or 2 for ``"logistic"``), drawn from ``random_state``.

``model_`` is the fitted nu_xp ``Sequential`` (it outputs logits: apply
``nu_xp.Sigmoid``/``Softmax``, or call ``predict_proba``); ``coefs_`` and
``intercepts_`` are host copies in scikit-learn's ``(n_in, n_out)`` layout.
With ``sklearn.set_config(array_api_dispatch=True)``, torch or CuPy inputs
are trained and predicted on their own device (``backend=None`` follows the
input), and ``predict``/``predict_proba`` return arrays of the input's kind.

* [`estimators`][] — ``MLPClassifier``, ``MLPRegressor`` (targets, outputs, losses, scores);
* [`base`][] — what they share (parameters, the network, ``fit`` up to the solver, ``coefs_``);
* [`solvers`][] — stochastic (SGD, Adam, their schedule and stopping rule) and L-BFGS;
* [`objective`][] — the batch loss with sample weights, and the L2 penalty.
"""

from .estimators import MLPClassifier, MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
