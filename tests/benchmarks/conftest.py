"""Fixtures for the runner's tests (helpers live in bench_helpers.py)."""
import pytest

from bench_helpers import write_fake_world


@pytest.fixture(scope='module')
def fake_world(tmp_path_factory):
    root = tmp_path_factory.mktemp('fake_world')
    return root, write_fake_world(root)
