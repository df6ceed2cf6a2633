"""Where the bank reads run: `cpu` (numpy + the fused numba kernel over DAC codes, the
default) or another array library through the array API (`physics` is written once
against it), e.g. a CUDA GPU.

Devices: 'cpu'; 'cuda' (PyTorch with CUDA, else CuPy); and, to exercise the same code path
without a GPU, 'torch:cpu' (PyTorch on the CPU) and 'array-api-strict' (the reference
implementation of the standard). Only the K/V storage and the bank read (K dot products,
charge-to-pulse, V sums) live on the device: the DAC front end, the counters and the
accumulator stay on the host, and each read brings S, phi and A back (small arrays).
"""
from __future__ import annotations

import numpy as np

from ..errors import UsageError

DEVICES = ("cpu", "cuda", "torch:cpu", "array-api-strict")


class DeviceError(UsageError):
    """The device asked for is not available here (a usage error: exit 2, one line)."""


def namespace_for(device: str):
    """(xp, device object) of a device name; numpy and None for 'cpu'."""
    if device == "cpu":
        return np, None
    if device == "array-api-strict":
        try:
            import array_api_strict
        except ImportError:
            raise DeviceError("device 'array-api-strict' needs the array-api-strict package") from None
        return array_api_strict, None
    if device in ("cuda", "torch:cpu"):
        try:
            import torch
        except ImportError:
            torch = None
        if torch is not None and (device == "torch:cpu" or torch.cuda.is_available()):
            import array_api_compat.torch as xp

            return xp, torch.device("cuda" if device == "cuda" else "cpu")
        if device == "cuda":
            try:
                import array_api_compat.cupy as xp

                return xp, None
            except ImportError:
                pass
            raise DeviceError("device 'cuda': no CUDA GPU found (needs PyTorch with CUDA or CuPy)")
        raise DeviceError("device 'torch:cpu' needs PyTorch")
    raise DeviceError(f"unknown device {device!r}; expected one of {list(DEVICES)}")


def to_host(x) -> np.ndarray:
    """A device array as a numpy array."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach"):          # torch
        return x.detach().cpu().numpy()
    if hasattr(x, "get"):             # cupy
        return x.get()
    return np.asarray(x)
