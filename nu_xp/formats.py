"""Which format a weights file is in, told from its first bytes: ``.npz``, safetensors or ``torch.save``.

* ``"npz"``: a zip (``PK``) without a ``data.pkl`` member, read by [`nu_xp.archive`][nu_xp.archive];
* ``"pytorch"``: a zip with ``<name>/data.pkl`` (``torch.save`` since PyTorch 1.6), or a pickle
  (``0x80``, the format before) whose name ends in ``.pt``, ``.pth``, ``.bin`` or ``.ckpt`` (a pickle
  under any other name is refused by the ``.npz`` reader), read by [`nu_xp.torch_file`][nu_xp.torch_file];
* ``"safetensors"``: an 8-byte header length that fits the file, then ``{``, read by
  [`nu_xp.safetensors_file`][nu_xp.safetensors_file].

The contents decide, never the suffix alone (a ``model.bin`` from a hub is
either); a file that is none of them is read as ``.npz``, whose reader says
what it found instead. ``nu_xp.save`` picks the format from the suffix:
``.safetensors`` writes safetensors, anything else ``.npz``.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from .archive import existing_spelling, open_regular_file, read_archive, weight_arrays
from .safetensors_file import looks_like_safetensors, read_safetensors
from .torch_file import read_torch_state_dict

__all__ = ["PICKLE_SUFFIXES", "file_format", "read_weights"]

#: the names under which a pickle is taken for an old PyTorch file (read with the restricted unpickler)
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


def file_format(path: str | os.PathLike) -> str:
    """``"npz"``, ``"safetensors"`` or ``"pytorch"``: what the file at ``path`` holds (see the module doc)."""
    path = existing_spelling(Path(os.fspath(path)))
    with open_regular_file(path) as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(16)
        if head[:2] == b"PK":
            try:
                with zipfile.ZipFile(f) as archive:
                    names = archive.namelist()
            except (zipfile.BadZipFile, OSError, ValueError):
                return "npz"  # the archive reader says what is wrong with it
            return "pytorch" if any(n.endswith("/data.pkl") or n == "data.pkl" for n in names) else "npz"
    if head[:1] == b"\x80" and path.suffix.lower() in PICKLE_SUFFIXES:
        return "pytorch"  # a pickle: torch.save's format before PyTorch 1.6
    if looks_like_safetensors(head, size) or path.suffix == ".safetensors":
        return "safetensors"
    return "npz"


def read_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The weight arrays of any file above (for ``load_weights`` / ``load_state_dict(path)``), checked safely.

    An ``.npz`` or safetensors file of ``nu_xp.save`` gives its parameters and
    buffers (nu_xp's own entries, such as optimizer state, are left out).
    """
    kind = file_format(path)
    if kind == "pytorch":
        return read_torch_state_dict(path)
    if kind == "safetensors":
        return weight_arrays(read_safetensors(path)[0])
    return weight_arrays(read_archive(path))  # read_archive refuses an empty archive
