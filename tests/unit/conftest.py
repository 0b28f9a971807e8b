"""Fixtures shared by the unit tests."""

import pytest


@pytest.fixture
def one_torch_thread():
    """Tiny models: one intra-op thread is faster than two on a busy 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
