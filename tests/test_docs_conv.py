"""The convolution and pooling pages keep checking what they claim.

``test_docs.py`` executes every python block of docs/*.md; this file makes sure the two backprop
pages exist, are linked from the index, and that each of their blocks asserts something (a
block that only prints would pass without checking anything)."""
import pathlib
import re

import pytest

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
PAGES = ["conv-backprop.md", "max-pool-backprop.md"]


@pytest.mark.parametrize("name", PAGES)
def test_page_blocks_assert(name):
    blocks = BLOCK.findall((DOCS / name).read_text())
    assert len(blocks) >= 4
    for i, block in enumerate(blocks):
        assert re.search(r"\bassert\b|assert_allclose|assert_array_equal", block), \
            f"{name} block {i} checks nothing"


@pytest.mark.parametrize("name", PAGES + ["performance.md"])
def test_page_is_linked_from_the_index(name):
    assert f"({name})" in (DOCS / "index.md").read_text()
