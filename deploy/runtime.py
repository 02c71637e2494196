"""Run an exported quadhil policy with LiteRT: no TensorFlow, no Keras.

    policy = Policy.load("policy.tflite")      # checks file, spec and tensors
    policy.spec.check_vehicle("crazyflie")     # the bridge refuses a policy for another vehicle
    action = policy.act(obs)                   # obs (obs_dim,) or (N, obs_dim) float32, raw

The interpreter comes from ``ai_edge_litert`` (LiteRT, the maintained successor of
tflite-runtime), else ``tflite_runtime`` (its wheels are built against numpy 1.x and fail to
import under numpy 2), else ``tensorflow.lite`` when TensorFlow is installed anyway.

Input rules of :meth:`Policy.act` (the bridge turns a :class:`PolicyInputError`, like any
:class:`QuadhilError`, into a failsafe; an interpreter failure raises :class:`PolicyRuntimeError`):

* a numpy array of dtype **float32**, exactly. float64 (or anything else) is *refused*, not
  converted: :func:`sim.contract.observe` returns float32, so another dtype means the caller
  did not build the observation the way training did; a silent cast would hide that, and would
  cost an allocation every tick.
* shape ``(obs_dim,)`` (returns ``(4,)``) or ``(N, obs_dim)`` with N >= 1 (returns ``(N, 4)``);
* every value finite.

The returned array is a fresh copy the caller owns. Single observations run on an interpreter
that is never resized, through preallocated tensor views; batches use a second interpreter
resized to the batch.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
from pathlib import Path

import numpy as np

from deploy.errors import PolicyFileError, PolicyInputError, PolicyRuntimeError
from deploy.metadata import PolicyMetadata, check_tensors, read_policy_metadata
from deploy.tflite_format import TensorInfo
from sim.errors import QuadhilError

BACKENDS = ("ai_edge_litert", "tflite_runtime", "tensorflow")
_FLOAT32 = np.dtype(np.float32)

__all__ = ["Policy", "PolicyFileError", "PolicyInputError", "PolicyRuntimeError", "load_interpreter_class", "BACKENDS"]


def load_interpreter_class(prefer: str | None = None) -> tuple[type, str]:
    """(Interpreter class, backend name), trying :data:`BACKENDS` in order (or only ``prefer``).

    TensorFlow is used only if it is installed; it is never a requirement."""
    order = BACKENDS if prefer is None else (prefer,)
    problems = []
    for name in order:
        if name not in BACKENDS:
            raise QuadhilError(f"unknown interpreter backend {name!r}; choose from {', '.join(BACKENDS)}")
        try:
            if name == "ai_edge_litert":
                return importlib.import_module("ai_edge_litert.interpreter").Interpreter, name
            if name == "tflite_runtime":
                return importlib.import_module("tflite_runtime.interpreter").Interpreter, name
            if importlib.util.find_spec("tensorflow") is None:
                raise ImportError("TensorFlow is not installed")
            return importlib.import_module("tensorflow").lite.Interpreter, name
        except Exception as exc:  # a wheel built for another numpy fails with several types
            hint = ""
            if name == "tflite_runtime" and not isinstance(exc, ModuleNotFoundError):
                hint = f" (tflite_runtime needs numpy<2; this is numpy {np.__version__})"
            problems.append(f"{name}: {type(exc).__name__}: {exc}{hint}".replace("\n", " "))
    raise QuadhilError("no TFLite interpreter could be loaded; install ai-edge-litert. Tried: " + "; ".join(problems))


class Policy:
    """A loaded .tflite policy: its contract (:attr:`spec`), provenance, and :meth:`act`."""

    def __init__(self, data: bytes, source: str = "<bytes>", backend: str | None = None):
        """Prefer :meth:`load` / :meth:`from_bytes`."""
        self.source = source
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.meta: PolicyMetadata = read_policy_metadata(data, source)
        check_tensors(self.meta, source)
        self.spec = self.meta.spec
        self.provenance = self.meta.provenance
        self.obs_dim = self.spec.obs_dim
        self.action_dim = self.spec.action_dim
        self._single_shape = (self.obs_dim,)
        self._data = data  # the interpreters read the model from this buffer: keep it alive
        self._cls, self.backend = load_interpreter_class(backend)
        self._interp = self._make_interpreter(1)
        self._in_index = self._interp.get_input_details()[0]["index"]
        self._out_index = self._interp.get_output_details()[0]["index"]
        # Hot path: hold numpy views of the batch-1 input/output buffers and call the wrapper's
        # Invoke directly. The public invoke() refuses to run while views exist, because a
        # resize or allocate_tensors could move the buffers; this interpreter is never resized
        # or re-allocated after this point, so the views stay valid for its lifetime.
        self._in_view = self._interp.tensor(self._in_index)()
        self._out_view = self._interp.tensor(self._out_index)()
        self._raw_invoke = getattr(getattr(self._interp, "_interpreter", None), "Invoke", None)
        if self._raw_invoke is None or self._in_view.shape != (1, self.obs_dim):
            self._in_view = self._out_view = None  # an unknown wrapper: take the public path
        else:
            self._in_row, self._out_row = self._in_view[0], self._out_view[0]
        self._batch_interp = None
        self._batch_n = 0

    @classmethod
    def load(cls, path: str | Path, backend: str | None = None) -> "Policy":
        """Load and check a .tflite policy file; :class:`PolicyFileError` names any problem."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise PolicyFileError(f"policy file {path} does not exist") from None
        except OSError as exc:
            raise PolicyFileError(f"cannot read policy file {path}: {exc}") from None
        return cls(data, str(path), backend)

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<bytes>", backend: str | None = None) -> "Policy":
        """Same as :meth:`load` for a model already in memory."""
        return cls(bytes(data), source, backend)

    def _make_interpreter(self, batch: int):
        try:
            interp = self._cls(model_content=self._data, num_threads=1)
            if batch != 1 or tuple(interp.get_input_details()[0]["shape"]) != (1, self.obs_dim):
                interp.resize_tensor_input(interp.get_input_details()[0]["index"], [batch, self.obs_dim])
            interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise PolicyFileError(f"{self.source}: the interpreter ({self.backend}) cannot load the model: "
                                  f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else exc}") from None
        return interp

    # --- descriptive ---------------------------------------------------------------------------

    @property
    def input(self) -> TensorInfo:
        """The model's input tensor as stored in the file."""
        return self.meta.model.inputs[0]

    @property
    def output(self) -> TensorInfo:
        """The model's output tensor as stored in the file."""
        return self.meta.model.outputs[0]

    @property
    def quantization(self) -> str:
        """'none', 'float16' or 'int8' as recorded at export ('unknown' if not recorded)."""
        return str(self.provenance.get("quantization", "unknown"))

    def __repr__(self) -> str:
        return (f"Policy({self.source!r}, vehicle={self.spec.vehicle!r}, mode={self.spec.action_mode!r}, "
                f"obs_dim={self.obs_dim}, quantization={self.quantization!r}, backend={self.backend!r})")

    # --- inference -----------------------------------------------------------------------------

    def _check(self, obs) -> np.ndarray:
        """Validate ``obs``; return it as (N, obs_dim)."""
        if not isinstance(obs, np.ndarray):
            raise PolicyInputError(f"observation must be a numpy float32 array, got {type(obs).__name__}")
        if obs.dtype != np.float32:
            raise PolicyInputError(
                f"observation dtype is {obs.dtype}, expected float32 (sim.contract.observe returns float32; "
                "other dtypes are refused, not converted)")
        if obs.ndim == 1 and obs.shape[0] == self.obs_dim:
            obs2 = obs.reshape(1, self.obs_dim)
        elif obs.ndim == 2 and obs.shape[1] == self.obs_dim and obs.shape[0] >= 1:
            obs2 = obs
        else:
            raise PolicyInputError(
                f"observation shape {obs.shape} does not match the spec: expected ({self.obs_dim},) or "
                f"(N, {self.obs_dim}) for {self.spec.vehicle}/{self.spec.layout}")
        # one reduction is the fast finite test; the elementwise test runs only if it fails
        # (a sum of huge finite values can overflow to inf)
        with np.errstate(over="ignore"):
            total = float(np.add.reduce(obs2, axis=None))
        if not math.isfinite(total) and not np.isfinite(obs2).all():
            bad = np.argwhere(~np.isfinite(obs2))[0]
            raise PolicyInputError(f"observation has a non-finite value ({obs2[tuple(bad)]}) at index "
                                   f"{tuple(int(i) for i in bad)}")
        return obs2

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Normalized actions in [-1, 1] for raw observations: (obs_dim,) -> (4,) or
        (N, obs_dim) -> (N, 4), float32. :class:`PolicyInputError` for a bad observation."""
        # Fast path for the bridge's case, one valid observation: type, dtype and shape checks,
        # a dot product as the finite test (NaN or inf anywhere makes it non-finite), copy in,
        # invoke, copy out. Anything unusual takes the fully checked path below.
        if type(obs) is np.ndarray and obs.dtype is _FLOAT32 and obs.shape == self._single_shape:
            s = obs.dot(obs)
            if s - s == 0.0 and self._in_view is not None:
                self._in_row[...] = obs
                try:
                    self._raw_invoke()
                except (RuntimeError, ValueError) as exc:
                    raise PolicyRuntimeError(f"{self.source}: the interpreter failed: {exc}") from None
                return self._out_row.copy()
        obs2 = self._check(obs)
        try:
            if obs2.shape[0] == 1 and self._in_view is not None:
                self._in_view[...] = obs2
                self._raw_invoke()
                out = self._out_view.copy()
            else:
                out = self._run_batch(obs2)
        except QuadhilError:
            raise
        except (RuntimeError, ValueError) as exc:
            raise PolicyRuntimeError(f"{self.source}: the interpreter failed: {exc}") from None
        return out[0] if obs.ndim == 1 else out

    def _run_batch(self, obs2: np.ndarray) -> np.ndarray:
        n = obs2.shape[0]
        if n == 1 and self._in_view is None:
            interp = self._interp
        else:
            if self._batch_interp is None:
                self._batch_interp = self._make_interpreter(n)
                self._batch_n = n
            elif n != self._batch_n:
                self._batch_interp.resize_tensor_input(self._in_index, [n, self.obs_dim])
                self._batch_interp.allocate_tensors()
                self._batch_n = n
            interp = self._batch_interp
        interp.set_tensor(self._in_index, np.ascontiguousarray(obs2))
        interp.invoke()
        return interp.get_tensor(self._out_index)

    def invoke_only(self) -> None:
        """One bare interpreter invoke on whatever the batch-1 input holds (for benchmarks)."""
        if self._raw_invoke is not None and self._in_view is not None:
            self._raw_invoke()
        else:
            self._interp.invoke()
