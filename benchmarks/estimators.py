"""nu_xp.sklearn against scikit-learn's own MLP estimators: fit time, paired in ONE process, and test scores.

For each dataset and solver both estimators get the same arguments; fits
alternate (the order flips each round, each timed fit after a short idle
pause) and the result is the median over rounds of ``time(nu_xp) /
time(scikit-learn)`` (paired: a slow phase of a shared machine hits both),
beside both test scores:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/estimators.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import blas_info
from sklearn import neural_network
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from versions import cpu_model

import nu_xp.sklearn

CASES = [
    ("digits", load_digits, "MLPClassifier", {"hidden_layer_sizes": (100,), "max_iter": 200}),
    ("breast_cancer", load_breast_cancer, "MLPClassifier", {"hidden_layer_sizes": (100,), "max_iter": 200}),
    ("diabetes", load_diabetes, "MLPRegressor", {"hidden_layer_sizes": (100,), "max_iter": 500}),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"CPU {cpu_model()}; BLAS {blas_info()}")
    header = ("dataset", "solver", "nu_xp s", "sklearn s", "ratio", "score nu_xp", "sklearn")
    print("{:14s} {:6s} {:>8s} {:>9s} {:>6s} {:>11s} {:>8s}".format(*header))
    for name, loader, cls, kw in CASES:
        X, y = loader(return_X_y=True)
        X_tr, X_te, y_tr, y_te = train_test_split(X, y, random_state=0)
        scaler = StandardScaler().fit(X_tr)
        X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)
        for solver in ("adam", "lbfgs"):
            options = {"solver": solver, "random_state": 0, **kw}
            makers = {"nu_xp": getattr(nu_xp.sklearn, cls), "sklearn": getattr(neural_network, cls)}
            times: dict[str, list[float]] = {"nu_xp": [], "sklearn": []}
            scores: dict[str, float] = {}
            ratios = []
            for r in range(args.rounds):
                for who in ("nu_xp", "sklearn") if r % 2 == 0 else ("sklearn", "nu_xp"):
                    est = makers[who](**options)
                    time.sleep(0.5)
                    start = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", ConvergenceWarning)
                        est.fit(X_tr, y_tr)
                    times[who].append(time.perf_counter() - start)
                    scores[who] = est.score(X_te, y_te)
                ratios.append(times["nu_xp"][-1] / times["sklearn"][-1])
            print(
                f"{name:14s} {solver:6s} {statistics.median(times['nu_xp']):8.2f} "
                f"{statistics.median(times['sklearn']):9.2f} {statistics.median(ratios):6.2f} "
                f"{scores['nu_xp']:11.3f} {scores['sklearn']:8.3f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
