"""nu_xp.sklearn: scikit-learn's own estimator checks, pipelines, targets of every kind, and sklearn's scores."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import nu_xp  # noqa: E402

#: short fits that stop at max_iter on purpose: their ConvergenceWarning is expected (scikit-learn's own tests
#: silence it the same way); a test about the warning itself still sees it through pytest.warns
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
from nu_xp.sklearn import MLPClassifier, MLPRegressor  # noqa: E402


@parametrize_with_checks([MLPClassifier(max_iter=200, random_state=0), MLPRegressor(max_iter=200, random_state=0)])
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sklearn.exceptions.ConvergenceWarning)
        check(estimator)


def small(kind):
    X, y = (load_iris if kind == "c" else load_diabetes)(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.mark.parametrize(
    ("loader", "cls", "max_iter"),
    [
        (load_digits, "MLPClassifier", 200),
        (load_iris, "MLPClassifier", 300),
        (load_breast_cancer, "MLPClassifier", 200),
        (load_diabetes, "MLPRegressor", 500),
    ],
)
def test_scores_equal_scikit_learns(loader, cls, max_iter):
    from sklearn import neural_network

    X, y = loader(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    Xtr, Xte, ytr, yte = train_test_split(X, y, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sklearn.exceptions.ConvergenceWarning)
        ours = getattr(nu_xp.sklearn, cls)(random_state=0, max_iter=max_iter).fit(Xtr, ytr)
        theirs = getattr(neural_network, cls)(random_state=0, max_iter=max_iter).fit(Xtr, ytr)
    assert ours.score(Xte, yte) == pytest.approx(theirs.score(Xte, yte), abs=0.03)
    assert abs(ours.n_iter_ - theirs.n_iter_) <= max(5, theirs.n_iter_ // 5)


def test_pipeline_and_grid_search():
    X, y = small("c")
    pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=300, random_state=0))
    grid = GridSearchCV(
        pipe, {"mlpclassifier__hidden_layer_sizes": [(8,), (16,)], "mlpclassifier__alpha": [1e-4, 1e-2]}, cv=3
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sklearn.exceptions.ConvergenceWarning)
        grid.fit(X, y)
    assert grid.best_score_ > 0.85 and grid.best_estimator_.predict(X).shape == (150,)


def test_string_and_non_contiguous_labels():
    X, y = small("c")
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0).fit(X, names)
    assert list(clf.classes_) == ["setosa", "versicolor", "virginica"] and clf.predict(X).dtype.kind == "U"
    plain = MLPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0).fit(X, y)
    sparse_codes = np.array([3, 10, 42])[y]
    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0).fit(X, sparse_codes)
    assert set(clf.predict(X).tolist()) <= {3, 10, 42}
    np.testing.assert_array_equal(clf.predict(X), np.array([3, 10, 42])[plain.predict(X)])  # labels only rename


def test_binary_has_one_output_unit_and_sklearn_layout():
    X, y = small("c")
    keep = y < 2
    clf = MLPClassifier(hidden_layer_sizes=(7, 5), max_iter=100, random_state=0).fit(X[keep], y[keep])
    assert [c.shape for c in clf.coefs_] == [(4, 7), (7, 5), (5, 1)]
    assert [b.shape for b in clf.intercepts_] == [(7,), (5,), (1,)]
    proba = clf.predict_proba(X[keep])
    assert proba.shape == (keep.sum(), 2) and np.allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(clf.coefs_[0], nu_xp.to_host(clf.model_[0].weight.data).T)


def test_multilabel_and_multioutput():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    Y = np.stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] < 0.5], axis=1).astype(int)
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=400, random_state=0).fit(X, Y)
    assert clf.predict(X).shape == (200, 3) and clf.predict_proba(X).shape == (200, 3)
    assert clf.score(X, Y) > 0.8
    reg = MLPRegressor(hidden_layer_sizes=(32,), max_iter=400, random_state=0).fit(X, np.stack([X[:, 0], -X[:, 1]], 1))
    assert reg.predict(X).shape == (200, 2) and reg.score(X, np.stack([X[:, 0], -X[:, 1]], 1)) > 0.9


def test_partial_fit_needs_classes_and_continues():
    from sklearn import neural_network

    X, y = small("c")
    clf = MLPClassifier(hidden_layer_sizes=(16,), random_state=0)
    theirs = neural_network.MLPClassifier(hidden_layer_sizes=(16,), random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    for _ in range(60):
        clf.partial_fit(X, y, classes=[0, 1, 2])
        theirs.partial_fit(X, y, classes=[0, 1, 2])
    assert clf.n_iter_ == theirs.n_iter_ and clf.score(X, y) == pytest.approx(theirs.score(X, y), abs=0.03)
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    with pytest.raises(ValueError, match="classes not in"):
        clf.partial_fit(X, np.full(150, 7))


def test_early_stopping_and_alpha():
    from sklearn import neural_network

    X, y = load_digits(return_X_y=True)
    settings = {"early_stopping": True, "max_iter": 500, "random_state": 0, "n_iter_no_change": 5}
    es = MLPClassifier(**settings).fit(X / 16, y)
    theirs = neural_network.MLPClassifier(**settings).fit(X / 16, y)
    assert es.n_iter_ < 500 and len(es.validation_scores_) == es.n_iter_
    assert es.best_validation_score_ == pytest.approx(theirs.best_validation_score_, abs=0.03)
    assert abs(es.n_iter_ - theirs.n_iter_) <= 10
    assert es.score(X / 16, y) == pytest.approx(max(es.validation_scores_), abs=0.1)  # the best weights were kept
    X, y = small("c")
    strong = MLPClassifier(alpha=10.0, max_iter=200, random_state=0).fit(X, y)
    weak = MLPClassifier(alpha=0.0, max_iter=200, random_state=0).fit(X, y)
    assert sum(np.sum(c**2) for c in strong.coefs_) < 0.5 * sum(np.sum(c**2) for c in weak.coefs_)


def test_other_backends_and_array_api_dispatch(torch):
    X, y = small("c")
    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=200, random_state=0, backend="torch").fit(X, y)
    assert clf.model_.backend == "torch" and isinstance(clf.predict(X), np.ndarray)
    ref = MLPClassifier(hidden_layer_sizes=(16,), max_iter=200, random_state=0).fit(X, y)
    np.testing.assert_allclose(clf.predict_proba(X), ref.predict_proba(X), atol=1e-6)
    # array API dispatch needs SCIPY_ARRAY_API=1 before scipy is imported: a fresh interpreter
    script = """
import warnings; warnings.simplefilter("ignore")
import sklearn, torch
from sklearn.datasets import load_iris
from nu_xp.sklearn import MLPClassifier, MLPRegressor
X, y = load_iris(return_X_y=True)
with sklearn.config_context(array_api_dispatch=True):
    Xt, yt = torch.tensor(X), torch.tensor(y)
    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=100, random_state=0).fit(Xt, yt)
    assert clf.model_.backend == "torch", clf.model_.backend
    assert isinstance(clf.predict_proba(Xt), torch.Tensor) and isinstance(clf.predict(Xt), torch.Tensor)
    reg = MLPRegressor(hidden_layer_sizes=(8,), max_iter=50, random_state=0).fit(Xt, Xt[:, 0] * 2)
    assert isinstance(reg.predict(Xt), torch.Tensor)
print("dispatch ok")
"""
    import os
    import subprocess
    import sys

    env = {**os.environ, "SCIPY_ARRAY_API": "1"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "dispatch ok" in out.stdout, out.stderr


def test_fit_time_is_recorded_beside_sklearn():
    """Not a timing assert: both fit, and nu_xp does the same number of epochs (speed is in benchmarks/)."""
    from sklearn import neural_network

    X, y = load_digits(return_X_y=True)
    ours = MLPClassifier(random_state=0, max_iter=30).fit(X / 16, y)
    theirs = neural_network.MLPClassifier(random_state=0, max_iter=30).fit(X / 16, y)
    assert ours.n_iter_ == theirs.n_iter_ == 30 and len(ours.loss_curve_) == 30


# ---------------------------------------------------------------------------- the drop-in round: lbfgs, schedules…


@pytest.mark.parametrize("kind", ["c", "r"])
def test_lbfgs_matches_scikit_learn_on_every_backend(backend, kind):
    """The same L-BFGS-B on the same loss and gradient: scores within a point of scikit-learn's."""
    from sklearn import neural_network

    X, y = small(kind)
    cls = MLPClassifier if kind == "c" else MLPRegressor
    ours = cls(hidden_layer_sizes=(20,), solver="lbfgs", max_iter=300, random_state=0, backend=backend, dtype="float64")
    theirs = getattr(neural_network, cls.__name__)(
        hidden_layer_sizes=(20,), solver="lbfgs", max_iter=300, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sklearn.exceptions.ConvergenceWarning)
        ours.fit(X, y)
        theirs.fit(X, y)
    assert ours.score(X, y) == pytest.approx(theirs.score(X, y), abs=0.02)
    assert ours.n_iter_ <= 300 and np.isfinite(ours.loss_)


def test_lbfgs_gradient_is_scikit_learns():
    """``_loss_grad_lbfgs`` agrees with scikit-learn's own (same packing, L2 term included)."""
    from sklearn import neural_network
    from sklearn.preprocessing import LabelBinarizer

    rng = np.random.RandomState(0)
    X, y = rng.rand(6, 4), np.array([0, 1, 2, 0, 1, 2])
    Y = LabelBinarizer().fit_transform(y)
    kw = {"hidden_layer_sizes": 5, "solver": "lbfgs", "alpha": 0.3, "max_iter": 1, "random_state": 1}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sklearn.exceptions.ConvergenceWarning)
        ours = MLPClassifier(dtype="float64", **kw).fit(X, y)
        theirs = neural_network.MLPClassifier(**kw).fit(X, y)
    theta = np.hstack([a.ravel() for a in theirs.coefs_ + theirs.intercepts_])
    layers = [X.shape[1], 5, 3]
    acts = [X] + [np.empty((6, n)) for n in layers[1:]]
    deltas = [np.empty((6, n)) for n in layers[1:]]
    cg = [np.empty((a, b)) for a, b in zip(layers, layers[1:])]
    ig = [np.empty(b) for b in layers[1:]]
    value, grad = ours._loss_grad_lbfgs(theta, X, Y, None)
    ref_value, ref_grad = theirs._loss_grad_lbfgs(theta, X, Y, None, acts, deltas, cg, ig)
    assert value == pytest.approx(ref_value, rel=1e-7)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-6, atol=1e-9)


def test_sample_weight_two_equals_the_sample_twice():
    X, y = small("r")
    X, y = X[:60], y[:60]
    kw = {"hidden_layer_sizes": (8,), "solver": "lbfgs", "max_iter": 50, "random_state": 0, "dtype": "float64"}
    w = np.ones(60)
    w[:10] = 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sklearn.exceptions.ConvergenceWarning)
        weighted = MLPRegressor(**kw).fit(X, y, sample_weight=w)
        doubled = MLPRegressor(**kw).fit(np.concatenate([X, X[:10]]), np.concatenate([y, y[:10]]))
    np.testing.assert_allclose(weighted.predict(X), doubled.predict(X), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="sample_weight"):
        MLPRegressor(**kw).fit(X, y, sample_weight=np.ones(3))


def test_schedules_warm_start_verbose_and_estimator_errors(capsys):
    X, y = small("c")
    sgd = MLPClassifier(solver="sgd", learning_rate="invscaling", power_t=0.5, max_iter=2, warm_start=True, verbose=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sklearn.exceptions.ConvergenceWarning)
        sgd.fit(X, y)
        sgd.fit(X, y)
    assert sgd._optimizer.learning_rate == pytest.approx(sgd.learning_rate_init / (4 * 150 + 1) ** 0.5)
    assert sgd.t_ == 4 * 150 and sgd.n_iter_ == 2 and "Iteration 2, loss = " in capsys.readouterr().out
    adaptive = MLPClassifier(solver="sgd", learning_rate="adaptive", tol=0.5, max_iter=3000).fit(X[:2], y[:2])
    assert adaptive._optimizer.learning_rate < 1e-6 and adaptive.n_iter_ < 3000
    for bad in ("float16", "int32", "flaot32"):
        with pytest.raises(ValueError, match="dtype"):
            MLPClassifier(dtype=bad).fit(X, y)
    clf = MLPClassifier(solver="sgd").partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="not the same as on last call"):
        clf.partial_fit(X, y, classes=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(early_stopping=True).fit(X, y).partial_fit(X, y)
    with pytest.raises(ValueError, match="non-finite parameter weights"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        MLPRegressor(learning_rate_init=10.0, solver="sgd", max_iter=20).fit(1e150 * np.abs(X), np.abs(y) * 1e150)
    with pytest.raises(AttributeError):
        MLPClassifier(solver="lbfgs").partial_fit  # noqa: B018 - as scikit-learn: no partial_fit for lbfgs


def test_early_stopping_attributes_and_a_nan_score_as_scikit_learn():
    X, y = small("r")
    reg = MLPRegressor(early_stopping=True, max_iter=30, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sklearn.exceptions.ConvergenceWarning)
        reg.fit(X, y)
    assert reg.best_loss_ is None and len(reg.validation_scores_) == reg.n_iter_
    diverging = MLPRegressor(
        hidden_layer_sizes=100, activation="identity", solver="sgd", learning_rate_init=1, max_iter=20,
        early_stopping=True, random_state=0,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        diverging.fit(X * 100, y * 100)
    assert str(diverging.validation_scores_[-1]) == "nan"


def test_coefs_may_be_assigned_by_hand():
    X, y = np.array([[0.6, 0.8, 0.7]]), np.array([0])
    clf = MLPClassifier(solver="sgd", learning_rate_init=0.1, alpha=0.1, activation="logistic", max_iter=1,
                        hidden_layer_sizes=2, momentum=0, dtype="float64")  # fmt: skip
    clf.coefs_ = [np.array([[0.1, 0.2], [0.3, 0.1], [0.5, 0]]), np.array([[0.1], [0.2]])]
    clf.intercepts_ = [np.array([0.1, 0.1]), np.array([1.0])]
    clf.partial_fit(X, y, classes=[0, 1])
    np.testing.assert_allclose(clf.coefs_[1], [[0.04706], [0.154089]], atol=1e-3)  # scikit-learn's worked example
    fitted = clf.coefs_
    fitted[0][0, 0] = 5.0
    clf.coefs_ = fitted
    assert clf.coefs_[0][0, 0] == 5.0


def test_assigned_weights_of_the_wrong_shape_are_refused():
    """A transposed or reshaped coefs_ entry of the right size is an error, never silently reshaped."""
    X, y = small("c")
    clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sklearn.exceptions.ConvergenceWarning)
        clf.fit(X, y)
    good = clf.coefs_
    with pytest.raises(ValueError, match=r"coefs_\[0\] must have shape \(4, 5\)"):
        clf.coefs_ = [good[0].T, good[1]]
    with pytest.raises(ValueError, match=r"intercepts_\[1\] must have shape \(3,\)"):
        clf.intercepts_ = [clf.intercepts_[0], np.zeros((3, 1))]
    with pytest.raises(ValueError, match="2 entries each"):
        clf.coefs_ = good[:1]
    np.testing.assert_array_equal(clf.coefs_[0], good[0])  # nothing changed
    fresh = MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, warm_start=True)
    fresh.coefs_ = [good[0].reshape(5, 4), good[1]]
    fresh.intercepts_ = clf.intercepts_
    with pytest.raises(ValueError, match=r"coefs_\[0\] must have shape \(4, 5\)"):
        fresh.fit(X, y)


def test_negative_sample_weights_are_accepted_as_scikit_learn():
    from sklearn import neural_network

    X, y = small("r")
    w = np.ones(len(y))
    w[:5] = -0.5
    kw = {"hidden_layer_sizes": (8,), "solver": "lbfgs", "max_iter": 20, "random_state": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sklearn.exceptions.ConvergenceWarning)
        ours = MLPRegressor(dtype="float64", **kw).fit(X, y, sample_weight=w)
        theirs = neural_network.MLPRegressor(**kw).fit(X, y, sample_weight=w)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-4)


def test_warm_start_to_another_kind_of_target_is_refused():
    X, y = small("c")
    multilabel = np.eye(3)[y].astype(int)
    multilabel[:, 0] = 1 - multilabel[:, 1]
    clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sklearn.exceptions.ConvergenceWarning)
        clf.fit(X, y)
        with pytest.raises(ValueError, match="fitted on classes"):
            clf.fit(X, multilabel)
        other = MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, warm_start=True, random_state=0).fit(X, multilabel)
        with pytest.raises(ValueError, match="fitted on a multilabel indicator matrix"):
            other.fit(X, y)


def test_sgd_loss_curve_follows_scikit_learn_with_shuffling():
    """Each epoch reshuffles the previous epoch's order (scikit-learn's ``sample_idx = shuffle(sample_idx)``)."""
    from sklearn import neural_network

    X, y = small("r")
    y = (y - y.mean()) / y.std()
    kw = {"hidden_layer_sizes": (10,), "solver": "sgd", "max_iter": 6, "random_state": 0, "batch_size": 16,
          "shuffle": True, "momentum": 0.0, "learning_rate_init": 0.01}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sklearn.exceptions.ConvergenceWarning)
        ours = MLPRegressor(dtype="float64", **kw).fit(X, y)
        theirs = neural_network.MLPRegressor(**kw).fit(X, y)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)


@pytest.mark.parametrize("schedule", ["adaptive", "invscaling"])
def test_sgd_follows_scikit_learns_velocity_when_the_rate_changes(schedule):
    """scikit-learn's velocity keeps the old rates inside it; the momentum buffer is rescaled to match."""
    from sklearn import neural_network

    X, y = load_digits(return_X_y=True)
    kw = {"hidden_layer_sizes": (16,), "solver": "sgd", "learning_rate": schedule, "learning_rate_init": 0.2,
          "momentum": 0.9, "nesterovs_momentum": True, "max_iter": 60, "random_state": 0, "tol": 1e-2,
          "n_iter_no_change": 2, "shuffle": False}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sklearn.exceptions.ConvergenceWarning)
        ours = MLPClassifier(dtype="float64", **kw).fit(X / 16, y)
        theirs = neural_network.MLPClassifier(**kw).fit(X / 16, y)
    assert ours._optimizer.learning_rate == pytest.approx(theirs._optimizer.learning_rate, rel=1e-12)
    if schedule == "adaptive":
        assert theirs._optimizer.learning_rate < 0.2 / 5**3  # the rate dropped several times
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
