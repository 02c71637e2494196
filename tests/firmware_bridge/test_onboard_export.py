"""``quadhil export --format c``: writes the run's actor as policy_weights.h, the same weights the
.tflite export converts, and says when the Crazyflie app would refuse the network."""

from __future__ import annotations

import json

import pytest

from quadhil.cli import main
from tests.firmware_bridge.onboard_support import actor_run_dir, compile_harness, make_actor


def test_export_c_writes_the_runs_actor(tmp_path, capsys):
    from deploy.export_c import render_header

    actor, spec, vehicle = actor_run_dir(tmp_path / "run")
    out = tmp_path / "app" / "policy_weights.h"
    assert main(["export", "--format", "c", str(tmp_path / "run"), "--out", str(out), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["vehicle"] == "crazyflie" and figures["crazyflie_app_accepts"] is True
    assert figures["layers"][0][0] == spec.obs_dim and figures["layers"][-1][1] == 4
    assert out.read_text().split("\n", 2)[2] == render_header(actor, spec, vehicle)[0].split("\n", 2)[2]
    compile_harness(tmp_path, out.read_text())  # the written file builds


def test_export_c_flags_a_network_the_app_refuses(tmp_path, capsys):
    actor_run_dir(tmp_path / "run", vehicle_id="x500")
    out = tmp_path / "w.h"
    assert main(["export", "--format", "c", str(tmp_path / "run"), "--out", str(out), "--json"]) == 0
    text = capsys.readouterr().out
    assert json.loads(text.strip().splitlines()[-1])["crazyflie_app_accepts"] is False
    assert "refuses" in text
    assert '#define QH_POLICY_VEHICLE "x500"' in out.read_text()


def test_export_c_for_a_firmware_without_battery_compensation_says_so_in_the_header(tmp_path, capsys):
    actor_run_dir(tmp_path / "run")
    out = tmp_path / "w.h"
    assert main(["export", "--format", "c", str(tmp_path / "run"), "--out", str(out), "--no-battery-compensation",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["battery_compensated"] is False
    assert "#define QH_BATTERY_COMPENSATED 0" in out.read_text()
    compile_harness(tmp_path, out.read_text())
    # a .tflite goes to the bridge, not into a firmware build: the flag means nothing there
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "p.tflite"), "--no-battery-compensation"]) == 2
    assert "--format c" in capsys.readouterr().err
    actor_run_dir(tmp_path / "x500", vehicle_id="x500")
    assert main(["export", "--format", "c", str(tmp_path / "x500"), "--out", str(out), "--no-battery-compensation"]) == 2
    assert "no Crazyflie firmware" in capsys.readouterr().err


def test_export_c_of_a_missing_run_is_one_clear_error(tmp_path, capsys):
    assert main(["export", "--format", "c", str(tmp_path / "nope"), "--out", str(tmp_path / "w.h")]) == 2
    assert "not a training run" in capsys.readouterr().err


def test_export_c_refuses_quantization(tmp_path, capsys):
    actor_run_dir(tmp_path / "run")
    rc = main(["export", "--format", "c", str(tmp_path / "run"), "--out", str(tmp_path / "w.h"),
               "--quantize", "int8"])
    assert rc == 2
    assert "float32" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["sigmoid"])
def test_export_c_refuses_layers_it_cannot_run(bad):
    import keras

    from deploy.errors import ExportRefused
    from deploy.export_c import render_header

    actor, spec, vehicle = make_actor()
    x = keras.Input(shape=(spec.obs_dim,))
    y = actor.get_layer("obs_normalization")(x)
    y = keras.layers.Dense(4, activation=bad)(y)
    with pytest.raises(ExportRefused, match=bad):
        render_header(keras.Model(x, y), spec, vehicle)
