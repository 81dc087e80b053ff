"""Data that streams: datasets, and the ``DataLoader`` that batches them for ``fit`` and ``evaluate``.

* [`dataset`][] — the map-style protocol (``__len__``, ``__getitem__``, an index array
  for a whole batch), ``ArrayDataset`` (arrays in memory or memory-mapped files);
* [`loader`][] — ``DataLoader``: seeded order per epoch, ``drop_last``, ``transform``,
  batches prepared and moved to the model's device on a background thread;
* [`order`][] — epoch ``e``'s order, from the seed and ``e`` only (shared with ``fit(x, y)``).

>>> import numpy as np, nu_xp
>>> x, y = np.random.default_rng(0).normal(size=(64, 3)), np.arange(64) % 2
>>> loader = nu_xp.data.DataLoader(nu_xp.data.ArrayDataset(x, y), batch_size=16, shuffle=True, seed=0)
>>> len(loader)
4
"""

from .dataset import ArrayDataset, BatchReader
from .loader import DataLoader
from .order import EpochOrder

__all__ = ["ArrayDataset", "BatchReader", "DataLoader", "EpochOrder"]
