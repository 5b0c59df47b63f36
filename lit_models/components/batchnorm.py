"""Batch normalisation with a hand-derived backward pass (the course derivation, as code).

For a feature column x (m values), with x_hat = (x - mu) / sqrt(var + eps) and y = gamma * x_hat + beta:

    dL/dbeta  = sum_i dy_i
    dL/dgamma = sum_i dy_i * x_hat_i
    dL/dx_i   = gamma / (m * sqrt(var + eps)) * (m * dy_i - sum_j dy_j - x_hat_i * sum_j dy_j * x_hat_j)

The last line follows from differentiating through mu and var (both depend on every x_j); it is what
``BatchNormFunction.backward`` computes, and tests check it against autograd and ``torch.nn.BatchNorm*``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class BatchNormFunction(torch.autograd.Function):
    """Training-mode batch norm over the rows of a 2-D ``(m, C)`` input."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, gamma: Tensor, beta: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
        mean = x.mean(0)
        var = x.var(0, unbiased=False)
        inv_std = torch.rsqrt(var + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, gamma, inv_std)
        ctx.mark_non_differentiable(mean, var)
        return x_hat * gamma + beta, mean, var

    @staticmethod
    def backward(ctx: Any, dy: Tensor, _dmean: Tensor, _dvar: Tensor) -> tuple[Tensor | None, ...]:
        x_hat, gamma, inv_std = ctx.saved_tensors
        m = dy.shape[0]
        dbeta = dy.sum(0)
        dgamma = (dy * x_hat).sum(0)
        dx = (gamma * inv_std / m) * (m * dy - dbeta - x_hat * dgamma)
        return dx, dgamma, dbeta, None


class _CustomBatchNorm(nn.Module):
    """Same parameters, buffers, momentum semantics and state_dict keys as ``torch.nn.BatchNorm*``."""

    _channel_dim = 1

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def _to_rows(self, x: Tensor) -> Tensor:
        return x.movedim(1, -1).reshape(-1, self.num_features)

    def _from_rows(self, rows: Tensor, like: Tensor) -> Tensor:
        return rows.reshape(like.movedim(1, -1).shape).movedim(-1, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != self._expected_ndim:
            raise ValueError(f"{type(self).__name__} expects {self._expected_ndim}-D input, got shape {tuple(x.shape)}")
        if not self.training:
            shape = (1, -1) + (1,) * (x.ndim - 2)
            inv_std = torch.rsqrt(self.running_var + self.eps)
            return (x - self.running_mean.view(shape)) * (inv_std * self.weight).view(shape) + self.bias.view(shape)
        rows = self._to_rows(x)
        y, mean, var = BatchNormFunction.apply(rows, self.weight, self.bias, self.eps)
        with torch.no_grad():
            m = rows.shape[0]
            self.running_mean.lerp_(mean.to(self.running_mean.dtype), self.momentum)
            self.running_var.lerp_((var * m / max(m - 1, 1)).to(self.running_var.dtype), self.momentum)  # unbiased, like torch
            self.num_batches_tracked += 1
        return self._from_rows(y, x)


class BatchNorm1d(_CustomBatchNorm):
    """Drop-in for ``torch.nn.BatchNorm1d`` on ``(N, C)`` inputs."""

    _expected_ndim = 2


class BatchNorm2d(_CustomBatchNorm):
    """Drop-in for ``torch.nn.BatchNorm2d`` on ``(N, C, H, W)`` inputs."""

    _expected_ndim = 4


def make_norm(kind: str, num_features: int, dims: int) -> nn.Module:
    """``torch`` | ``custom`` | ``none`` batch norm for 1-D (features) or 2-D (feature maps) inputs."""
    if kind == "torch":
        return nn.BatchNorm1d(num_features) if dims == 1 else nn.BatchNorm2d(num_features)
    if kind == "custom":
        return BatchNorm1d(num_features) if dims == 1 else BatchNorm2d(num_features)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be 'torch', 'custom' or 'none', got {kind!r}")
