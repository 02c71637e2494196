"""``quadhil bench policy F``: how long one control tick's inference takes, and why the bridge runs
a .tflite through :class:`deploy.runtime.Policy` and never Keras.

Measured in one run, one observation per call, each call timed on its own with
``time.perf_counter_ns`` (the garbage collector stays on, as in a bridge):

* ``act``        ``Policy.act(obs)``: validation, copy in, invoke, copy out (what the bridge calls)
* ``invoke``     a bare ``Interpreter.invoke()`` on a second interpreter of the same file, public
                 API, input already set (the floor a Python caller of LiteRT gets)
* ``invoke_wrapper`` the pybind wrapper's Invoke that ``act`` calls, without the public method's
                 safety check (the floor below ``invoke``)
* ``set_invoke_get`` the textbook loop: ``set_tensor``; ``invoke``; ``get_tensor``
* ``numpy``      a numpy forward pass of the same weights, read from the **.keras file** the
                 provenance names (its sha256 is checked against the recorded one); float32 files
                 only match it to ~1e-6, reduced-precision files differ by their quantization error
* ``keras_call`` ``model(obs)`` eager and ``keras_predict`` ``model.predict(obs)`` (fewer calls:
                 they are slow), TensorFlow imported lazily here only.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from pathlib import Path

import numpy as np

from deploy.runtime import Policy
from sim.report import emit_json, print_table


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``quadhil bench policy``."""
    parser.add_argument("file", help="a .tflite exported by quadhil export")
    parser.add_argument("--calls", type=int, default=100_000, help="timed act/invoke/numpy calls (default 100000)")
    parser.add_argument("--keras-calls", type=int, default=300, help="timed Keras model(obs) calls (default 300)")
    parser.add_argument("--predict-calls", type=int, default=30, help="timed Keras predict calls (default 30)")
    parser.add_argument("--keras", help="the .keras actor (default: the one named in the file's provenance)")
    parser.add_argument("--no-keras", action="store_true", help="skip the numpy and Keras comparisons")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="end with one JSON object of figures")


def _time_calls(fn, obs: np.ndarray, calls: int, warmup: int = 200) -> np.ndarray:
    """Per-call wall time in microseconds, cycling through the rows of ``obs``."""
    n = len(obs)
    for i in range(min(warmup, calls)):
        fn(obs[i % n])
    out = np.empty(calls)
    clock = time.perf_counter_ns
    for i in range(calls):
        o = obs[i % n]
        t0 = clock()
        fn(o)
        out[i] = clock() - t0
    return out / 1000.0


def _stats(name: str, us: np.ndarray) -> dict:
    return {f"{name}_p50_us": float(np.percentile(us, 50)), f"{name}_p99_us": float(np.percentile(us, 99)),
            f"{name}_mean_us": float(us.mean()), f"{name}_calls": int(len(us))}


def numpy_forward_from_keras(model):
    """A float32 numpy forward pass equivalent to the actor (Normalization + Dense layers),
    for one observation (obs_dim,) -> (4,)."""
    import keras

    steps = []
    acts = {"tanh": np.tanh, "relu": lambda x: np.maximum(x, 0.0), "linear": lambda x: x}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.layers.Normalization):
            mean = np.asarray(layer.mean, dtype=np.float32).reshape(-1)
            std = np.maximum(np.sqrt(np.asarray(layer.variance, dtype=np.float32).reshape(-1)), keras.config.epsilon())
            steps.append(("norm", mean, (1.0 / std).astype(np.float32)))
        elif isinstance(layer, keras.layers.Dense):
            kernel, bias = (np.asarray(w, dtype=np.float32) for w in layer.get_weights())
            name = keras.activations.serialize(layer.activation)
            name = name if isinstance(name, str) else name.get("config", {}).get("name", str(name))
            if name not in acts:
                raise ValueError(f"numpy forward: activation {name!r} not supported")
            steps.append(("dense", kernel, bias, acts[name]))
        else:
            raise ValueError(f"numpy forward: layer {type(layer).__name__} not supported")

    def forward(obs: np.ndarray) -> np.ndarray:
        x = obs
        for step in steps:
            if step[0] == "norm":
                x = (x - step[1]) * step[2]
            else:
                x = step[3](x @ step[1] + step[2])
        return x

    return forward


def _keras_path(policy: Policy, override: str | None) -> tuple[Path | None, str]:
    if override:
        return Path(override), "given with --keras"
    prov = policy.provenance
    if "run" not in prov or "keras_file" not in prov:
        return None, "the file's provenance names no .keras file"
    path = Path(prov["run"]) / prov["keras_file"]
    if not path.exists():
        return None, f"{path} (named in the provenance) is not on this machine"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if prov.get("keras_sha256") and digest != prov["keras_sha256"]:
        return None, f"{path} changed since export (sha256 differs)"
    return path, "from the provenance, sha256 checked"


def run(args: argparse.Namespace) -> int:
    """Measure and print; with --json end with one JSON object."""
    policy = Policy.load(args.file)
    rng = np.random.default_rng(args.seed)
    obs = rng.normal(0.0, 0.5, (256, policy.obs_dim)).astype(np.float32)
    fig: dict = {"file": str(args.file), "sha256": policy.sha256, "backend": policy.backend,
                 "quantization": policy.quantization, "obs_dim": policy.obs_dim,
                 "loadavg_1m": os.getloadavg()[0], "cpu_count": os.cpu_count()}

    fig.update(_stats("act", _time_calls(policy.act, obs, args.calls)))

    bare = policy._cls(model_content=policy._data, num_threads=1)  # a second, public-API interpreter
    bare.allocate_tensors()
    in_idx, out_idx = bare.get_input_details()[0]["index"], bare.get_output_details()[0]["index"]
    bare.set_tensor(in_idx, obs[:1])
    fig.update(_stats("invoke", _time_calls(lambda o: bare.invoke(), obs, args.calls)))
    fig.update(_stats("invoke_wrapper", _time_calls(lambda o: policy.invoke_only(), obs, args.calls)))

    def textbook(o):
        bare.set_tensor(in_idx, o[None])
        bare.invoke()
        return bare.get_tensor(out_idx)

    fig.update(_stats("set_invoke_get", _time_calls(textbook, obs, args.calls)))
    fig["act_over_invoke"] = fig["act_p50_us"] / fig["invoke_p50_us"]
    fig["act_over_invoke_wrapper"] = fig["act_p50_us"] / fig["invoke_wrapper_p50_us"]
    fig["goal_act_p99_under_20us"] = fig["act_p99_us"] < 20.0
    fig["goal_act_within_2x_invoke"] = fig["act_over_invoke"] <= 2.0

    if not args.no_keras:
        keras_path, why = _keras_path(policy, args.keras)
        fig["keras_source"] = str(keras_path) if keras_path else None
        fig["keras_note"] = why
        if keras_path is not None:
            import keras
            import tensorflow as tf

            model = keras.models.load_model(keras_path, compile=False)
            forward = numpy_forward_from_keras(model)
            fig["numpy_weights_from"] = f"{keras_path.name} ({why})"
            fig["numpy_vs_act_max_abs_diff"] = float(np.abs(forward(obs) - policy.act(obs)).max())
            fig["numpy_vs_keras_max_abs_diff"] = float(np.abs(forward(obs) - model(obs).numpy()).max())
            fig.update(_stats("numpy", _time_calls(lambda o: forward(o[None]), obs, args.calls)))
            fig.update(_stats("keras_call", _time_calls(lambda o: model(o[None]), obs, args.keras_calls, 20)))
            compiled = tf.function(lambda x: model(x, training=False))
            fig.update(_stats("keras_tf_function", _time_calls(lambda o: compiled(o[None]), obs, args.keras_calls, 20)))
            fig.update(_stats("keras_predict",
                              _time_calls(lambda o: model.predict(o[None], verbose=0), obs, args.predict_calls, 3)))

    rows = []
    for name in ("act", "invoke", "invoke_wrapper", "set_invoke_get", "numpy", "keras_tf_function", "keras_call",
                 "keras_predict"):
        if f"{name}_p50_us" in fig:
            rows.append((f"{name} p50 / p99 (us), {fig[f'{name}_calls']} calls",
                         f"{fig[f'{name}_p50_us']:.2f} / {fig[f'{name}_p99_us']:.2f}"))
    rows += [("act / invoke (p50)", fig["act_over_invoke"]), ("backend", policy.backend),
             ("numpy weights", fig.get("numpy_weights_from", fig.get("keras_note", "skipped"))),
             ("load average (1 min)", fig["loadavg_1m"])]
    print_table(f"quadhil bench policy {Path(args.file).name}", rows)
    if args.json:
        emit_json(fig)
    return 0
