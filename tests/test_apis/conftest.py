"""The inference API tests' data: the session's data sets
(tests/conftest.py)."""

import pytest


@pytest.fixture(scope='session')
def api_data(data_kinds):
    return data_kinds
