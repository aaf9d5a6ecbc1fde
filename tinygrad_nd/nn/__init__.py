"""Neural-network building blocks: ``functional`` (composites of the primitives) and modules."""
from . import functional  # noqa: F401
