"""The config matrix's data: the session's data sets (tests/conftest.py)."""

import pytest


@pytest.fixture(scope='session')
def matrix_data(data_kinds):
    return data_kinds
