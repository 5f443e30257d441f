"""Doctest setup: docstring examples run as tests with `jnp` and `np` in scope."""

import importlib.util

import jax.numpy as jnp
import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
  doctest_namespace["jnp"] = jnp
  doctest_namespace["np"] = np


# The Beam pipeline imports apache_beam at its top: the optional extra rankjax[beam], not in [test].
collect_ignore = [] if importlib.util.find_spec("apache_beam") else ["data/beam_prepare.py"]
