import numpy as np
import pytest
import torch

from learning.device import amp_default, pick_device, pin, to_device
from learning.errors import ConfigurationError


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device(torch.device("cpu")) == torch.device("cpu")
    auto = pick_device()
    assert auto.type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigurationError, match='unknown device "mps2"'):
        pick_device("mps2")


def test_cpu_transfers_do_not_pin_or_copy():
    cpu = torch.device("cpu")
    arr = np.arange(4, dtype=np.int32)
    t = to_device(arr, cpu)
    assert t.data_ptr() == torch.from_numpy(arr).data_ptr()
    assert not pin(t, cpu).is_pinned() and amp_default(cpu) is False


def test_cuda_transfer_or_a_clear_error_without_cuda():
    if not torch.cuda.is_available():
        with pytest.raises(ConfigurationError, match='device "cuda" was asked for but CUDA'):
            pick_device("cuda")
        return
    dev = pick_device("cuda")
    out = to_device(np.arange(5, dtype=np.int64), dev)
    assert out.device.type == "cuda" and out.cpu().tolist() == [0, 1, 2, 3, 4]
    assert amp_default(dev) is True
