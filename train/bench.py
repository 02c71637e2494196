"""``quadhil bench train``: gradient updates/s and env-steps/s of the training loop.

Two figures per vehicle: (1) the compiled update step alone, K updates per call on batches of the
preset's size, and (2) the whole loop (acting, env stepping, replay insert and sampling, updates,
no evaluation) over a fixed wall-clock slice. Timings depend on machine load: loadavg is reported.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``quadhil bench train``."""
    parser.add_argument("--vehicle", action="append", default=None, help="vehicle(s) (default: crazyflie and x500)")
    parser.add_argument("--seconds", type=float, default=10.0, help="wall time of each measurement")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def _bench_updates(agent, batch: int, k: int, seconds: float, obs_dim: int) -> float:
    import numpy as np

    rng = np.random.default_rng(0)
    data = (rng.standard_normal((k, batch, obs_dim)).astype(np.float32), rng.uniform(-1, 1, (k, batch, 4)).astype(np.float32),
            rng.standard_normal((k, batch)).astype(np.float32), rng.standard_normal((k, batch, obs_dim)).astype(np.float32),
            np.ones((k, batch), np.float32))
    agent.update(*data)  # trace and compile
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        agent.update(*data)
        n += k
    return n / (time.perf_counter() - t0)


def run(args: argparse.Namespace) -> int:
    """Measure and print; one JSON line with --json."""
    import dataclasses

    from sim.report import emit_json, print_table
    from train.runtime import configure_tensorflow

    configure_tensorflow()
    from train.cli_train import build_trainer
    from train.cli_train import configure as configure_train

    vehicles = args.vehicle or ["crazyflie", "x500"]
    figures: dict = {"loadavg_start": os.getloadavg(), "seconds": args.seconds}
    for vid in vehicles:
        with tempfile.TemporaryDirectory() as tmp:
            # exactly what `quadhil train --vehicle VID` would build (its parser's defaults)
            train_parser = argparse.ArgumentParser()
            configure_train(train_parser)
            ns = train_parser.parse_args(["--vehicle", vid, "--out", os.path.join(tmp, "run"), "--budget-minutes", "60",
                                          "--no-progress", "--json"])
            trainer = build_trainer(ns)
            tc = trainer.tc
            k = max(1, int(round(tc.chunk * tc.updates_per_step)))
            ups = _bench_updates(trainer.agent, tc.batch_size, k, args.seconds / 2, trainer.spec.obs_dim)
            # the loop: warm-up filled, no evaluation or checkpoint inside the measured slice
            trainer.tc = dataclasses.replace(tc, eval_every_steps=10**12, checkpoint_every_steps=10**12,
                                             warmup_steps=0, budget_s=args.seconds)
            trainer.progress.next_eval_steps = 10**12
            trainer.progress.next_checkpoint_steps = 10**12
            trainer._collect(trainer.agent.numpy_actor())
            trainer._update()
            s0, u0, t0 = trainer.progress.env_steps, trainer.progress.updates, time.perf_counter()
            actor = trainer.agent.numpy_actor()
            while time.perf_counter() - t0 < args.seconds:
                trainer._iterate(actor)
                actor = trainer.agent.numpy_actor()
            dt = time.perf_counter() - t0
            figures[vid] = {
                "update_only_updates_per_s": ups,
                "loop_env_steps_per_s": (trainer.progress.env_steps - s0) / dt,
                "loop_updates_per_s": (trainer.progress.updates - u0) / dt,
                "num_envs": tc.num_envs, "batch_size": tc.batch_size, "updates_per_step": tc.updates_per_step,
            }
    figures["loadavg_end"] = os.getloadavg()
    rows = []
    for vid in vehicles:
        f = figures[vid]
        rows += [(f"{vid} update step alone, updates/s", f["update_only_updates_per_s"]),
                 (f"{vid} training loop, env steps/s", f["loop_env_steps_per_s"]),
                 (f"{vid} training loop, updates/s", f["loop_updates_per_s"])]
    rows.append(("loadavg (1 min) at start", figures["loadavg_start"][0]))
    print_table("quadhil bench train", rows)
    if args.json:
        emit_json(figures)
    return 0
