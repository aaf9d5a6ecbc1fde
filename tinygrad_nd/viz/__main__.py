"""``python -m tinygrad_nd.viz --model cnn --input-shape 1,1,8,8 --out graph.svg``."""
from .cli import main

if __name__ == "__main__":  # pytest's doctest collection imports this module too
    raise SystemExit(main())
