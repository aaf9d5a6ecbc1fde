"""Shared fixtures for running tests on every device.

Fixtures (names are stable; other test files rely on them):

``fake_cuda``
    Puts the strict CuPy stand-in (``tests/strict_cupy.py``) behind ``backend``, so that
    ``device="cuda"`` / ``"cuda:0"`` makes stand-in arrays that refuse every implicit host
    conversion. Yields the stand-in module; ``backend`` is restored afterwards. Runs anywhere.
``real_cuda``
    Loads the real CuPy through ``backend.cupy_module()``; skips the test unless CuPy imports
    and a CUDA GPU is present. Yields the cupy module.
``device``
    Parametrized over ``"cpu"``, ``"fake_cuda"`` and ``"cuda"`` (test ids): yields the device
    string to pass to tinygrad_nd (``"cpu"``, ``"cuda"``, ``"cuda"``). The ``fake_cuda`` case
    runs on the stand-in; the ``cuda`` case is marked ``gpu`` and needs a real GPU.

Tests marked ``gpu`` are skipped, with the reason, where CuPy or a GPU is missing. The markers
(``gpu``, ``torch``, ``dot``, ``slow``) are declared in pyproject.toml.
"""
from __future__ import annotations

import functools

import pytest

import strict_cupy
from tinygrad_nd import backend


@functools.lru_cache(maxsize=None)
def gpu_unavailable_reason():
    """None when CuPy imports and sees a CUDA GPU, else why not (checked once per session)."""
    try:
        import cupy
    except ImportError as exc:
        return f"needs CuPy and a CUDA GPU: CuPy is not installed ({exc}); {backend.CUPY_HINT}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CuPy raises its own CUDARuntimeError without a driver
        return f"needs a CUDA GPU: CuPy is installed but CUDA is not usable ({exc})"
    return None if count > 0 else "needs a CUDA GPU: CuPy found none"


def pytest_collection_modifyitems(config, items):
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    reason = gpu_unavailable_reason()
    if reason is not None:
        for item in gpu_items:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def fake_cuda(monkeypatch):
    """The strict CuPy stand-in as ``backend``'s cupy (one device, device 0 current)."""
    strict_cupy.reset(device_count=1)
    monkeypatch.setattr(backend, "_cupy", strict_cupy)
    yield strict_cupy
    strict_cupy.reset(device_count=1)


@pytest.fixture
def real_cuda(monkeypatch):
    """The real CuPy behind ``backend``; skips where CuPy or a GPU is absent."""
    reason = gpu_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    monkeypatch.setattr(backend, "_cupy", None)  # drop a stand-in left by nobody, load cupy
    cupy = backend.cupy_module()
    yield cupy
    backend.synchronize("cuda:0")


@pytest.fixture(params=["cpu", "fake_cuda", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request):
    """``"cpu"``, or ``"cuda"`` backed by the stand-in (id fake_cuda) or by a real GPU (id cuda)."""
    if request.param == "fake_cuda":
        request.getfixturevalue("fake_cuda")
        return "cuda"
    if request.param == "cuda":
        request.getfixturevalue("real_cuda")
        return "cuda"
    return "cpu"
