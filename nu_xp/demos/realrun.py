"""A real run: digits streamed from disk, warm-up + cosine, clipping, EMA, checkpoints; stopped and resumed.

1. The 8×8 digits, shifted and noised into ``--samples`` training images,
   are written to ``.npy`` files (in chunks: the data never sits in memory
   whole) and read back as memory-mapped files through a ``DataLoader``
   (shuffled per epoch from the seed, batches read and moved on a background
   thread).
2. An MLP trains with AdamW, a linear warm-up then a cosine decay stepped per
   batch (``SequentialLR`` in a ``ScheduleStepper``), gradient clipping, an
   exponential moving average of the weights (``AveragedModel`` updated by
   ``WeightAveraging``), a ``ModelCheckpoint`` every epoch and a ``CSVLogger``.
3. The run is stopped after ``--stop-after`` epochs, then resumed from its
   checkpoint (``load_checkpoint`` + ``fit(initial_epoch=…)``) by fresh
   objects, as a new process would; a second run that never stops checks
   that the resumed weights are the same bits. The CSV log is plotted.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import nu_xp
from nu_xp.optim import lr_scheduler
from nu_xp.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .common import demo_parser, output_folder, positive_int

CHUNK = 4096  #: images written per chunk


def write_dataset(folder: Path, samples: int, seed: int) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """Augmented training digits into ``folder/x_train.npy`` and ``y_train.npy``, chunk by chunk; the held-out
    test digits are returned (in memory: 360 images)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, 8, 8)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    x_path, y_path = folder / "x_train.npy", folder / "y_train.npy"
    with open(x_path, "wb") as fx, open(y_path, "wb") as fy:
        np.lib.format.write_array_header_1_0(fx, {"descr": "<f4", "fortran_order": False, "shape": (samples, 64)})
        np.lib.format.write_array_header_1_0(fy, {"descr": "<i8", "fortran_order": False, "shape": (samples,)})
        for start in range(0, samples, CHUNK):
            count = min(CHUNK, samples - start)
            pick = rng.integers(0, len(x_train), count)
            images = np.zeros((count, 10, 10), np.float32)  # shifted by up to one pixel each way, then noised
            dy, dx = rng.integers(0, 3, count), rng.integers(0, 3, count)
            for k in range(count):
                images[k, dy[k] : dy[k] + 8, dx[k] : dx[k] + 8] = x_train[pick[k]]
            images = images[:, 1:9, 1:9] + rng.normal(0, 0.05, (count, 8, 8)).astype(np.float32)
            fx.write(np.ascontiguousarray(images.reshape(count, 64), dtype=np.float32).tobytes())
            fy.write(y_train[pick].astype(np.int64).tobytes())
    return x_path, y_path, x_test.reshape(-1, 64), y_test


class _StopAfter(nu_xp.callbacks.Callback):
    """Ends ``fit`` after ``epochs`` epochs (a run that gets interrupted)."""

    def __init__(self, epochs: int | None) -> None:
        self.epochs = epochs

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> bool:
        return self.epochs is not None and epoch + 1 >= self.epochs


def run(args: Any, x_path: Path, y_path: Path, test: tuple[np.ndarray, np.ndarray], out: Path, *, tag: str,
        stop_after: int | None = None, resume: bool = False) -> tuple[Any, Any, Any]:  # fmt: skip
    """Build everything from the seed, optionally resume from ``out/<tag>.npz``, train; ``(model, ema, history)``."""
    x = np.load(x_path, mmap_mode="r")  # on disk: a batch reads its rows only
    y = np.load(y_path, mmap_mode="r")
    loader = nu_xp.data.DataLoader(nu_xp.data.ArrayDataset(x, y), batch_size=args.batch_size, shuffle=True,
                                   seed=args.seed, prefetch=2)  # fmt: skip
    model = nu_xp.Sequential(
        nu_xp.Linear(64, args.hidden, seed=args.seed, backend=args.backend),
        nu_xp.ReLU(),
        nu_xp.Dropout(0.2, seed=args.seed + 1),
        nu_xp.Linear(args.hidden, 10, seed=args.seed + 2, backend=args.backend),
    )
    opt = nu_xp.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * len(loader)
    warmup = max(1, steps // 10)
    schedule = lr_scheduler.SequentialLR(
        opt,
        [lr_scheduler.LinearLR(opt, 0.05, total_iters=warmup), lr_scheduler.CosineAnnealingLR(opt, steps - warmup)],
        [warmup],
    )
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.99))
    cb = nu_xp.callbacks
    callbacks = [
        cb.ScheduleStepper(schedule, interval="step"),
        cb.WeightAveraging(ema),
        cb.ModelCheckpoint(out / f"{tag}.npz"),
        cb.CSVLogger(out / f"{tag}.csv", append=resume),
    ]
    start = 0
    if resume:
        extra = nu_xp.load_checkpoint(out / f"{tag}.npz", model, opt, scheduler=schedule, callbacks=callbacks)
        start = extra["epoch"] + 1
        print(f"resumed from {out / f'{tag}.npz'} at epoch {start + 1} (learning rate {opt.lr:.2e})")
    history = nu_xp.fit(model, nu_xp.CrossEntropyLoss(), opt, loader, epochs=args.epochs, initial_epoch=start,
                        clip_grad_norm=1.0, validation_data=test, metrics=["accuracy"],
                        callbacks=[*callbacks, _StopAfter(stop_after)], progress=args.progress)  # fmt: skip
    return model, ema, history


def peak_mib() -> float:
    """The process's peak resident memory so far, in MiB (Linux: ``VmHWM``; elsewhere ``ru_maxrss``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> bool:
    """Start measuring the peak from now (Linux's ``clear_refs``); False where the system cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def plot(path: Path, csv_path: Path) -> None:
    """The CSV log: losses, validation accuracy and the learning rate per epoch."""
    import csv

    from matplotlib.figure import Figure

    rows = list(csv.DictReader(open(csv_path)))
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig = Figure(figsize=(10, 3.2), layout="constrained")
    left, middle, right = fig.subplots(1, 3)
    left.plot(epochs, [float(r["loss"]) for r in rows], marker="o", label="train")
    left.plot(epochs, [float(r["val_loss"]) for r in rows], marker="o", label="validation")
    left.set(xlabel="epoch", ylabel="cross-entropy", title="loss (train: averaged over the epoch, dropout on)")
    middle.plot(epochs, [float(r["val_accuracy"]) for r in rows], marker="o", color="C2")
    middle.set(xlabel="epoch", ylabel="validation accuracy", title="accuracy")
    right.plot(epochs, [float(r["lr"]) for r in rows], marker="o", color="C3")
    right.set(xlabel="epoch", ylabel="learning rate (end of epoch)", title="warm-up, then cosine")
    left.legend()
    for ax in (left, middle, right):
        ax.grid(alpha=0.3)
        ax.set_xticks(epochs)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = demo_parser("realrun", __doc__, epochs=6, lr=3e-3)
    parser.add_argument(
        "--samples", type=positive_int, default=120_000, help="augmented images written (default 120000)"
    )
    parser.add_argument("--batch-size", type=positive_int, default=256, help="batch size (default 256)")
    parser.add_argument("--hidden", type=positive_int, default=128, help="hidden units (default 128)")
    parser.add_argument("--stop-after", type=positive_int, default=None, help="epochs before the stop (default half)")
    args = parser.parse_args(argv)
    stop = args.stop_after if args.stop_after is not None else max(1, args.epochs // 2)
    if stop >= args.epochs:
        parser.error(f"--stop-after {stop} must be below --epochs {args.epochs}")
    out = output_folder(args.out)
    x_path, y_path, x_test, y_test = write_dataset(out / "realrun_data", args.samples, args.seed)
    size = (x_path.stat().st_size + y_path.stat().st_size) / 2**20
    print(f"wrote {args.samples} augmented digits to {x_path.parent} ({size:.1f} MiB on disk)")
    test = (x_test, y_test)
    measured = reset_peak()
    before = peak_mib()
    t0 = time.perf_counter()
    run(args, x_path, y_path, test, out, tag="realrun", stop_after=stop)
    print(f"-- stopped after epoch {stop} --")
    model, ema, _ = run(args, x_path, y_path, test, out, tag="realrun", resume=True)
    seconds = time.perf_counter() - t0
    grown = peak_mib() - before
    straight, straight_ema, _ = run(args, x_path, y_path, test, out, tag="realrun_straight")
    same = all(
        np.array_equal(nu_xp.to_host(a.data), nu_xp.to_host(b.data))
        for a, b in zip(model.parameters() + ema.parameters(), straight.parameters() + straight_ema.parameters())
    )
    loss = nu_xp.CrossEntropyLoss()
    accuracy = nu_xp.evaluate(model, loss, x_test, y_test, metrics=["accuracy"])["accuracy"]
    ema_accuracy = nu_xp.evaluate(ema, loss, x_test, y_test, metrics=["accuracy"])["accuracy"]
    print(f"\ntest accuracy {accuracy:.4f} (EMA weights {ema_accuracy:.4f}) after {args.epochs} epochs "
          f"({seconds:.1f} s on {args.backend}, stopped and resumed)")  # fmt: skip
    if measured:
        print(f"peak memory while streaming {size:.1f} MiB of data: +{grown:.1f} MiB "
              f"(batches of {args.batch_size * 64 * 4 / 2**10:.0f} KiB)")  # fmt: skip
    print(f"resumed run == uninterrupted run, bit for bit (weights and EMA): {same}")
    path = out / "realrun.png"
    plot(path, out / "realrun.csv")
    print(f"log {out / 'realrun.csv'}, plot written to {path}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
