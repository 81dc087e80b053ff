"""The demos behind ``nu-xp demo NAME``: each one trains a model, prints the result and writes a plot.

* `xor` — the whole story by hand (forward, loss, backward, update);
* `regression` — a noisy 1-D function and scikit-learn's diabetes data;
* `digits` — scikit-learn's bundled 8×8 digits (an MLP, or a CNN);
* `mnist1d` — the MNIST-1D paper's three models, beside PyTorch;
* `chargpt` — a character-level GPT on the Python docs, beside PyTorch;
* `sequences` — an LSTM reads digits row by row;
* `autoencoder` — a convolutional autoencoder denoises the digits, beside PyTorch;
* `realrun` — data streamed from disk, schedules, clipping, EMA, checkpoints; stopped and resumed.

Each has ``main(argv) -> int``; ``examples/*.py`` run them as plain scripts.
"""

DEMOS = ("xor", "regression", "digits", "mnist1d", "chargpt", "sequences", "autoencoder", "realrun")
