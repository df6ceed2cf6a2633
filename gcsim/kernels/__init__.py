"""Fast kernels: compact K/V storage and the fused bank read (second implementation of
`gcsim.physics`, tested against it code for code).

Interface: `make_store(hw, dtype, kind='auto')` -> a store with `write(slot, k_dev, v_dev)`
and `read(q, decay, valid) -> (S, phi, A)`; see store.py. Devices (cpu, cuda, ...): device.py.
"""
from .device import DEVICES, DeviceError
from .store import CodeStore, NotOnGrid, PowerStore, codes_exact, make_store

__all__ = ["CodeStore", "PowerStore", "NotOnGrid", "make_store", "codes_exact", "DEVICES", "DeviceError"]
