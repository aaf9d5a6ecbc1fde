"""Batch normalisation over the channel dim of ``(N, C, *spatial)`` inputs (Ioffe & Szegedy, 2015).

Training: ``y = (x - mean) / sqrt(var + eps) * weight + bias`` with the mean and the biased
variance of the batch, taken per channel over the batch and spatial dims; the running statistics
then move towards the batch ones: ``running = (1 - momentum) * running + momentum * batch``, where
the running variance receives the *unbiased* batch variance (``var * n / (n - 1)``), as PyTorch.
``momentum=None`` averages all batches seen so far instead (factor ``1 / num_batches_tracked``).
Evaluation: the running statistics replace the batch ones. The normalisation is built from
Tensor ops, so its gradient (through the batch mean and variance) comes for free.
"""
from __future__ import annotations

from .. import backend
from ..autograd import no_grad
from ..factories import ones, tensor, zeros
from ..tensor import Tensor
from .conv_layers import spatial_names
from .layers import check_input, check_positive_int, float_dtype
from .module import Module, Parameter


class BatchNormNd(Module):
    """Batch normalisation of ``(N, C, *spatial)`` inputs with ``C = num_features``.

    Parameters
    ----------
    num_features : int
        C, the channel count.
    eps : float
        Added to the variance before the square root.
    momentum : float or None
        Weight of the new batch in the running statistics; None for a cumulative average.
    affine : bool
        Learn a per-channel scale ``weight`` (ones) and shift ``bias`` (zeros).
    track_running_stats : bool
        Keep ``running_mean`` (zeros), ``running_var`` (ones) and ``num_batches_tracked`` buffers
        and use them in eval mode; without them batch statistics are used in both modes.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import nn
    >>> bn = nn.BatchNorm1d(2)
    >>> y = bn(tnd.tensor([[1.0, 10.0], [3.0, 30.0]]))
    >>> [[round(v, 4) for v in row] for row in y.tolist()]  # mean 0, biased variance 1
    [[-1.0, -1.0], [1.0, 1.0]]
    >>> [round(v, 4) for v in bn.running_mean.tolist()]  # 0.9 * 0 + 0.1 * batch mean
    [0.2, 2.0]
    >>> [round(v, 4) for v in bn.running_var.tolist()]  # 0.9 * 1 + 0.1 * unbiased batch var
    [1.1, 20.9]
    >>> bn
    BatchNorm1d(2, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
    """

    _ranks = None  # input ranks BatchNorm1d/2d/3d accept; None: any rank >= 2

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        self.num_features = check_positive_int(name, "num_features", num_features)
        if not isinstance(eps, (int, float)) or isinstance(eps, bool) or eps < 0:
            raise ValueError(f"{name}: eps must be a number >= 0, got {eps!r}")
        if momentum is not None and (not isinstance(momentum, (int, float)) or isinstance(momentum, bool)
                                     or not 0 <= momentum <= 1):
            raise ValueError(f"{name}: momentum must be in [0, 1] or None, got {momentum!r}")
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        dtype = float_dtype(name, dtype)
        if self.affine:
            self.weight = Parameter(ones(num_features, dtype=dtype))
            self.bias = Parameter(zeros(num_features, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if self.track_running_stats:
            self.register_buffer("running_mean", zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", tensor(0, dtype=backend.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        if device is not None:
            self.to(device)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches tracked."""
        if self.track_running_stats:
            with backend.device_scope(self.running_mean.data):
                xp = backend.array_module(self.running_mean.data)
                self.running_mean.data = xp.zeros_like(self.running_mean.data)
                self.running_var.data = xp.ones_like(self.running_var.data)
                self.num_batches_tracked.data = xp.zeros_like(self.num_batches_tracked.data)

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            with backend.device_scope(self.weight.data):
                xp = backend.array_module(self.weight.data)
                self.weight.data = xp.ones_like(self.weight.data)
                self.bias.data = xp.zeros_like(self.bias.data)

    def _expected(self) -> str:
        c = self.num_features
        if self._ranks is None:
            return f"(N, {c}, *spatial)"
        forms = []
        for rank in self._ranks:
            forms.append("(" + ", ".join(("N", str(c)) + spatial_names(rank - 2)) + ")")
        return " or ".join(forms)

    def forward(self, input: Tensor) -> Tensor:
        check_input(self, input,
                    lambda x: (x.ndim >= 2 if self._ranks is None else x.ndim in self._ranks)
                    and x.shape[1] == self.num_features, self._expected())
        shape = (1, self.num_features) + (1,) * (input.ndim - 2)  # broadcasts over (N, C, *spatial)
        dims = (0,) + tuple(range(2, input.ndim))
        use_batch_stats = self.training or not self.track_running_stats
        if use_batch_stats:
            count = input.numel() // self.num_features
            if self.training and count <= 1:
                raise ValueError(f"{self!r}: expected more than 1 value per channel when "
                                 f"training, got input {input.shape}")
            mean = input.mean(dims, keepdim=True)
            centered = input - mean
            var = (centered * centered).mean(dims, keepdim=True)  # biased, for normalising
            y = centered / (var + self.eps).sqrt()
            if self.training and self.track_running_stats:
                self._update_running_stats(mean.data, var.data, count)
        else:
            mean = self.running_mean.reshape(*shape)
            var = self.running_var.reshape(*shape)
            y = (input - mean) / (var + self.eps).sqrt()
        if self.affine:
            y = y * self.weight.reshape(*shape) + self.bias.reshape(*shape)
        return y

    def _update_running_stats(self, mean, var, count):
        """New arrays for the buffers (their dtype kept), on their device, recording nothing."""
        with no_grad(), backend.device_scope(mean):
            self.num_batches_tracked.data = self.num_batches_tracked.data + 1
            if self.momentum is None:  # cumulative moving average: 1 / batches, kept on the device
                factor = 1.0 / self.num_batches_tracked.data
            else:
                factor = self.momentum
            c = self.num_features
            unbiased = var.reshape(c) * (count / (count - 1))
            running_mean, running_var = self.running_mean.data, self.running_var.data
            self.running_mean.data = ((1 - factor) * running_mean + factor * mean.reshape(c)).astype(running_mean.dtype)
            self.running_var.data = ((1 - factor) * running_var + factor * unbiased).astype(running_var.dtype)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(BatchNormNd):
    """``BatchNormNd`` on ``(N, C)`` or ``(N, C, L)``."""

    _ranks = (2, 3)


class BatchNorm2d(BatchNormNd):
    """``BatchNormNd`` on ``(N, C, H, W)``.

    Examples
    --------
    >>> import tinygrad_nd as tnd
    >>> from tinygrad_nd import nn
    >>> nn.BatchNorm2d(3)(tnd.randn(4, 3, 5, 5)).shape
    (4, 3, 5, 5)
    """

    _ranks = (4,)


class BatchNorm3d(BatchNormNd):
    """``BatchNormNd`` on ``(N, C, D, H, W)``."""

    _ranks = (5,)
