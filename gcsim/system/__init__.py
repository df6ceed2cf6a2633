"""The chip in a system (docs/system.md): the host device beside the chip (device.py), the
roofline of a decode step's kernels on it (roofline.py), and from them the host's time and
energy and the GPU-only baseline."""
from .device import Device, host_device, presets
from .roofline import Cost, gpu_attention, gpu_only_step, host_layer, host_step

__all__ = ["Cost", "Device", "gpu_attention", "gpu_only_step", "host_device", "host_layer", "host_step", "presets"]
