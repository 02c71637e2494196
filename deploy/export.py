"""Keras actor -> .tflite with the contract inside, behind a parity gate and a closed-loop gate.

This is the one module of ``deploy/`` that imports TensorFlow (lazily, inside the functions), so
the runtime side stays installable without it.

Pipeline of :func:`export_policy`:

1. load the run's actor (``train.networks.load_actor``); the actor takes raw observations.
2. fly the Keras actor in the simulator to collect visited observations
   (``train.evaluate.collect_observations``): a calibration set (int8's representative
   dataset) and a disjoint parity set from another seed (>= 10,000 by default).
3. convert with ``tf.lite.TFLiteConverter.from_keras_model`` at the asked quantization
   (float32 I/O in every case, so the runtime is the same for all three).
4. parity gate: Keras vs the LiteRT interpreter on the parity set; refuse if the largest
   absolute action difference exceeds :data:`PARITY_TOLERANCE`.
5. closed-loop gate: both fly the same seeded eval episodes (``train.evaluate.evaluate_policy``);
   refuse if their success rates differ by more than :data:`SUCCESS_GAP_MAX` (2 points).
6. embed spec + provenance (:mod:`deploy.metadata`), load the result with the real runtime
   (:class:`deploy.runtime.Policy`) as a final check, and write it atomically.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from deploy.errors import ExportRefused
from deploy.metadata import embed_metadata, make_document
from deploy.runtime import Policy
from deploy.tflite_format import read_model
from sim.contract import PolicySpec
from sim.errors import QuadhilError
from sim.report import git_commit

QUANTIZATIONS = ("none", "float16", "int8")
# largest allowed |a_keras - a_tflite| over the parity set, normalized action units
PARITY_TOLERANCE = {"none": 1e-5, "float16": 1e-2, "int8": 0.05}
SUCCESS_GAP_MAX = 0.02  # closed loop: |success_tflite - success_keras| <= 2 points


@dataclass
class ParityResult:
    """Keras vs interpreter on the same observations."""

    n_obs: int
    max_abs_diff: float
    mean_abs_diff: float
    p99_abs_diff: float
    tolerance: float

    @property
    def ok(self) -> bool:
        """Within tolerance."""
        return self.max_abs_diff <= self.tolerance


@dataclass
class ClosedLoopResult:
    """Success rates of both models on the same seeded episodes."""

    episodes: int
    seed: int
    keras_success: float
    tflite_success: float
    keras_rmse_m: float
    tflite_rmse_m: float

    @property
    def gap(self) -> float:
        """|tflite - keras| success rate."""
        return abs(self.tflite_success - self.keras_success)

    @property
    def ok(self) -> bool:
        """Within :data:`SUCCESS_GAP_MAX` (a float tolerance keeps 2 points out of 100 inside)."""
        return self.gap <= SUCCESS_GAP_MAX + 1e-9


@dataclass
class ExportResult:
    """What :func:`export_policy` did; ``written`` is False when a gate refused."""

    out: str
    quantization: str
    parity: ParityResult
    closed_loop: ClosedLoopResult | None
    sha256: str = ""
    size_bytes: int = 0
    written: bool = False
    refused: str = ""
    timings_s: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    params_file: str | None = None  # PX4 ctbr policies: the QGroundControl .params next to the .tflite

    def summary(self) -> dict:
        """Flat JSON-ready figures (what ``quadhil export --json`` prints)."""
        cl = self.closed_loop
        return {
            "out": self.out, "quantization": self.quantization, "written": self.written, "refused": self.refused,
            "max_abs_diff": self.parity.max_abs_diff, "mean_abs_diff": self.parity.mean_abs_diff,
            "p99_abs_diff": self.parity.p99_abs_diff, "parity_tolerance": self.parity.tolerance,
            "parity_obs": self.parity.n_obs,
            "closed_loop_success": cl.tflite_success if cl else None,
            "keras_success": cl.keras_success if cl else None,
            "success_gap": cl.gap if cl else None, "episodes": cl.episodes if cl else 0,
            "closed_loop_rmse_m": cl.tflite_rmse_m if cl else None, "keras_rmse_m": cl.keras_rmse_m if cl else None,
            "sha256": self.sha256, "size_bytes": self.size_bytes,
            "weights_sha256": self.provenance.get("weights_sha256", ""),
            "params_file": self.params_file,
            **{f"{k}_s": v for k, v in self.timings_s.items()},
        }


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def keras_act_fn(actor):
    """Batched ``act_fn`` over a Keras actor: (N, obs_dim) float32 -> (N, 4) numpy."""
    import tensorflow as tf

    fn = tf.function(lambda x: actor(x, training=False), reduce_retracing=True)
    return lambda obs: fn(tf.convert_to_tensor(obs, dtype=tf.float32)).numpy()


def convert(actor, quantization: str, calibration_obs: np.ndarray | None = None) -> bytes:
    """Convert a Keras actor to .tflite bytes (float32 input and output).

    ``int8``: weights and activations int8 (TFLITE_BUILTINS_INT8), calibrated on
    ``calibration_obs`` (visited observations, never random noise); the interpreter quantizes
    the float input and dequantizes the output itself. ``float16``: float16 weights.
    """
    import tensorflow as tf

    if quantization not in QUANTIZATIONS:
        raise QuadhilError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, got {quantization!r}")
    converter = tf.lite.TFLiteConverter.from_keras_model(actor)
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        if calibration_obs is None or len(calibration_obs) == 0:
            raise QuadhilError("int8 export needs calibration observations")
        calib = np.asarray(calibration_obs, dtype=np.float32)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([row[None, :]] for row in calib)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    try:
        return bytes(converter.convert())
    except Exception as exc:  # the converter raises ConverterError and friends
        raise QuadhilError(f"TFLite conversion ({quantization}) failed: {exc}") from None


def parity(keras_fn, policy: Policy, obs: np.ndarray, quantization: str) -> ParityResult:
    """Compare Keras and the interpreter on ``obs`` (N, obs_dim)."""
    obs = np.ascontiguousarray(obs, dtype=np.float32)
    ref = np.asarray(keras_fn(obs), dtype=np.float32)
    got = policy.act(obs)
    diff = np.abs(ref - got)
    return ParityResult(n_obs=len(obs), max_abs_diff=float(diff.max()), mean_abs_diff=float(diff.mean()),
                        p99_abs_diff=float(np.percentile(diff, 99)), tolerance=PARITY_TOLERANCE[quantization])


def closed_loop(keras_fn, policy: Policy, spec: PolicySpec, episodes: int, seed: int) -> ClosedLoopResult:
    """Both models fly the same seeded eval episodes in the simulator."""
    from train.evaluate import evaluate_policy

    k = evaluate_policy(keras_fn, spec, spec.vehicle, episodes=episodes, seed=seed)
    t = evaluate_policy(policy.act, spec, spec.vehicle, episodes=episodes, seed=seed)
    return ClosedLoopResult(episodes=episodes, seed=seed, keras_success=k.success_rate,
                            tflite_success=t.success_rate, keras_rmse_m=k.rmse_m, tflite_rmse_m=t.rmse_m)


def schema_module():
    """The TFLite schema's generated object API: LiteRT's copy, else TensorFlow's."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        from tensorflow.lite.python import schema_py_generated as schema
    return schema


def quadhil_version() -> str:
    """The installed quadhil distribution's version ('unknown' when run from an uninstalled tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("quadhil")
    except PackageNotFoundError:
        return "unknown"


def build_provenance(run_dir: Path, keras_path: Path, quantization: str, weights_sha256: str,
                     par: ParityResult, cl: ClosedLoopResult | None) -> dict:
    """Where the file came from and how it was checked (stored in the file)."""
    import tensorflow as tf

    commit, dirty = git_commit()
    prov = {
        "run": str(run_dir.resolve()), "keras_file": keras_path.name, "keras_sha256": sha256_file(keras_path),
        "quadhil_version": quadhil_version(), "git_commit": commit, "git_dirty": dirty,
        "export_time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "quantization": quantization, "tensorflow_version": tf.__version__, "weights_sha256": weights_sha256,
        "parity": asdict(par),
    }
    if cl is not None:
        prov["closed_loop"] = {**asdict(cl), "gap": cl.gap}
    return prov


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a policy file is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def export_policy(run_dir: str | Path, out: str | Path, quantization: str = "none", parity_obs: int = 10_000,
                  calibration_obs: int = 4_000, episodes: int = 200, seed: int = 0, which: str = "best",
                  log=print, parity_set: np.ndarray | None = None,
                  calibration_set: np.ndarray | None = None) -> ExportResult:
    """Export a run's actor to ``out`` if both gates pass; see the module docstring.

    Returns an :class:`ExportResult`; raises :class:`ExportRefused` (after ``log``-ging the
    figures) if a gate fails, with nothing written. ``episodes`` 0 skips the closed-loop gate
    (for tests only; the command line needs at least 1). ``parity_set`` / ``calibration_set``:
    observations already collected with this actor (tests reuse them across quantizations);
    by default they are collected here.
    """
    from train.evaluate import collect_observations
    from train.networks import ACTOR_FILES, load_actor

    if quantization not in QUANTIZATIONS:
        raise QuadhilError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, got {quantization!r}")
    run_dir, out = Path(run_dir), Path(out)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    actor, spec, _config = load_actor(run_dir, which)
    keras_path = run_dir / ACTOR_FILES[which]
    keras_fn = keras_act_fn(actor)
    timings["load"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    calib = calibration_set
    if quantization == "int8" and calib is None:
        calib = collect_observations(keras_fn, spec, spec.vehicle, calibration_obs, seed=seed + 1)
    par_obs = parity_set
    if par_obs is None:
        par_obs = collect_observations(keras_fn, spec, spec.vehicle, parity_obs, seed=seed + 2)
    timings["collect"] = time.perf_counter() - t0
    if len(par_obs) < 10_000:
        log(f"note: parity set of {len(par_obs)} observations is below the 10,000 the gate is specified with")

    t0 = time.perf_counter()
    raw = convert(actor, quantization, calib)
    timings["convert"] = time.perf_counter() - t0
    weights_sha = read_model(raw).weights_sha256

    # the interpreter runs the converted model through the runtime, with a provisional entry
    schema = schema_module()
    provisional = embed_metadata(raw, make_document(spec, {"quantization": quantization, "weights_sha256": weights_sha}),
                                 schema=schema)
    policy = Policy.from_bytes(provisional, source=f"converted {quantization} model")
    t0 = time.perf_counter()
    par = parity(keras_fn, policy, par_obs, quantization)
    timings["parity"] = time.perf_counter() - t0
    log(f"parity ({quantization}): max |keras - tflite| = {par.max_abs_diff:.3g} over {par.n_obs} visited "
        f"observations (mean {par.mean_abs_diff:.3g}, p99 {par.p99_abs_diff:.3g}; tolerance {par.tolerance:g})")
    result = ExportResult(out=str(out), quantization=quantization, parity=par, closed_loop=None, timings_s=timings)
    if not par.ok:
        result.refused = f"parity: max abs diff {par.max_abs_diff:.3g} > {par.tolerance:g}"
        hint = {"int8": "; try --quantize float16 or none", "float16": "; try --quantize none"}.get(quantization, "")
        raise ExportRefused(f"refusing to write {out}: {result.refused}{hint}", result)

    if episodes > 0:
        t0 = time.perf_counter()
        cl = closed_loop(keras_fn, policy, spec, episodes, seed + 3)
        timings["closed_loop"] = time.perf_counter() - t0
        result.closed_loop = cl
        log(f"closed loop ({episodes} episodes): success keras {cl.keras_success:.1%}, tflite "
            f"{cl.tflite_success:.1%} (gap {cl.gap:.1%}, allowed {SUCCESS_GAP_MAX:.0%})")
        if not cl.ok:
            result.refused = f"closed loop: success gap {cl.gap:.1%} > {SUCCESS_GAP_MAX:.0%}"
            raise ExportRefused(f"refusing to write {out}: {result.refused}", result)

    prov = build_provenance(run_dir, keras_path, quantization, weights_sha, par, result.closed_loop)
    data = embed_metadata(raw, make_document(spec, prov), schema=schema)
    final = Policy.from_bytes(data, source=str(out))  # the shipped bytes load with the real runtime
    if final.spec != spec:
        raise QuadhilError("internal error: the spec read back from the file differs from the run's")
    write_atomic(out, data)
    if spec.action_mode == "ctbr":
        from deploy.px4_params import write_params_file
        from sim.vehicle import load_vehicle

        vehicle = load_vehicle(spec.vehicle)
        if vehicle.firmware == "px4":  # the parameters the policy was trained for, for QGroundControl
            result.params_file = str(write_params_file(Path(out).with_suffix(".params"), spec, vehicle))
    result.provenance = prov
    result.sha256 = final.sha256
    result.size_bytes = len(data)
    result.written = True
    return result
