"""A convolutional autoencoder that denoises scikit-learn's 8×8 digits, beside its PyTorch twin.

The encoder halves the image twice with strided ``Conv2d`` + ``GroupNorm`` +
ReLU (8×8 → 4×4 → 2×2, 32 channels); the decoder doubles it back with
``ConvTranspose2d`` (``--up transpose``, the default) or ``Upsample`` +
``Conv2d`` (``--up upsample``), and a sigmoid gives pixels in [0, 1]. The input
is a digit with Gaussian noise (``--noise``, clipped to [0, 1]); the target is
the clean digit; the loss is the mean squared error. PyTorch trains the same
network from the same weights on the same noisy batches, and the two losses
are printed side by side every epoch. Run it as::

    nu-xp demo autoencoder [--epochs 20] [--up transpose|upsample] [--noise 0.35] [--backend numpy|torch|...]

It prints the losses, the test error of the noisy and of the denoised images,
and writes ``autoencoder.png`` (noisy / denoised / clean test digits and the loss curves).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import nu_xp
from nu_xp.demos.common import demo_parser, output_folder, positive_float

BATCH = 64


def load_data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Clean training and test images ``(N, 1, 8, 8)`` in [0, 1] (a 75/25 split of the 1797 digits)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x = (load_digits().images / 16.0).astype(np.float32)[:, None, :, :]
    x_train, x_test = train_test_split(x, test_size=0.25, random_state=seed)
    return x_train, x_test


def noisy(x: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``clip(x + σ·ε, 0, 1)`` with ``ε ~ N(0, 1)`` drawn from ``rng`` (the same for both frameworks)."""
    return np.clip(x + sigma * rng.standard_normal(x.shape), 0.0, 1.0).astype(np.float32)


def build(up: str, seed: int, backend: str) -> nu_xp.Sequential:
    """Encoder 1→16→32 channels at 8→4→2 pixels; decoder back to one channel at 8×8 pixels."""
    be: dict[str, Any] = {"backend": backend}
    if up == "transpose":  # out = (in − 1)·stride − 2·padding + kernel = 2·in
        decoder = [
            nu_xp.ConvTranspose2d(32, 16, 4, stride=2, padding=1, seed=seed + 2, **be),
            nu_xp.ReLU(),
            nu_xp.ConvTranspose2d(16, 1, 4, stride=2, padding=1, seed=seed + 3, **be),
        ]
    else:
        decoder = [
            nu_xp.Upsample(scale_factor=2, mode="bilinear"),
            nu_xp.Conv2d(32, 16, 3, padding=1, seed=seed + 2, **be),
            nu_xp.ReLU(),
            nu_xp.Upsample(scale_factor=2, mode="nearest"),
            nu_xp.Conv2d(16, 1, 3, padding=1, seed=seed + 3, **be),
        ]
    return nu_xp.Sequential(
        nu_xp.Conv2d(1, 16, 3, stride=2, padding=1, seed=seed, **be),
        nu_xp.GroupNorm(4, 16, **be),
        nu_xp.ReLU(),
        nu_xp.Conv2d(16, 32, 3, stride=2, padding=1, seed=seed + 1, **be),
        nu_xp.GroupNorm(8, 32, **be),
        nu_xp.ReLU(),
        *decoder,
        nu_xp.Sigmoid(),
    )


def torch_twin(model: nu_xp.Sequential) -> Any:
    """The same network in ``torch.nn`` (same class per position, so the ``state_dict`` names agree)."""
    import torch

    layers: list[Any] = []
    layer: Any
    for layer in model:
        t: Any
        if isinstance(layer, (nu_xp.Conv2d, nu_xp.ConvTranspose2d)):
            kind: Any = torch.nn.Conv2d if isinstance(layer, nu_xp.Conv2d) else torch.nn.ConvTranspose2d
            geometry: dict[str, Any] = {"stride": layer.stride, "padding": layer.padding}
            t = kind(layer.in_channels, layer.out_channels, layer.kernel_size, **geometry)
        elif isinstance(layer, nu_xp.GroupNorm):
            t = torch.nn.GroupNorm(layer.num_groups, layer.num_channels)
        elif isinstance(layer, nu_xp.Upsample):
            t = torch.nn.Upsample(scale_factor=layer.scale_factor, mode=layer.mode, align_corners=layer.align_corners)
        else:
            t = torch.nn.ReLU() if isinstance(layer, nu_xp.ReLU) else torch.nn.Sigmoid()
        layers.append(t)
    twin = torch.nn.Sequential(*layers)
    twin.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in model.state_dict().items()})
    return twin


def epoch_batches(x: np.ndarray, sigma: float, seed: int, epoch: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """One epoch's (noisy, clean) batches: the order and the noise drawn from ``(seed, epoch)``."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(x))
    clean = x[order]
    dirty = noisy(clean, sigma, rng)
    return [(dirty[i : i + BATCH], clean[i : i + BATCH]) for i in range(0, len(x), BATCH)]


def train(model: nu_xp.Sequential, twin: Any, data: dict, args: Any) -> dict[str, list[float]]:
    """Adam on the MSE, both frameworks on the same batches; the epoch's mean training loss and the test loss."""
    loss, opt = nu_xp.MSELoss(), nu_xp.optim.Adam(model.parameters(), lr=args.lr)
    if twin is not None:
        import torch

        t_loss, t_opt = torch.nn.MSELoss(), torch.optim.Adam(twin.parameters(), lr=args.lr)
    history: dict[str, list[float]] = {"nu_xp": [], "PyTorch": [], "nu_xp test": [], "PyTorch test": []}
    print(f"{'epoch':>5}  {'nu_xp':>9}  {'PyTorch':>9}  {'test nu_xp':>10}  {'test PyTorch':>12}")
    for epoch in range(1, args.epochs + 1):
        ours, theirs = [], []
        model.train()
        for xb, yb in epoch_batches(data["x_train"], args.noise, args.seed, epoch):
            total, _, _ = nu_xp.training.train_step(
                model, loss, opt, nu_xp.asarray(xb, like=model), nu_xp.asarray(yb, like=model)
            )
            ours.append(float(total))  # train_step returns the batch's summed loss
            if twin is not None:
                t_opt.zero_grad()
                value = t_loss(twin(torch.from_numpy(xb)), torch.from_numpy(yb))
                value.backward()
                t_opt.step()
                theirs.append(value.item() * len(xb))
        n = len(data["x_train"])
        history["nu_xp"].append(sum(ours) / n)
        history["nu_xp test"].append(mse(denoise(model, data["x_noisy"]), data["x_test"]))
        if twin is not None:
            history["PyTorch"].append(sum(theirs) / n)
            history["PyTorch test"].append(mse(torch_denoise(twin, data["x_noisy"]), data["x_test"]))
        cells = [f"{history[k][-1]:{w}.5f}" if history[k] else f"{'-':>{w}}" for k, w in zip(history, (9, 9, 10, 12))]
        print(f"{epoch:5d}  " + "  ".join(cells), flush=True)
    return history


def denoise(model: nu_xp.Sequential, x: np.ndarray) -> np.ndarray:
    return np.asarray(nu_xp.to_host(model.predict(x)))


def torch_denoise(twin: Any, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return twin(torch.from_numpy(x)).numpy()


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((np.asarray(a, np.float64) - b) ** 2))


def plot(data: dict, denoised: np.ndarray, history: dict[str, list[float]], path: Path, title: str) -> None:
    """Three rows of ten test digits (noisy, denoised, clean) and the loss curves below them."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 6.2), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.35, 1])  # type: ignore[misc]
    grid = top.subplots(3, 10)
    for row, (name, images) in enumerate(
        (("noisy", data["x_noisy"]), ("denoised", denoised), ("clean", data["x_test"]))
    ):
        for k in range(10):
            ax = grid[row, k]
            ax.imshow(images[k, 0], cmap="gray_r", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
        grid[row, 0].set_ylabel(name, fontsize=10)
    top.suptitle(title, fontsize=11)
    ax = bottom.subplots()
    epochs = range(1, len(history["nu_xp"]) + 1)
    for (key, twin, what), color in zip(
        (("nu_xp", "PyTorch", "train"), ("nu_xp test", "PyTorch test", "test")), "C0 C1".split()
    ):
        ax.plot(epochs, history[key], color=color, lw=2.4, alpha=0.6, label=f"nu_xp, {what}")
        if history[twin]:
            ax.plot(epochs, history[twin], color=color, ls="--", marker="o", ms=3, lw=1, label=f"PyTorch, {what}")
    ax.axhline(data["noisy_mse"], color="grey", lw=0.8, ls=":", label="noisy input (no denoising)")
    ax.set(xlabel="epoch", ylabel="mean squared error", yscale="log")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = demo_parser("autoencoder", __doc__, epochs=20, lr=3e-3)
    parser.add_argument(
        "--up",
        choices=("transpose", "upsample"),
        default="transpose",
        help="how the decoder doubles (default transpose)",
    )
    parser.add_argument(
        "--noise", type=positive_float, default=0.35, help="standard deviation of the added noise (default 0.35)"
    )
    parser.add_argument("--no-torch", dest="torch", action="store_false", help="skip the PyTorch twin")
    args = parser.parse_args(argv)
    twin = None
    x_train, x_test = load_data(args.seed)
    x_noisy = noisy(x_test, args.noise, np.random.default_rng([args.seed, 0]))
    data = {"x_train": x_train, "x_test": x_test, "x_noisy": x_noisy, "noisy_mse": mse(x_noisy, x_test)}
    model = build(args.up, args.seed, "numpy")  # the twin copies these weights, then they move to --backend
    if args.torch:
        try:
            import torch

            torch.manual_seed(args.seed)
            twin = torch_twin(model)
        except ImportError:
            print("torch is not installed: the PyTorch twin is skipped (pip install 'nu_xp[torch]')")
    model = model.to(backend=args.backend)
    print(model.summary((1, 8, 8)))
    start = time.perf_counter()
    history = train(model, twin, data, args)
    seconds = time.perf_counter() - start
    denoised = denoise(model, x_noisy)
    print(
        f"\ntest mean squared error: noisy input {data['noisy_mse']:.4f}, denoised by nu_xp {mse(denoised, x_test):.4f}"
        + (f", by PyTorch {history['PyTorch test'][-1]:.4f}" if twin is not None else "")
        + f" ({args.epochs} epochs on {args.backend}, {seconds:.1f} s"
        + (" for both)" if twin is not None else ")")
    )
    path = output_folder(args.out) / "autoencoder.png"
    plot(
        data, denoised, history, path, f"Denoising autoencoder ({args.up} decoder): noisy, denoised, clean test digits"
    )
    print(f"digits and loss curves written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
