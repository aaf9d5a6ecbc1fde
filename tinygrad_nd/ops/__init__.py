"""Primitives by family. Importing this package registers every op (see ``registry``)."""
from . import registry  # noqa: F401
from . import shape  # noqa: F401
from . import reduce  # noqa: F401
from . import elementwise  # noqa: F401
from . import linalg  # noqa: F401
from . import loss  # noqa: F401
from . import conv  # noqa: F401
from . import pool  # noqa: F401
