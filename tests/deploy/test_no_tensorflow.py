"""The runtime side installs and runs without TensorFlow: importing it, loading a policy and acting
never import tensorflow or keras."""

from __future__ import annotations

import subprocess
import sys


def test_runtime_loads_and_acts_without_importing_tensorflow(policy_path):
    code = (
        "import sys, numpy as np\n"
        "from deploy.runtime import Policy\n"
        "import deploy.cli_inspect\n"
        f"p = Policy.load({str(policy_path)!r})\n"
        "a = p.act(np.zeros(p.obs_dim, dtype=np.float32))\n"
        "assert a.shape == (4,), a.shape\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'))\n"
        "print('BACKEND', p.backend)\n"
        "print('IMPORTED', bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "BACKEND ai_edge_litert" in out.stdout
    assert "IMPORTED []" in out.stdout, out.stdout
