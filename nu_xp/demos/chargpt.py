"""A character-level GPT trained on the Python documentation that every Python installation ships.

The text is the standard library's ``pydoc_data.topics`` (the help pages behind
``help("if")``, about 465 kB); nothing is downloaded. The model is a small
causal Transformer: token and position embeddings, ``--layers`` pre-norm
``TransformerEncoderLayer(causal=True)`` blocks with GELU, a final
``LayerNorm`` and a linear head that shares the token embedding's weights.
PyTorch trains the same model from the same initial weights on the same
batches; both losses are reported in nats per character. Run it as::

    nu-xp demo chargpt [--steps 600] [--layers 2] [--width 128] [--heads 4] [--context 64] [--batch 32] [--no-torch]

It prints the training and validation losses of both, a sample of generated
text, and writes ``chargpt.png`` (the loss curves) and ``chargpt_model.npz``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import nu_xp
from nu_xp.demos.common import demo_parser, output_folder, positive_int, steps_of


def load_text() -> str:
    """The documentation topics of ``pydoc_data.topics``, in sorted order of their names."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[name] for name in sorted(topics))


class Vocabulary:
    """Characters ↔ integer ids (every distinct character of the text, sorted)."""

    def __init__(self, text: str) -> None:
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        return np.array([self.index[c] for c in text], dtype=np.int64)

    def decode(self, ids: Any) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def build(vocab_size: int, args: Any) -> nu_xp.Sequential:
    """Embeddings, ``args.layers`` causal pre-norm blocks, LayerNorm, and a head tied to the token embedding."""
    be = {"backend": args.backend}
    rng = np.random.default_rng(args.seed)
    embed = nu_xp.TokenAndPosition(vocab_size, args.width, args.context, seed=int(rng.integers(2**31))).to(**be)
    blocks = [
        nu_xp.TransformerEncoderLayer(
            args.width,
            args.heads,
            dim_feedforward=4 * args.width,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
            causal=True,
            seed=int(rng.integers(2**31)),
            **be,
        )
        for _ in range(args.layers)
    ]
    head = nu_xp.Linear(args.width, vocab_size, bias=False, **be)
    head.weight = embed.tok.weight  # weight tying: the head scores characters against their embeddings
    return nu_xp.Sequential(embed, *blocks, nu_xp.LayerNorm(args.width, **be), head)


def torch_twin(model: nu_xp.Sequential, args: Any) -> Any:
    """The same network in ``torch.nn`` (same state-dict names, same initial weights, the head tied too)."""
    import torch

    class TorchTokenAndPosition(torch.nn.Module):
        def __init__(self, vocab_size: int, width: int, context: int) -> None:
            super().__init__()
            self.tok = torch.nn.Embedding(vocab_size, width)
            self.pos = torch.nn.Embedding(context, width)

        def forward(self, x: Any) -> Any:
            return self.tok(x) + self.pos(torch.arange(x.shape[1]))[None]

    class CausalBlock(torch.nn.TransformerEncoderLayer):
        """Every call causal, as nu_xp's ``causal=True`` (a mask given as well applies too)."""

        def forward(
            self, src: Any, src_mask: Any = None, src_key_padding_mask: Any = None, is_causal: bool = False
        ) -> Any:
            mask = torch.nn.Transformer.generate_square_subsequent_mask(src.shape[1])
            if src_mask is not None:
                mask = mask + src_mask
            return super().forward(src, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=True)

    vocab_size = model[0].vocab_size
    blocks = [
        CausalBlock(args.width, args.heads, 4 * args.width, 0.0, "gelu", batch_first=True, norm_first=True)
        for _ in range(args.layers)
    ]
    head = torch.nn.Linear(args.width, vocab_size, bias=False)
    twin = torch.nn.Sequential(
        TorchTokenAndPosition(vocab_size, args.width, args.context), *blocks, torch.nn.LayerNorm(args.width), head
    )
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    head.weight = twin[0].tok.weight  # type: ignore[union-attr,assignment]
    return twin


def batches(data: np.ndarray, context: int, batch: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``batch`` random windows: inputs ``data[s : s+context]`` and targets shifted by one character."""
    starts = rng.integers(0, len(data) - context - 1, size=batch)
    x = np.stack([data[s : s + context] for s in starts])
    y = np.stack([data[s + 1 : s + context + 1] for s in starts])
    return x, y


def step_nu_xp(model: nu_xp.Sequential, loss: Any, opt: Any, x: np.ndarray, y: np.ndarray) -> float:
    """One training step, the chain rule in full: logits, loss, the loss's gradient back through the model."""
    xp = model.backend.xp
    logits = model(nu_xp.asarray(x, like=model))  # (N, L, V): a prediction at every position
    vocab = logits.shape[-1]
    value = loss(xp.reshape(logits, (-1, vocab)), xp.reshape(nu_xp.asarray(y, like=model), (-1,)))
    opt.zero_grad()
    model.backward(xp.reshape(loss.backward(), logits.shape))
    opt.step()
    return float(nu_xp.to_host(value))


def evaluate_nu_xp(model: nu_xp.Sequential, xs: list[np.ndarray], ys: list[np.ndarray]) -> float:
    """Mean cross-entropy (nats per character) over fixed validation batches, nothing kept for backward."""
    loss = nu_xp.CrossEntropyLoss()
    xp = model.backend.xp
    total = 0.0
    with nu_xp.no_grad():
        for x, y in zip(xs, ys):
            logits = model.predict(x)
            target = nu_xp.asarray(y, like=model)
            total += float(nu_xp.to_host(loss(xp.reshape(logits, (-1, logits.shape[-1])), xp.reshape(target, (-1,)))))
    return total / len(xs)


def evaluate_torch(twin: Any, xs: list[np.ndarray], ys: list[np.ndarray]) -> float:
    import torch

    with torch.no_grad():
        return float(
            np.mean(
                [
                    torch.nn.functional.cross_entropy(
                        twin(torch.from_numpy(x)).flatten(0, 1), torch.from_numpy(y).flatten()
                    ).item()
                    for x, y in zip(xs, ys)
                ]
            )
        )


def generate(
    model: nu_xp.Sequential, vocab: Vocabulary, prompt: str, length: int, seed: int, temperature: float
) -> str:
    """Sample ``length`` characters after ``prompt``, each from the softmax of the last position's logits."""
    rng = np.random.default_rng(seed)
    ids = list(vocab.encode(prompt))
    context = model[0].context
    for _ in range(length):
        window = np.array(ids[-context:], dtype=np.int64)[None, :]
        logits = nu_xp.to_host(model.predict(window))[0, -1].astype(np.float64) / temperature
        p = np.exp(logits - logits.max())
        ids.append(int(rng.choice(len(p), p=p / p.sum())))
    return vocab.decode(ids)


def plot(curves: dict[str, dict[str, list[float]]], every: int, path: Path) -> None:
    """The losses of nu_xp (wide lines) and PyTorch (dashed, with dots: drawn over them), and below, nu_xp's
    minus PyTorch's, so that two curves that agree are still seen to be two."""
    from matplotlib.figure import Figure

    twin = "PyTorch" in curves
    fig = Figure(figsize=(8.5, 6 if twin else 4), layout="constrained")
    axes = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1.3]) if twin else [fig.subplots()]
    ax = axes[0]
    for lib, curve in curves.items():
        for (part, values), color in zip(curve.items(), ("C0", "C1")):
            steps = [(i + 1) * every for i in range(len(values))]
            style = {"lw": 3, "alpha": 0.5} if lib == "nu_xp" else {"ls": "--", "marker": "o", "ms": 3, "lw": 1}
            ax.plot(steps, values, color=color, label=f"{part} ({lib})", **style)
    ax.set(ylabel="cross-entropy (nats / character)", title="char-level GPT on pydoc topics")
    ax.text(0.99, 0.97, f"train: the mean over the {every} steps before each point (the model improves meanwhile),\n"
            "so it sits above validation, measured at the point itself", transform=ax.transAxes, ha="right",
            va="top", fontsize=7, color="0.3")  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    if twin:
        diff = axes[1]
        for part, color in (("train", "C0"), ("validation", "C1")):
            ours, theirs = curves["nu_xp"][part], curves["PyTorch"][part]
            steps = [(i + 1) * every for i in range(len(ours))]
            diff.plot(steps, np.subtract(ours, theirs), marker="o", ms=3, color=color, label=part)
        diff.axhline(0.0, color="k", lw=0.8)
        diff.set(ylabel="nu_xp − PyTorch")
        diff.grid(alpha=0.3)
        diff.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    axes[-1].set_xlabel("training step")
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = demo_parser("chargpt", __doc__, epochs=None, lr=3e-3, steps=600,
                         epochs_help="passes over the training text (one: as many characters as it holds)")  # fmt: skip
    parser.add_argument("--layers", type=positive_int, default=2, help="Transformer blocks (default 2)")
    parser.add_argument("--width", type=positive_int, default=128, help="model width d_model (default 128)")
    parser.add_argument("--heads", type=positive_int, default=4, help="attention heads, dividing --width (default 4)")
    parser.add_argument("--context", type=positive_int, default=64, help="characters the model sees (default 64)")
    parser.add_argument("--batch", type=positive_int, default=32, help="sequences per step (default 32)")
    parser.add_argument("--every", type=positive_int, default=50, help="report the losses every so many steps")
    parser.add_argument("--sample", type=positive_int, default=300, help="characters to generate at the end")
    parser.add_argument("--no-torch", dest="torch", action="store_false", help="skip the PyTorch twin")
    args = parser.parse_args(argv)
    if args.width % args.heads:
        parser.error(f"--heads {args.heads} must divide --width {args.width}")
    if args.torch:
        try:
            import torch
        except ImportError:
            print("torch is not installed: the PyTorch twin is skipped (pip install 'nu_xp[torch]')")
            args.torch = False

    text = load_text()
    vocab = Vocabulary(text)
    data = vocab.encode(text)
    split = int(0.9 * len(data))
    train, valid = data[:split], data[split:]
    steps_of(args, len(train), args.batch * args.context)
    print(f"pydoc_data.topics: {len(text):,} characters, {len(vocab)} distinct; {len(train):,} to train on")
    valid_rng = np.random.default_rng(1234)
    val_batches = [batches(valid, args.context, args.batch, valid_rng) for _ in range(8)]
    val_x, val_y = [b[0] for b in val_batches], [b[1] for b in val_batches]

    model = build(len(vocab), args)
    print(f"model: {args.layers} blocks, width {args.width}, {args.heads} heads, context {args.context}, "
          f"{model.num_parameters():,} parameters on {args.backend}")  # fmt: skip
    twin = torch_twin(model, args) if args.torch else None
    torch_opt: Any = torch.optim.Adam(twin.parameters(), lr=args.lr) if twin is not None else None
    loss = nu_xp.CrossEntropyLoss()
    opt = nu_xp.optim.Adam(model.parameters(), lr=args.lr)

    rng = np.random.default_rng(args.seed)
    curves: dict[str, dict[str, list[float]]] = {"nu_xp": {"train": [], "validation": []}}
    if twin is not None:
        curves["PyTorch"] = {"train": [], "validation": []}
    seconds = {"nu_xp": 0.0, "PyTorch": 0.0}
    running = {"nu_xp": 0.0, "PyTorch": 0.0}
    header = f"{'step':>6}{'train':>9}{'valid':>9}" + (f"{'torch train':>13}{'torch valid':>13}" if twin else "")
    print(header)
    model.train()
    for step in range(1, args.steps + 1):
        x, y = batches(train, args.context, args.batch, rng)
        start = time.perf_counter()
        running["nu_xp"] += step_nu_xp(model, loss, opt, x, y)
        seconds["nu_xp"] += time.perf_counter() - start
        if twin is not None:
            start = time.perf_counter()
            logits = twin(torch.from_numpy(x))
            value = torch.nn.functional.cross_entropy(logits.flatten(0, 1), torch.from_numpy(y).flatten())
            torch_opt.zero_grad()
            value.backward()
            torch_opt.step()
            running["PyTorch"] += value.item()
            seconds["PyTorch"] += time.perf_counter() - start
        if step % args.every == 0 or step == args.steps:
            count = step % args.every or args.every
            curves["nu_xp"]["train"].append(running["nu_xp"] / count)
            curves["nu_xp"]["validation"].append(evaluate_nu_xp(model, val_x, val_y))
            line = f"{step:6d}{curves['nu_xp']['train'][-1]:9.3f}{curves['nu_xp']['validation'][-1]:9.3f}"
            if twin is not None:
                curves["PyTorch"]["train"].append(running["PyTorch"] / count)
                curves["PyTorch"]["validation"].append(evaluate_torch(twin, val_x, val_y))
                line += f"{curves['PyTorch']['train'][-1]:13.3f}{curves['PyTorch']['validation'][-1]:13.3f}"
            print(line, flush=True)
            running = {"nu_xp": 0.0, "PyTorch": 0.0}
            model.train()

    final = curves["nu_xp"]["validation"][-1]
    print(f"\nvalidation loss after {args.steps} steps: nu_xp {final:.3f} nats/char "
          f"({seconds['nu_xp']:.1f} s of training on {args.backend})", end="")  # fmt: skip
    if twin is not None:
        theirs = curves["PyTorch"]["validation"][-1]
        print(f", PyTorch {theirs:.3f} ({seconds['PyTorch']:.1f} s); difference {abs(final - theirs):.3f}")
    else:
        print()
    print("\nsample (temperature 0.8):\n" + "-" * 60)
    print(generate(model, vocab, "The ", args.sample, args.seed, 0.8))
    print("-" * 60)
    folder = output_folder(args.out)
    plot(curves, args.every, folder / "chargpt.png")
    nu_xp.save(model, folder / "chargpt_model.npz")
    print(f"loss curves written to {folder / 'chargpt.png'}; model saved to {folder / 'chargpt_model.npz'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
