"""Sequence classification with an LSTM: scikit-learn's 8×8 digits read one row at a time.

Each image becomes a sequence of 8 steps of 8 pixels; an ``LSTM`` reads it
top to bottom and its last output goes to a linear layer that scores the ten
digits. The model is a ``Sequential``: ``LSTM`` returns ``(output, (h_n,
c_n))``, ``Select(0)`` passes on the output and ``TimeStep(-1, batch_first=True)``
keeps the final time step. Run it as::

    nu-xp demo sequences [--cell lstm|gru|rnn] [--hidden 64] [--epochs 20] [--backend numpy|torch|...]

It prints the test accuracy and writes ``sequences.png`` (loss and accuracy per epoch).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

import nu_xp
from nu_xp.demos.common import demo_parser, output_folder, positive_int
from nu_xp.demos.digits import load_data


def build(cell: str, hidden: int, seed: int, backend: str) -> nu_xp.Sequential:
    layer = {"lstm": nu_xp.LSTM, "gru": nu_xp.GRU, "rnn": nu_xp.RNN}[cell]
    return nu_xp.Sequential(
        layer(8, hidden, batch_first=True, seed=seed, backend=backend),
        nu_xp.Select(0),
        nu_xp.TimeStep(-1, batch_first=True),
        nu_xp.Linear(hidden, 10, seed=seed + 1, backend=backend),
    )


def plot(history: Any, path: Any, title: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    epochs = range(1, len(history) + 1)
    left.plot(epochs, history["loss"], label="train")
    left.plot(epochs, history["val_loss"], label="test")
    left.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    right.plot(epochs, history["val_accuracy"], color="C2")
    right.set(xlabel="epoch", ylabel="test accuracy", title=title)
    left.legend()
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = demo_parser("sequences", __doc__, epochs=20, lr=1e-2)
    parser.add_argument("--cell", default="lstm", choices=["lstm", "gru", "rnn"], help="recurrent layer (default lstm)")
    parser.add_argument("--hidden", type=positive_int, default=64, help="hidden size (default 64)")
    args = parser.parse_args(argv)
    x_train, x_test, y_train, y_test = load_data(args.seed)
    x_train, x_test = x_train.reshape(-1, 8, 8), x_test.reshape(-1, 8, 8)  # 8 steps (rows) of 8 pixels
    model = build(args.cell, args.hidden, args.seed, args.backend)
    print(model)
    start = time.perf_counter()
    history = nu_xp.fit(
        model,
        nu_xp.CrossEntropyLoss(),
        nu_xp.optim.Adam(model.parameters(), lr=args.lr),
        x_train,
        y_train,
        epochs=args.epochs,
        batch_size=32,
        seed=args.seed,
        validation_data=(x_test, y_test),
        metrics=["accuracy"],
        progress=args.progress,
    )
    seconds = time.perf_counter() - start
    accuracy = float(np.mean(np.argmax(nu_xp.to_host(model.predict(x_test)), axis=1) == y_test))
    print(f"\n{args.cell.upper()} reading digits row by row: test accuracy {accuracy:.4f} "
          f"after {len(history)} epochs ({seconds:.1f} s on {args.backend})")  # fmt: skip
    path = output_folder(args.out) / "sequences.png"
    plot(history, path, f"{args.cell.upper()}, rows as time steps")
    print(f"plot written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
