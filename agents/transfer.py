"""Host-to-device copies that do not wait for the device."""

from __future__ import annotations

import numpy as np
import torch


def to_device(array: np.ndarray, device: torch.device, dtype: np.dtype | type = np.float32) -> torch.Tensor:
    """``array`` as a tensor on ``device``. To CUDA it goes through pinned memory with a
    non-blocking copy: a copy from pageable memory would first wait for every kernel queued
    on the stream (a host-device synchronisation). The pinned block is PyTorch's cached
    host allocation, held until the copy is done."""
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=dtype))
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
