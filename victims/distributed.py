"""torch.distributed helpers: the loop runs the same code in one process and under DDP."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def init_from_env(backend: str | None = None) -> bool:
    """Join the process group described by the usual env variables (RANK, WORLD_SIZE, MASTER_ADDR,
    MASTER_PORT, LOCAL_RANK); returns False when they are absent (one process)."""
    if dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    return True


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate `tensor` from every process in rank order; gradients flow back to each owner."""
    if not is_distributed():
        return tensor
    import torch.distributed.nn.functional as dist_fn

    return torch.cat(dist_fn.all_gather(tensor), dim=0)


@torch.no_grad()
def gather_no_grad(tensor: torch.Tensor) -> torch.Tensor:
    if not is_distributed():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    if not is_distributed():
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value / world_size()


class _GlobalBatchNormFunction(torch.autograd.Function):
    """Batch norm with statistics of the global batch; reductions in float64 both ways (as the CPU
    kernels of local batch norm accumulate in double), one all-reduce forward and one backward."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps: float):
        c = x.shape[1]
        dims = [0] + list(range(2, x.dim()))
        shape = [1, c] + [1] * (x.dim() - 2)
        x64 = x.double()
        totals = torch.cat([x64.sum(dims), torch.tensor([x.numel() / c], dtype=torch.float64, device=x.device)])
        dist.all_reduce(totals)
        n = totals[-1]
        mean = totals[:c] / n
        centred = x64 - mean.view(shape)
        sq = centred.pow(2).sum(dims)
        dist.all_reduce(sq)
        var = sq / n
        invstd = torch.rsqrt(var + eps)
        xhat = centred * invstd.view(shape)
        ctx.save_for_backward(xhat, invstd, weight)
        ctx.n, ctx.dims, ctx.shape = n, dims, shape
        y = xhat * weight.double().view(shape) + bias.double().view(shape) if weight is not None else xhat
        return y.to(x.dtype), mean, var

    @staticmethod
    def backward(ctx, dy, _dmean, _dvar):
        xhat, invstd, weight = ctx.saved_tensors
        dims, shape = ctx.dims, ctx.shape
        dy64 = dy.double()
        local = torch.cat([dy64.sum(dims), (dy64 * xhat).sum(dims)])
        grad_weight = local[local.numel() // 2:].to(dy.dtype) if weight is not None else None
        grad_bias = local[:local.numel() // 2].to(dy.dtype) if weight is not None else None
        totals = local.clone()
        dist.all_reduce(totals)
        c = totals.numel() // 2
        mean_dy, mean_dy_xhat = totals[:c] / ctx.n, totals[c:] / ctx.n
        scale = invstd * (weight.double() if weight is not None else 1.0)
        dx = (dy64 - mean_dy.view(shape) - xhat * mean_dy_xhat.view(shape)) * scale.view(shape)
        return dx.to(dy.dtype), grad_weight, grad_bias, None


class GlobalBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """Batch norm over the global batch for any device (nn.SyncBatchNorm refuses CPU tensors).

    In training under torch.distributed, statistics and their gradients are those of one process
    holding the whole batch; elsewhere it is plain batch norm.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input, got {input.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        y, mean, var = _GlobalBatchNormFunction.apply(x, self.weight, self.bias, self.eps)
        if self.track_running_stats and self.running_mean is not None:
            momentum = self.momentum if self.momentum is not None else 0.1
            n = x.numel() / x.shape[1] * world_size()
            with torch.no_grad():
                self.running_mean.mul_(1 - momentum).add_(mean.to(x.dtype), alpha=momentum)
                self.running_var.mul_(1 - momentum).add_(var.to(x.dtype) * n / (n - 1), alpha=momentum)
                self.num_batches_tracked.add_(1)
        return y


def convert_batchnorm(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Make batch norm global across processes: nn.SyncBatchNorm on CUDA, GlobalBatchNorm elsewhere."""
    if device.type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
        new = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        new.load_state_dict(module.state_dict())
        if module.affine:  # frozen (momentum) copies stay frozen
            new.weight.requires_grad_(module.weight.requires_grad)
            new.bias.requires_grad_(module.bias.requires_grad)
        new.train(module.training)
        return new.to(next(iter(module.state_dict().values())).device) if module.state_dict() else new
    for name, child in module.named_children():
        module.add_module(name, convert_batchnorm(child, device))
    return module


def default_device() -> torch.device:
    """This process's GPU (LOCAL_RANK under torchrun/submitit), else the CPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))
