"""The registry of layers a model file may rebuild: ``register_layer`` and ``LAYER_REGISTRY``.

``nu_xp.load`` rebuilds a model from the class names in its file, and only
from classes registered here (every built-in layer, and the user's own
classes decorated with ``@register_layer``): a file never names code to import.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Any, TypeVar

__all__ = ["BUILTIN_LAYERS", "LAYER_REGISTRY", "register_layer"]

L = TypeVar("L", bound=Any)

#: class name -> Layer subclass; what ``nu_xp.load`` may rebuild (nothing else is ever imported).
LAYER_REGISTRY: dict[str, Any] = {}
#: names of the layers that ship with nu_xp (a user class may not take one of them).
BUILTIN_LAYERS: set[str] = set()


def register_layer(cls: L) -> L:
    """Class decorator: allow ``nu_xp.load`` to rebuild this layer from a file.

    The layer's constructor arguments are saved by [`Layer.get_config`][nu_xp.layers.base.Layer.get_config]
    (by default: the ``__init__`` arguments that the layer keeps as attributes
    of the same name), so they must be JSON values. Losses cannot be
    registered: a model file holds layers only.

    Examples
    --------
    >>> import nu_xp
    >>> @nu_xp.register_layer
    ... class Scale(nu_xp.Layer):
    ...     "y = factor * x;  dL/dx = factor * g"
    ...     def __init__(self, factor=2.0):
    ...         super().__init__()
    ...         self.factor = factor
    ...     def forward(self, x):
    ...         return x * self.factor
    ...     def backward(self, grad):
    ...         return grad * self.factor
    >>> Scale(3.0).get_config()
    {'factor': 3.0}
    """
    if not (isinstance(cls, type) and all(hasattr(cls, a) for a in ("config_arguments", "is_loss", "forward"))):
        raise TypeError(f"register_layer expects a Layer subclass, got {cls!r}")
    if getattr(cls, "is_loss", False):
        raise TypeError(f"{cls.__name__} is a loss; only layers can be registered (a model file holds layers)")
    name = cls.__name__
    if name in BUILTIN_LAYERS and LAYER_REGISTRY.get(name) is not cls:
        raise ValueError(f"{name!r} is a built-in nu_xp layer; give your class another name")
    _check_config_is_kept(cls)
    LAYER_REGISTRY[name] = cls
    if cls.__module__.startswith("nu_xp."):
        BUILTIN_LAYERS.add(name)
    return cls


def _check_config_is_kept(cls: Any) -> None:
    """Refuse, at registration, a class whose default ``get_config`` would silently drop an argument.

    The default ``get_config`` saves each constructor argument that the layer
    keeps as an attribute of the same name; an argument kept under another
    name would be lost in a saved file. Checked from the constructor's source
    (``self.<arg> = ...``) or a class attribute/property of that name.
    """
    if sum("get_config" in vars(klass) for klass in cls.__mro__) > 1:
        return  # a get_config of its own (beside Layer's default) says what to save
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls.__init__)))
    except (OSError, TypeError, SyntaxError):
        return  # no source to read (an interactive session): checked when saving instead
    kept = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"
    }
    missing = [name for name in sorted(cls.config_arguments()) if name not in kept and not hasattr(cls, name)]
    if missing:
        raise TypeError(
            f"cannot register {cls.__name__}: its constructor arguments {missing} are not kept as attributes of the "
            f"same name, so nu_xp.save could not rebuild it; keep them (self.{missing[0]} = {missing[0]}) or "
            "override get_config() to return every constructor argument"
        )
