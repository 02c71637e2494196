"""Quarter turns about the world z axis: an exact symmetry of the hover task, used to augment.

Turning the whole world by 90 degrees about the vertical through the target changes nothing the
physics or the reward can tell: gravity is vertical, the airframe's randomization lives in the
body frame, drag is equal in x and y, and the reward uses only norms, the tilt and body-frame
quantities. A quarter turn (not any angle) also maps the hover task's box-shaped bounds and the
contract's per-axis clip of the position error onto themselves, so a turned transition is one the
simulator could have produced, sensor noise included (it is the same on both horizontal axes).

What turns, for a turn R_z: world vectors (position error, velocity, the position-error integral,
each past velocity) become R_z v; the body-to-world rotation becomes R_z R_wb (its first two rows
mix, the third stays). Body rates (now and past), thrust and rate actions and the action history
are body-frame and stay.

A policy trained on turned copies of its replay cannot keep a preferred world direction: a
constant world-frame offset of its hover point, which ate half of the 0.1 m success radius in
x500 runs (docs/training.md, "Quarter turns"), is not invariant under quarter turns.
"""

from __future__ import annotations

import numpy as np

from sim.contract import PolicySpec, SpecError

# cos and sin of k quarter turns, exact
_COS = np.array([1.0, 0.0, -1.0, 0.0], dtype=np.float32)
_SIN = np.array([0.0, 1.0, 0.0, -1.0], dtype=np.float32)

_WORLD_VECTORS = ("position_error_w", "velocity_w", "position_error_integral_w", "velocity_history_w")
_ROTATIONS = ("rotation_matrix_wb", "rotation_matrix_rows01_wb")
_BODY_FRAME = ("omega_b", "last_actions", "omega_history_b")


def check_turnable(spec: PolicySpec) -> None:
    """Raise SpecError naming any observation field this module cannot turn."""
    known = _WORLD_VECTORS + _ROTATIONS + _BODY_FRAME
    unknown = [f.name for f in spec.observation if f.name not in known]
    if unknown:
        raise SpecError(f"yaw symmetry cannot turn observation field(s) {', '.join(unknown)}")


def quarter_turn(rows: np.ndarray, spec: PolicySpec, turns: np.ndarray) -> np.ndarray:
    """Observations turned by ``turns`` x 90 degrees (counter-clockwise seen from above, ENU)
    about the world z axis through the target.

    rows: (..., D) with the spec's observation in the first ``spec.obs_dim`` columns (columns
    after it, e.g. a privileged critic's airframe parameters, are body-frame and are kept);
    turns: (...,) integers (any, taken mod 4). Returns a new float32 array; ``rows`` is unchanged.
    """
    a, b = turn_pairs(spec)
    out = np.array(rows, dtype=np.float32, copy=True)
    k = np.mod(np.asarray(turns, dtype=np.int64), 4)
    c, s = _COS[k][..., None], _SIN[k][..., None]
    xa, xb = rows[..., a], rows[..., b]
    out[..., a] = c * xa - s * xb
    out[..., b] = s * xa + c * xb
    return out


def turn_transitions(rng: np.random.Generator, obs: np.ndarray, next_obs: np.ndarray,
                     spec: PolicySpec) -> tuple[np.ndarray, np.ndarray]:
    """Both ends of each transition turned by one random quarter turn (0-3, uniform, drawn from
    ``rng``); obs and next_obs (..., D) as :func:`quarter_turn` takes them."""
    turns = rng.integers(0, 4, size=obs.shape[:-1])
    return quarter_turn(obs, spec, turns), quarter_turn(next_obs, spec, turns)


def turn_pairs(spec: PolicySpec) -> tuple[list[int], list[int]]:
    """Column pairs (a, b) that a quarter turn rotates as a' = c a - s b, b' = s a + c b (the x/y
    of each world vector, and entry j of rows 0 and 1 of each rotation matrix); every other column
    stays. Returns (a columns, b columns): the index lists :func:`quarter_turn` turns here and the
    compiled update (train.agent) turns in its graph."""
    check_turnable(spec)
    a, b = [], []
    for f in spec.observation:
        sl = spec.obs_slice(f.name)
        if f.name in _WORLD_VECTORS:  # one or more (x, y, z) world vectors, one after another
            a += list(range(sl.start, sl.stop, 3))
            b += list(range(sl.start + 1, sl.stop, 3))
        elif f.name in _ROTATIONS:
            a += [sl.start + j for j in range(3)]
            b += [sl.start + 3 + j for j in range(3)]
    return a, b
