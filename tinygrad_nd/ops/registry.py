"""The registry of primitives: registry name -> Function subclass.

``@register("name")`` sets ``cls.name`` and records the class; ``ops/__init__.py`` imports
every op module by name, so importing ``tinygrad_nd`` fills the registry. The test suite
enumerates it and fails for any op without a test case.
"""
from __future__ import annotations

REGISTRY: dict = {}


def register(name: str):
    def decorate(cls):
        if name in REGISTRY:
            raise ValueError(f"op {name!r} is registered twice ({REGISTRY[name].__name__}, {cls.__name__})")
        cls.name = name
        REGISTRY[name] = cls
        return cls

    return decorate
