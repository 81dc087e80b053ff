"""MNIST-1D (Greydanus 2020, "Scaling down deep learning"): the paper's three models, nu_xp beside PyTorch.

The data set is generated offline by the ``mnist1d`` package
(``make_dataset(get_dataset_args())``: 4000 training and 1000 test signals of
length 40, ten classes); nothing is downloaded. The three models and the
training setup are those of the MNIST-1D repository: logistic regression
(``Linear(40, 10)``), an MLP (40-256-256-10, ReLU) and a CNN (three
``Conv1d`` with 25 channels, kernel 5/3/3, stride 2, padding 1, ReLU, then
``Linear(125, 10)``), each trained with Adam (lr 1e-2), softmax cross-entropy
and batches of 100 taken in order (``x[k·100 mod 4000 :][:100]`` at step k)
for 8000 steps. PyTorch trains the same models from the same initial
weights on the same batches. Run it as::

    nu-xp demo mnist1d [--steps 8000] [--backend numpy|torch|array_api_strict|cupy] [--no-torch]

It prints the paper's test accuracies beside nu_xp's and PyTorch's and writes
``mnist1d.png`` (test accuracy every 250 steps, both libraries).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import nu_xp
from nu_xp.demos.common import demo_parser, output_folder, positive_int, steps_of

#: test accuracy reported in the paper (Greydanus 2020, table 1)
PAPER = {"logistic": 0.32, "mlp": 0.68, "cnn": 0.94}


def load_data() -> dict[str, np.ndarray]:
    """The standard MNIST-1D split, generated offline (float32 signals, int64 labels)."""
    from mnist1d.data import get_dataset_args, make_dataset

    data = make_dataset(get_dataset_args())
    return {
        "x": data["x"].astype(np.float32),
        "y": data["y"].astype(np.int64),
        "x_test": data["x_test"].astype(np.float32),
        "y_test": data["y_test"].astype(np.int64),
    }


def build(name: str, seed: int, backend: str) -> nu_xp.Sequential:
    """The repository's ``LinearBase``, ``MLPBase`` (hidden 256) and ``ConvBase`` (25 channels)."""
    if name == "logistic":
        return nu_xp.Sequential(nu_xp.Linear(40, 10, seed=seed, backend=backend))
    if name == "mlp":
        return nu_xp.Sequential(
            nu_xp.Linear(40, 256, seed=seed, backend=backend),
            nu_xp.ReLU(),
            nu_xp.Linear(256, 256, seed=seed + 1, backend=backend),
            nu_xp.ReLU(),
            nu_xp.Linear(256, 10, seed=seed + 2, backend=backend),
        )
    return nu_xp.Sequential(
        nu_xp.Conv1d(1, 25, 5, stride=2, padding=1, seed=seed, backend=backend),
        nu_xp.ReLU(),
        nu_xp.Conv1d(25, 25, 3, stride=2, padding=1, seed=seed + 1, backend=backend),
        nu_xp.ReLU(),
        nu_xp.Conv1d(25, 25, 3, stride=2, padding=1, seed=seed + 2, backend=backend),
        nu_xp.ReLU(),
        nu_xp.Flatten(),
        nu_xp.Linear(125, 10, seed=seed + 3, backend=backend),
    )


def torch_twin(model: nu_xp.Sequential) -> Any:
    """The same network in ``torch.nn``, holding the same initial weights (state dict keys are the same)."""
    import torch

    layers: list[Any] = []
    for layer in model:
        if isinstance(layer, nu_xp.Linear):
            layers.append(torch.nn.Linear(layer.in_features, layer.out_features))
        elif isinstance(layer, nu_xp.Conv1d):
            layers.append(
                torch.nn.Conv1d(
                    layer.in_channels,
                    layer.out_channels,
                    layer.kernel_size[0],
                    stride=layer.stride[0],
                    padding=layer.padding if isinstance(layer.padding, str) else layer.padding[0],
                )
            )
        elif isinstance(layer, nu_xp.ReLU):
            layers.append(torch.nn.ReLU())
        else:
            layers.append(torch.nn.Flatten())
    twin = torch.nn.Sequential(*layers)
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    return twin


def batches(n: int, batch: int, steps: int):
    """The repository's batch order: step k takes ``x[(k·batch) mod n :][:batch]``."""
    for step in range(steps):
        start = (step * batch) % n
        yield step, slice(start, start + batch)


def train_nu_xp(model: nu_xp.Sequential, data: dict, steps: int, every: int, lr: float = 1e-2) -> list[float]:
    """Adam(lr) on cross-entropy; the test accuracy every ``every`` steps (and at the end)."""
    loss = nu_xp.CrossEntropyLoss()
    opt = nu_xp.optim.Adam(model.parameters(), lr=lr)
    x = nu_xp.asarray(data["x"], like=model)
    y = nu_xp.asarray(data["y"], like=model)
    curve = []
    model.train()
    for step, part in batches(x.shape[0], 100, steps):
        nu_xp.training.train_step(model, loss, opt, x[part, ...], y[part])
        if (step + 1) % every == 0 or step + 1 == steps:
            curve.append(accuracy(nu_xp.to_host(model.predict(data["x_test"])), data["y_test"]))
            model.train()
    return curve


def train_torch(twin: Any, data: dict, steps: int, every: int, lr: float = 1e-2) -> list[float]:
    """The same loop in PyTorch (``torch.optim.Adam``, ``nn.CrossEntropyLoss``)."""
    import torch

    opt = torch.optim.Adam(twin.parameters(), lr=lr)
    loss = torch.nn.CrossEntropyLoss()
    x, y = torch.from_numpy(data["x"]), torch.from_numpy(data["y"])
    x_test = torch.from_numpy(data["x_test"])
    curve = []
    for step, part in batches(x.shape[0], 100, steps):
        opt.zero_grad()
        loss(twin(x[part]), y[part]).backward()
        opt.step()
        if (step + 1) % every == 0 or step + 1 == steps:
            with torch.no_grad():
                curve.append(accuracy(twin(x_test).numpy(), data["y_test"]))
    return curve


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def shaped(data: dict, name: str) -> dict:
    """The CNN reads ``(N, 1, 40)``; the others ``(N, 40)``."""
    if name != "cnn":
        return data
    return {**data, "x": data["x"][:, None, :], "x_test": data["x_test"][:, None, :]}


def plot(curves: dict[str, dict[str, list[float]]], every: int, steps: int, path: Path) -> None:
    """Test accuracy against steps: one colour per model, solid nu_xp, dashed PyTorch, grey the paper's."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.5, 4), layout="constrained")
    ax = fig.subplots()
    for color, (name, by_lib) in zip(("C0", "C1", "C2"), curves.items()):
        for lib, curve in by_lib.items():
            xs = [min((i + 1) * every, steps) for i in range(len(curve))]
            style = {"lw": 2.2, "alpha": 0.6} if lib == "nu_xp" else {"ls": "--", "marker": "o", "ms": 3, "lw": 1}
            ax.plot(xs, curve, color=color, label=f"{name} ({lib})", **style)  # PyTorch's drawn over nu_xp's
        ax.axhline(PAPER[name], color=color, lw=0.6, alpha=0.5)
        ax.text(steps, PAPER[name], f" paper {name}", va="center", fontsize=7, color=color)
    ax.set(xlabel="training step", ylabel="test accuracy", title="MNIST-1D: nu_xp (wide) and PyTorch (dashed, dots)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.08, 1.0))  # beside the axes: no curve hidden
    fig.savefig(path, dpi=110)


MODEL_NAMES = ("logistic", "mlp", "cnn")


def model_list(text: str) -> str:
    """An argparse type: comma-separated names from `MODEL_NAMES`."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODEL_NAMES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"unknown model(s) {unknown or [text]}; choose from {', '.join(MODEL_NAMES)}")
    return ",".join(names)


def main(argv: list[str] | None = None) -> int:
    per_epoch = "passes over the 4000 training series (batches of 100: 40 steps each)"
    parser = demo_parser("mnist1d", __doc__, epochs=None, lr=1e-2, steps=8000, epochs_help=per_epoch)
    parser.add_argument(
        "--every", type=positive_int, default=250, help="evaluate the test accuracy every so many steps (default 250)"
    )
    parser.add_argument(
        "--models",
        type=model_list,
        default="logistic,mlp,cnn",
        help=f"comma-separated models to train, from {', '.join(MODEL_NAMES)} (default all three)",
    )
    parser.add_argument("--no-torch", dest="torch", action="store_false", help="skip the PyTorch column")
    args = parser.parse_args(argv)
    if args.torch:
        try:
            import torch

            torch.manual_seed(args.seed)
            torch.set_num_threads(max(1, torch.get_num_threads()))
        except ImportError:
            print("torch is not installed: the PyTorch column is skipped (pip install 'nu_xp[torch]')")
            args.torch = False

    data = load_data()
    steps_of(args, len(data["y"]), 100)
    rows, curves = [], {}
    for name in args.models.split(","):
        part = shaped(data, name)
        model = build(name, args.seed, args.backend)
        twin = torch_twin(model) if args.torch else None
        start = time.perf_counter()
        ours = train_nu_xp(model, part, args.steps, args.every, args.lr)
        seconds = time.perf_counter() - start
        theirs = train_torch(twin, part, args.steps, args.every, args.lr) if twin is not None else []
        curves[name] = {"nu_xp": ours, **({"PyTorch": theirs} if theirs else {})}
        rows.append((name, ours[-1], theirs[-1] if theirs else None, seconds))
        print(f"{name:<9} trained in {seconds:.1f} s: test accuracy {ours[-1]:.3f}", flush=True)

    print(f"\nMNIST-1D test accuracy after {args.steps} steps (Adam {args.lr:g}, batch 100), nu_xp on {args.backend}:")
    print(f"{'model':<20}{'paper':>8}{'nu_xp':>8}{'PyTorch':>9}")
    for name, ours_acc, theirs_acc, _ in rows:
        label = {"logistic": "logistic regression", "mlp": "MLP", "cnn": "CNN"}[name]
        torch_text = f"{theirs_acc:9.1%}" if theirs_acc is not None else f"{'-':>9}"
        print(f"{label:<20}{PAPER[name]:8.0%}{ours_acc:8.1%}{torch_text}")
    path = output_folder(args.out) / "mnist1d.png"
    plot(curves, args.every, args.steps, path)
    print(f"learning curves written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
