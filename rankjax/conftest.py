"""Doctest setup: docstring examples run as tests with `jnp` and `np` in scope."""

import jax.numpy as jnp
import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
  doctest_namespace["jnp"] = jnp
  doctest_namespace["np"] = np
