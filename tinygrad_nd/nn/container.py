"""Containers: ``Sequential`` (a chain of modules) and ``ModuleList`` (a registered list)."""
from __future__ import annotations

from collections.abc import Mapping

from .module import Module


class _IndexedModules(Module):
    """Children named by position, ``"0"``, ``"1"``, ...: indexing, ``len`` and iteration."""

    def _items(self) -> list:
        return list(self._modules.items())

    def _index(self, index: int) -> int:
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError(f"{type(self).__name__} indices must be ints or slices, got "
                            f"{type(index).__name__}")
        size = len(self._modules)
        if not -size <= index < size:
            raise IndexError(f"{type(self).__name__}: index {index} is out of range for "
                             f"{size} modules")
        return index % size

    def __getitem__(self, index):
        items = self._items()
        if isinstance(index, slice):
            return self._from_items(items[index])
        return items[self._index(index)][1]

    def __setitem__(self, index, module: Module) -> None:
        name = self._items()[self._index(index)][0]
        setattr(self, name, module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(list(self._modules.values()))

    def append(self, module: Module):
        """Add ``module`` at the end (named by its position)."""
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules):
        for module in modules:
            self.append(module)
        return self


class Sequential(_IndexedModules):
    """Run modules one after another: ``Sequential(a, b, c)(x) == c(b(a(x)))``.

    Children are named ``"0"``, ``"1"``, ... (or by the keys of a dict given instead), so
    parameter names read ``"0.weight"``. Supports ``len``, iteration, ``seq[i]`` and slices.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import nn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> model(tnd.ones(5, 4)).shape
    (5, 2)
    >>> len(model), model[-1]
    (3, Linear(in_features=8, out_features=2, bias=True))
    >>> model
    Sequential(
      (0): Linear(in_features=4, out_features=8, bias=True)
      (1): ReLU()
      (2): Linear(in_features=8, out_features=2, bias=True)
    )
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], Mapping):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for i, module in enumerate(modules):
                if not isinstance(module, Module):
                    raise TypeError(f"Sequential: argument {i} is a {type(module).__name__}, "
                                    "not a Module")
                self.add_module(str(i), module)

    def _from_items(self, items):
        return Sequential(dict(items))

    def forward(self, input):
        for module in self._modules.values():
            input = module(input)
        return input


class ModuleList(_IndexedModules):
    """A list of modules whose parameters the parent registers (a plain Python list would hide
    them from ``parameters()``); it has no ``forward``.

    Examples
    --------
    >>> from tinygrad_nd import nn
    >>> blocks = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    >>> len(list(blocks.parameters()))
    6
    """

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _from_items(self, items):
        return ModuleList([module for _, module in items])
