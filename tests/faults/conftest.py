"""Fixtures of the fault tests."""
import pytest

from harness.stack import Stack


@pytest.fixture
def replicated(settings, tmp_path):
    """A stack with three order worker replicas."""
    with Stack(settings, log_dir=tmp_path, replicas=3) as stack:
        yield stack
