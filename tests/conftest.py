"""Fixtures shared by the test packages."""
from __future__ import annotations

from typing import Iterator

import pytest


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch intra-op thread for the test, then the previous count. The tests' tensors
    are tiny, and OpenMP spinning on the shared CI cores makes them many times slower."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
