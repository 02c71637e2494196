"""Policy.act refuses anything but finite float32 observations of the spec's shape, with an error
the bridge can turn into a failsafe."""

from __future__ import annotations

import numpy as np
import pytest

from deploy.runtime import Policy, PolicyInputError
from sim.errors import QuadhilError


@pytest.fixture(scope="module")
def policy(policy_path):
    return Policy.load(policy_path)


def test_one_observation_gives_four_actions_in_range(policy):
    a = policy.act(np.zeros(policy.obs_dim, dtype=np.float32))
    assert a.shape == (4,) and a.dtype == np.float32
    assert np.all(np.abs(a) <= 1.0)


@pytest.mark.parametrize("shape", [(21,), (23,), (1, 21), (0, 22), (2, 2, 22), (), (22, 1)])
def test_wrong_shapes_are_refused(policy, shape):
    with pytest.raises(PolicyInputError, match="shape"):
        policy.act(np.zeros(shape, dtype=np.float32))


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, np.dtype(">f4")])
def test_other_dtypes_are_refused_not_converted(policy, dtype):
    with pytest.raises(PolicyInputError, match="float32"):
        policy.act(np.zeros(policy.obs_dim, dtype=dtype))


def test_a_list_is_refused(policy):
    with pytest.raises(PolicyInputError, match="numpy"):
        policy.act([0.0] * policy.obs_dim)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("batch", [False, True])
def test_non_finite_values_are_refused(policy, bad, batch):
    obs = np.zeros((3, policy.obs_dim), dtype=np.float32)
    obs[-1, 5] = bad
    with pytest.raises(PolicyInputError, match="non-finite"):
        policy.act(obs if batch else obs[-1])


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_huge_but_finite_values_are_accepted(policy):
    # the fast finite test is a dot product, which overflows here: the exact check must decide
    obs = np.full(policy.obs_dim, 3e38, dtype=np.float32)
    assert np.all(np.isfinite(policy.act(obs)))


def test_input_errors_are_quadhil_errors(policy):
    with pytest.raises(QuadhilError):
        policy.act(np.zeros(3, dtype=np.float32))


def test_a_strided_view_is_accepted(policy):
    obs = np.zeros((policy.obs_dim, 2), dtype=np.float32)
    obs[:, 0] = np.linspace(-1, 1, policy.obs_dim)
    np.testing.assert_allclose(policy.act(obs[:, 0]), policy.act(np.ascontiguousarray(obs[:, 0])), atol=0)
