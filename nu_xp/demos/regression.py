"""Regression: a noisy 1-D function, then scikit-learn's bundled diabetes data.

Both use a 1-64-64-1 style Tanh network, MSE loss and Adam through ``nu_xp.fit``,
and report test MSE and R² beside scikit-learn's ``MLPRegressor`` (same
architecture, optimizer, epochs and split). Run it as::

    nu-xp demo regression [--backend numpy|torch|array_api_strict|cupy] [--epochs N] [--seed S] [--out DIR]

It writes ``regression.png``: the fit of the 1-D function against the data,
predicted-vs-true diabetes progression, and both loss curves.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

import nu_xp
from nu_xp.demos.common import demo_parser, output_folder


def mlp(sizes: list[int], seed: int, backend: str) -> nu_xp.Sequential:
    """Linear/Tanh stack with the given layer sizes (no activation after the last)."""
    model = nu_xp.Sequential()
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        model.append(nu_xp.Linear(a, b, seed=seed + i, init="xavier_uniform", backend=backend))
        if i < len(sizes) - 2:
            model.append(nu_xp.Tanh())
    return model


def sklearn_baseline(hidden: tuple[int, ...], x, y, x_test, y_test, epochs: int, seed: int, lr: float, batch: int):
    """MLPRegressor with the same architecture, optimizer, batch size and epochs: (mse, r2)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import mean_squared_error, r2_score
    from sklearn.neural_network import MLPRegressor

    reg = MLPRegressor(
        hidden_layer_sizes=hidden,
        activation="tanh",
        solver="adam",
        learning_rate_init=lr,
        batch_size=batch,
        max_iter=epochs,
        alpha=0.0,
        random_state=seed,
        tol=0.0,
        n_iter_no_change=epochs,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(x, y)
    pred = reg.predict(x_test)
    return mean_squared_error(y_test, pred), r2_score(y_test, pred)


def run_1d(args: argparse.Namespace) -> dict:
    """y = sin(2x) + x/2 + noise on [-3, 3]."""
    rng = np.random.default_rng(args.seed)
    x = rng.uniform(-3, 3, size=(600, 1))
    y = np.sin(2 * x) + 0.5 * x + rng.normal(0, 0.15, size=x.shape)
    x_train, y_train, x_test, y_test = x[:480], y[:480], x[480:], y[480:]
    model = mlp([1, 64, 64, 1], args.seed, args.backend)
    opt = nu_xp.optim.Adam(model.parameters(), lr=args.lr)
    history = nu_xp.fit(
        model,
        nu_xp.MSELoss(),
        opt,
        x_train,
        y_train,
        epochs=args.epochs,
        batch_size=32,
        seed=args.seed,
        validation_data=(x_test, y_test),
        metrics=["r2"],
        progress=args.progress,
    )
    test = nu_xp.training.evaluate(model, nu_xp.MSELoss(), x_test, y_test, ["mse", "r2"])
    sk = sklearn_baseline((64, 64), x_train, y_train[:, 0], x_test, y_test[:, 0], args.epochs, args.seed, args.lr, 32)
    return {
        "name": "sin(2x) + x/2",
        "model": model,
        "history": history,
        "test": test,
        "sklearn": sk,
        "data": (x_train, y_train),
    }


def run_diabetes(args: argparse.Namespace) -> dict:
    """scikit-learn's diabetes data (442 patients, 10 features), standardized, 80/20 split."""
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_diabetes(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=args.seed)
    scaler = StandardScaler().fit(x_train)
    x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
    mean, std = y_train.mean(), y_train.std()
    yt, yv = (y_train - mean) / std, (y_test - mean) / std  # standardized target
    model = mlp([10, 32, 1], args.seed, args.backend)
    opt = nu_xp.optim.Adam(model.parameters(), lr=0.003, weight_decay=1e-3)
    epochs = max(1, args.epochs // 4)
    history = nu_xp.fit(
        model,
        nu_xp.MSELoss(),
        opt,
        x_train,
        yt,
        epochs=epochs,
        batch_size=32,
        seed=args.seed,
        validation_data=(x_test, yv),
        metrics=["r2"],
        progress=args.progress,
    )
    test = nu_xp.training.evaluate(model, nu_xp.MSELoss(), x_test, yv, ["mse", "r2"])
    pred = nu_xp.to_host(model.predict(x_test))[:, 0] * std + mean
    test["mse"] = float(np.mean((pred - y_test) ** 2))  # in the original units
    sk_mse, sk_r2 = sklearn_baseline((32,), x_train, yt, x_test, yv, epochs, args.seed, 0.003, 32)
    return {
        "name": "diabetes",
        "model": model,
        "history": history,
        "test": test,
        "sklearn": (sk_mse * std**2, sk_r2),
        "data": (x_test, y_test, pred),
    }


def plot(one_d: dict, diabetes: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 7.2), layout="constrained")
    (a, b), (c, d) = fig.subplots(2, 2)
    x, y = one_d["data"]
    grid = np.linspace(-3.2, 3.2, 400)[:, None]
    a.scatter(x[:, 0], y[:, 0], s=6, alpha=0.4, label="noisy data")
    a.plot(grid[:, 0], np.sin(2 * grid[:, 0]) + 0.5 * grid[:, 0], "k--", lw=1, label="true function")
    a.plot(grid[:, 0], nu_xp.to_host(one_d["model"].predict(grid))[:, 0], "r", lw=2, label="nu_xp fit")
    a.set(title=f"1-D fit (test R² {one_d['test']['r2']:.3f})", xlabel="x", ylabel="y")
    a.legend()
    _, y_true, pred = diabetes["data"]
    b.scatter(y_true, pred, s=10)
    lims = [min(y_true.min(), pred.min()), max(y_true.max(), pred.max())]
    b.plot(lims, lims, "k--", lw=1)
    b.set(title=f"diabetes test set (R² {diabetes['test']['r2']:.3f})", xlabel="true progression", ylabel="predicted")
    for ax, run in ((c, one_d), (d, diabetes)):  # one panel per task: they train for different numbers of epochs
        h = run["history"]
        epochs = np.arange(1, len(h) + 1)
        ax.plot(epochs, h["loss"], label="train (averaged over the epoch)")
        ax.plot(epochs, h["val_loss"], label="test (after the epoch)")
        ax.set(title=f"{run['name']}: MSE per epoch", xlabel="epoch", yscale="log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = demo_parser(
        "regression", __doc__, epochs=200, lr=0.01, epochs_help="epochs for the 1-D task (diabetes: a quarter)"
    )
    args = parser.parse_args(argv)

    one_d, diabetes = run_1d(args), run_diabetes(args)
    print(f"{'task':<16}{'nu_xp MSE':>12}{'nu_xp R²':>10}{'sklearn MSE':>13}{'sklearn R²':>12}")
    for run in (one_d, diabetes):
        mse, r2 = run["sklearn"]
        print(f"{run['name']:<16}{run['test']['mse']:>12.4f}{run['test']['r2']:>10.3f}{mse:>13.4f}{r2:>12.3f}")
    path = output_folder(args.out) / "regression.png"
    plot(one_d, diabetes, path)
    print(f"plot written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
