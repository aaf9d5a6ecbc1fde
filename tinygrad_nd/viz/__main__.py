"""``python -m tinygrad_nd.viz --model cnn --input-shape 1,1,8,8 --out graph.svg``."""
from .cli import main

raise SystemExit(main())
