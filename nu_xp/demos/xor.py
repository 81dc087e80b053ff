"""XOR with a 2-8-1 network, trained by plain SGD written out by hand.

The whole story of a neural network in one page: forward, loss, backward,
update. Run it as::

    nu-xp demo xor [--backend numpy|torch|array_api_strict|cupy] [--epochs N] [--seed S] [--out DIR]

It prints the four predictions and writes ``xor.png`` (the learned decision
boundary and the loss curve).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import nu_xp
from nu_xp.demos.common import demo_parser, output_folder

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
Y = np.array([[0], [1], [1], [0]], dtype=np.float32)


def build(seed: int, backend: str) -> nu_xp.Sequential:
    """2 inputs -> 8 tanh units -> 1 sigmoid output."""
    return nu_xp.Sequential(
        nu_xp.Linear(2, 8, seed=seed, backend=backend),
        nu_xp.Tanh(),
        nu_xp.Linear(8, 1, seed=seed + 1, backend=backend),
        nu_xp.Sigmoid(),
    )


def train(model: nu_xp.Sequential, epochs: int, lr: float = 0.5) -> list[float]:
    """Full-batch gradient descent; returns the loss of every epoch."""
    loss_fn = nu_xp.BCELoss()
    x, y = nu_xp.asarray(X, like=model), nu_xp.asarray(Y, like=model)
    losses = []
    for _ in range(epochs):
        pred = model.forward(x)  # 1. forward: predictions for the 4 points
        loss = loss_fn.forward(pred, y)  # 2. loss: binary cross-entropy
        model.zero_grad()
        model.backward(loss_fn.backward())  # 3. backward: dL/dθ for every parameter
        for p in model.parameters():  # 4. update: θ ← θ - lr · dL/dθ
            p.data = p.data - lr * p.grad
        losses.append(float(nu_xp.to_host(loss)))
    return losses


def plot(model: nu_xp.Sequential, losses: list[float], path: Path) -> None:
    """Decision boundary (left) and loss per epoch (right), saved to ``path``."""
    from matplotlib.figure import Figure

    grid = np.linspace(-0.5, 1.5, 201, dtype=np.float32)
    gx, gy = np.meshgrid(grid, grid)
    points = np.stack([gx.ravel(), gy.ravel()], axis=1)
    z = nu_xp.to_host(model.predict(points)).reshape(gx.shape)
    fig = Figure(figsize=(9, 4), layout="constrained")
    left, right = fig.subplots(1, 2)
    mesh = left.contourf(gx, gy, z, levels=20, cmap="RdBu_r", vmin=0, vmax=1)
    left.contour(gx, gy, z, levels=[0.5], colors="k")
    for label, marker, face in ((0, "s", "white"), (1, "o", "black")):  # the class by shape and fill, not colour
        mine = Y[:, 0] == label
        left.scatter(X[mine, 0], X[mine, 1], marker=marker, s=160, facecolors=face, edgecolors="gold", linewidths=2.5,
                     label=f"training point, y = {label}")  # fmt: skip
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8)  # below: off the boundary
    left.set(title="decision boundary (p = 0.5)", xlabel="x1", ylabel="x2")
    fig.colorbar(mesh, ax=left, label="P(y = 1)")
    right.plot(np.arange(1, len(losses) + 1), losses)
    right.set(title="training loss", xlabel="epoch", ylabel="binary cross-entropy", yscale="log")
    right.grid(alpha=0.3)
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = demo_parser("xor", __doc__, epochs=2000, lr=0.5, epochs_help="gradient steps on the four points")
    args = parser.parse_args(argv)

    model = build(args.seed, args.backend)
    print(model)
    losses = train(model, args.epochs, args.lr)
    pred = nu_xp.to_host(model.predict(X))[:, 0]
    print(f"\nafter {args.epochs} epochs on {args.backend}: loss {losses[-1]:.5f}")
    for (a, b), target, p in zip(X.astype(int), Y[:, 0].astype(int), pred):
        print(f"  {a} xor {b} = {target}   predicted {p:.4f} -> {int(p > 0.5)}")
    accuracy = float(np.mean((pred > 0.5) == (Y[:, 0] > 0.5)))
    print(f"accuracy: {accuracy:.0%}")
    path = output_folder(args.out) / "xor.png"
    plot(model, losses, path)
    print(f"plot written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
