"""DESIGN.md's layer rules, checked on the source: what each layer may import.

A companion computer installs the bridge without TensorFlow, and the simulator must stay free of
training and link libraries; a stray import breaks that silently, so it is checked here.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Exporter modules are the one place in deploy/ where TensorFlow (and the training run format) may
# be imported; deploy/bench.py compares against Keras, imported inside the benchmark only.
DEPLOY_TF_MODULES = {"export.py", "export_c.py", "export_px4nn.py", "cli_export.py", "bench.py", "convert.py"}

FORBIDDEN = {
    "sim": {"tensorflow", "keras", "cflib", "pymavlink", "train", "deploy", "firmware_bridge", "quadhil"},
    "sim/sitl": {"tensorflow", "keras", "cflib", "train", "deploy", "firmware_bridge", "quadhil"},
    "train": {"firmware_bridge", "cflib", "pymavlink", "deploy", "quadhil"},
    "deploy": {"tensorflow", "keras", "train", "firmware_bridge", "cflib", "pymavlink", "quadhil"},
    "firmware_bridge": {"tensorflow", "keras", "train", "quadhil"},
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def layer_of(path: Path) -> str:
    rel = path.relative_to(ROOT).as_posix()
    return "sim/sitl" if rel.startswith("sim/sitl/") else rel.split("/")[0]


SOURCES = sorted(
    p for layer in ("sim", "train", "deploy", "firmware_bridge") for p in (ROOT / layer).rglob("*.py")
)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_layer_imports_only_what_design_allows(path):
    forbidden = set(FORBIDDEN[layer_of(path)])
    if layer_of(path) == "deploy" and path.name in DEPLOY_TF_MODULES:
        forbidden -= {"tensorflow", "keras", "train"}
    if path.name == "__main__.py":  # `python -m <layer>` shims call the shared command line
        forbidden -= {"quadhil"}
    bad = imported_roots(path) & forbidden
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}, which its layer must not (DESIGN.md)"
