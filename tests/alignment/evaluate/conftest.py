import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # drilled.py, beside the tests

from drilled import COMPLIANCE, REFUSAL, overfit  # noqa: E402


@pytest.fixture
def refusing():
    return overfit(REFUSAL, 0)


@pytest.fixture
def complying():
    return overfit(COMPLIANCE, 1)
