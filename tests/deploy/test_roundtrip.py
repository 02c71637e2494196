"""Keras -> .tflite -> deploy.runtime gives the same actions, within each quantization's gate."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from deploy.export import PARITY_TOLERANCE
from deploy.runtime import Policy

QUANTIZATIONS = ("none", "float16", "int8")


@pytest.mark.parametrize("q", QUANTIZATIONS)
def test_export_passes_its_parity_gate_on_10000_visited_observations(exports, q):
    result = exports[q]
    assert result.written and Path(result.out).exists()
    assert result.parity.n_obs >= 10_000
    assert result.parity.max_abs_diff <= PARITY_TOLERANCE[q]
    assert result.sha256 == hashlib.sha256(Path(result.out).read_bytes()).hexdigest()


@pytest.mark.parametrize("q", QUANTIZATIONS)
def test_runtime_matches_keras_on_visited_observations(exports, keras_actor, visited_obs, q):
    actor, _ = keras_actor
    policy = Policy.load(exports[q].out)
    expected = actor(visited_obs).numpy()
    got = policy.act(visited_obs)
    assert got.shape == (len(visited_obs), 4) and got.dtype == np.float32
    assert np.abs(got - expected).max() <= PARITY_TOLERANCE[q]


@pytest.mark.parametrize("q", QUANTIZATIONS)
def test_runtime_matches_keras_on_random_observations(exports, keras_actor, visited_obs, q):
    # uniform within the visited range of each entry: int8 is calibrated for that range only
    actor, _ = keras_actor
    lo, hi = visited_obs.min(axis=0), visited_obs.max(axis=0)
    obs = np.random.default_rng(7).uniform(lo, hi, (2_000, visited_obs.shape[1])).astype(np.float32)
    got = Policy.load(exports[q].out).act(obs)
    assert np.abs(got - actor(obs).numpy()).max() <= PARITY_TOLERANCE[q]


def test_reduced_precision_files_are_smaller(exports):
    size = {q: Path(r.out).stat().st_size for q, r in exports.items()}
    assert size["float16"] < size["none"] and size["int8"] < size["none"]


def test_spec_and_provenance_round_trip_through_the_file(exports, run_dir):
    from train.networks import ACTOR_BEST, load_run_spec

    spec, _ = load_run_spec(run_dir)
    keras_sha = hashlib.sha256((run_dir / ACTOR_BEST).read_bytes()).hexdigest()
    for q, result in exports.items():
        policy = Policy.load(result.out)
        assert policy.spec == spec
        prov = policy.provenance
        assert prov["quantization"] == q == policy.quantization
        assert prov["keras_sha256"] == keras_sha
        assert Path(prov["run"]) == run_dir.resolve()
        assert prov["weights_sha256"] == policy.meta.model.weights_sha256
        assert prov["parity"]["max_abs_diff"] == pytest.approx(result.parity.max_abs_diff)
        for key in ("quadhil_version", "git_commit", "export_time_utc", "tensorflow_version"):
            assert key in prov


def test_single_and_batch_calls_agree(policy_path, visited_obs):
    policy = Policy.load(policy_path)
    batch = policy.act(visited_obs[:64])
    singles = np.stack([policy.act(o) for o in visited_obs[:64]])
    assert singles.shape == (64, 4)
    np.testing.assert_allclose(singles, batch, atol=1e-6, rtol=0)


def test_batches_of_changing_size_resize_the_interpreter(policy_path, visited_obs):
    policy = Policy.load(policy_path)
    reference = policy.act(visited_obs[:7])
    for n in (3, 7, 1, 5, 7):
        np.testing.assert_allclose(policy.act(visited_obs[:n]), reference[:n], atol=1e-6, rtol=0)


def test_act_returns_a_fresh_array_the_caller_owns(policy_path, visited_obs):
    policy = Policy.load(policy_path)
    first = policy.act(visited_obs[0])
    kept = first.copy()
    policy.act(visited_obs[1])
    np.testing.assert_array_equal(first, kept)
    first[:] = 99.0
    np.testing.assert_array_equal(policy.act(visited_obs[0]), kept)


def test_the_tensorflow_backend_gives_the_same_actions(policy_path, visited_obs):
    litert = Policy.load(policy_path)
    tf_lite = Policy.load(policy_path, backend="tensorflow")
    assert (litert.backend, tf_lite.backend) == ("ai_edge_litert", "tensorflow")
    np.testing.assert_allclose(tf_lite.act(visited_obs[:100]), litert.act(visited_obs[:100]), atol=1e-5, rtol=0)


def test_a_missing_interpreter_backend_is_named_with_its_requirement():
    import importlib.util

    from deploy.runtime import load_interpreter_class
    from sim.errors import QuadhilError

    if importlib.util.find_spec("tflite_runtime") is not None:
        pytest.skip("tflite_runtime is installed here")
    with pytest.raises(QuadhilError, match="tflite_runtime: ModuleNotFoundError.*install ai-edge-litert|"
                                           "install ai-edge-litert.*tflite_runtime: ModuleNotFoundError"):
        load_interpreter_class("tflite_runtime")
