"""Per-vehicle default hyper-parameters: the measured recipe (see docs/training.md).

What made the difference, measured on this project's 2-core CPU (crazyflie, ctbr, seed 0):
one-step TD plateaued at ~0.3 m RMSE with 0 % success after 3 minutes; 5-step TD targets reached
95 % success in ~100 s. Few envs with 2 updates per tick (64 samples per transition) beat many envs
with fewer updates, because the update step, not the simulator, is the scarce resource.
Reward: the simulator's shape with a stronger position weight, alive bonus = max cost (reward never
negative while flying, so crashing is never the better deal), plus a trainer-side precision bonus
that rewards the last centimetres the success test asks for.
Smoothness (agent.smooth_weight, CAPS spatial term): once the simulator desaturated motors the
way the firmware does, the high-gain, noise-driven policies DDPG learned without it lost collective
thrust whenever a motor saturated; with the term the actions change ~5x less per tick in hover
(docs/training.md).
"""

from __future__ import annotations

# Since 2026-12-06 (issue #23) 16 envs with 4 updates per tick, the same 32 samples per transition
# as 8 envs with 2: a tick of 16 envs costs the simulator about what a tick of 8 does, so the
# acting thread, which bounded the loop, steps twice the transitions in the same time, and on the
# narrow Crazyflie task the runs needed fewer env steps, not more (125 k / 175 k against 225 k /
# 225 k, seeds 0 / 1; docs/experiments/2026-12-06-training-speed.md). The previous values:
# --set train.num_envs=8 --set train.updates_per_step=2 (quadhil bench train --compare-previous).
COMMON = {
    "train": {
        "num_envs": 16, "batch_size": 128, "updates_per_step": 4.0, "n_step": 5, "chunk": 10,
        "warmup_steps": 5_000, "sigma_start": 0.2, "sigma_end": 0.05, "noise_decay_steps": 300_000,
        "precision_bonus": 1.0, "precision_scale_m": 0.15, "eval_every_steps": 50_000, "eval_episodes": 100,
        "checkpoint_every_steps": 250_000,
    },
    "agent": {"smooth_weight": 10.0},
    "reward": {"pos": 5.0, "alive_bonus": 2.0, "max_cost": 2.0},
    # Action latency of 0 or 1 control ticks, drawn per episode. A real link delivers the command
    # 1-3 ms after the state was sampled; policies trained with none limit-cycled in the twins
    # (crazyflie seed 0: 99 % success with no delay, 8.5 % with one tick). Trained with the range:
    # 99.5 % and 98.5 % (docs/training.md).
    "realism": {"latency_ticks_max": 1},
}

# x500 (slower, heavier, noisier estimate): success kept swinging between ~10 % and ~70 % from one
# evaluation to the next with the common recipe; decaying the learning rates to 0.2x over 1 M
# steps and ending with less exploration noise made it steady (measured: docs/training.md).
# Its runs peaked at ~1 M env steps and fell back right after, where a 1 M replay starts to evict
# the early, diverse transitions; with room for the whole 5-minute run (< 2 M transitions) the
# evaluations after 1 M stayed at 83-89 % instead of 64-80 % (seed 0, docs/training.md).
PER_VEHICLE: dict[str, dict] = {
    "x500": {"version": 4, "train": {"lr_decay_steps": 1_000_000, "lr_end_fraction": 0.2, "sigma_end": 0.03,
                                     "replay_capacity": 2_000_000}},
}


# x500 flying ctbr (preset v5): the policy runs at 50 Hz and the critic has LayerNorm. Through
# PX4's 400 Hz rate loop the x500's attitude and position move slowly enough that a decision every
# 20 ms loses little, and each transition then covers twice the flight time for the same update
# budget: at 0.4 M env steps a 50 Hz run was at 79 % where the 100 Hz run was at 0 %. LayerNorm in
# the critic (Ball et al. 2023) damped the collapses plain DDPG showed at 50 Hz (87 % -> 19 % between
# two evaluations). Side by side, seeds 0/1/2, 5 minutes: best periodic 90/84/88 % and final
# 87.5/87.5/84.5 % against 83/74/87 % and 80.0/70.0/86.0 % for v4 (docs/training.md).
# Preset v6 adds 80 ms TD targets ("n_step" is stated at the 100 Hz reference rate: 8 -> 4 steps at
# 50 Hz) and trains on 1.25x the vehicle file's randomization ranges (evaluations keep 1x). The
# failures sit on heavy, weak airframes; the wider training ranges put more of them, and weaker
# ones, in the replay. Six seeds, 5 minutes, against v5: mean success of the chosen actor on 1,000
# fresh episodes 87.0 % against 82.5 % (better on 5 seeds of 6), weakest thrust-to-weight quarter
# 75.9 % against 68.3 % (docs/training.md, "Six seeds").
# Preset v7 adds quarter-turn augmentation (train/symmetry.py): every sampled transition is turned
# by a random multiple of 90 degrees about the world z axis, an exact symmetry of the task. Without
# it, runs kept a world-frame offset of their hover point (4-5 cm of the 0.1 m success radius) or
# learned to spin at ~2 rad/s; seed 4, 5 minutes: 65-72 % -> 97 %, 95 % at 140 s (docs/training.md,
# "Quarter turns").
# Motor-level x500 policies (px4-nn) keep v4: they need the rate the motors are driven at.
PER_VEHICLE_MODE: dict[tuple[str, str], dict] = {
    # Crazyflie ctbr (preset v4): the common recipe plus quarter turns. Seeds 0-2, 5 minutes, side
    # by side with v3: 100.0 / 99.7 / 99.2 % on 1,000 fresh episodes against 94.5 / 94.0 / 96.1 %.
    # Preset v5 (2026-12-06, issues #19/#26): the same recipe on the firmware's command path
    # (sim.command_path: THRUST_MAX-scaled thrust, yaw-angle loop, gyro low-pass, zero-thrust stop)
    # with the widened vehicle-file ranges, and action latency 0-3 control ticks (issue #19: a real
    # radio link's delay is not one number). On the full ranges from the first step, seed 0 was at
    # 0 % after 5 minutes (and spun at 2.7 rad/s); with v4's narrow ranges and the same command
    # path, 99.5 % after 2 minutes. So the ranges ramp from 0.25x to 1x over the first 500 k env
    # steps (train.loop.curriculum_realism), and body yaw rate costs 0.1 (rad/s)^2 a tick: through
    # the firmware's yaw-angle loop the policies otherwise learned to hover spinning.
    # v4 on today's physics: --set realism.latency_ticks_max=1 --set reward.yaw_rate=0
    # --set realism.randomization_scale=1. No v5 seed reached the bar (47.5 / 2.5 / 2.5 %).
    # Preset v6 (2026-12-06): v5's yaw-rate cost, no ramp, 0-1 ticks of latency, and training on the
    # vehicle file's ranges at 0.5x (sim.randomization scales each range about its centre: spin-down
    # 52-164 ms instead of 25-249 ms, spin-up 38-75 ms, rate gains x0.75-1.5 with 10 % P-only, noise
    # x0.5-2, 12.5 % uncompensated builds); evaluations keep 1x. Seed 0, 800 k env steps: 0.35x at
    # 18-26 % in the periodic evaluations up to 400 k (stopped there); 0.5x 61.3 % and 0.7x 67.6 % on
    # 1,000 fresh full-range episodes (one seed each: within the seed spread below), 0.5x chosen
    # for leading mid-run (70 % at 300 k) and on its own ranges (85.2 % against 0.7x's 80.3 %).
    # Seeds 0/1/2 at 0.5x, 800 k steps: 61.3 / 56.3 / 41.4 % on the full ranges (v5's 5-minute runs:
    # 37.4 / 3.1 / 1.7 %), 85.2 / 81.4 / 62.9 % on the 0.5x ranges it trained on, 14-22 % with a tick
    # of delay. It does NOT reach the bar either, and no v6 actor beats the committed v4 policy
    # (74.3 % / 91.1 % at 0.5x); it is the default because it learns the most of the tried recipes.
    # The tick of latency is what holds it back: with latency fixed at 1 it stays at 0-4 %; without
    # (--set realism.latency_ticks_max=0) seeds 0/1/2 reach 95.2 / 97.6 / 91.6 % on the 0.5x ranges
    # (72.1 / 73.8 / 66.3 % full) in 400 k steps, but 7-11 % with a tick, and are unflown in the twins.
    # v5: --set realism.randomization_scale=1 --set realism.latency_ticks_max=3
    # --set train.randomization_ramp_steps=500000.
    # Preset v7 (2026-12-06): v6 plus a CAPS perturbation 10x the sensor noise
    # (agent.smooth_noise_scale), the last 3 actions in the observation, and periodic evaluations
    # that delay each episode by 0-1 ticks (train.eval_latency_ticks_max) so "best" is chosen on
    # delayed flights too. Why: v6's actors are high-gain (tilt -> rate 28 /s, and -4.8 rad/s of
    # rate command per rad/s of measured rate, which multiplies the firmware's rate P gain about
    # six-fold); a tick of delay on 100-249 ms spin-down then rings (0-1 % success there). At the
    # sensor noise's size the CAPS term priced that gain at ~1e-3 against Q ~ 190; at 10x it brings
    # the gains to 17.5 /s and -1.6. A hand-written cascade on the same path loses 0.5 points to a
    # tick (train/baseline.py: 95.9 / 95.4 %). Seeds 0/1/2, 400 k env steps, 1,000 fresh full-range
    # episodes (eval seed 5), no delay / 1 tick: 79.0 / 87.2 / 80.1 % and 68.4 / 70.7 / 62.3 %;
    # v6 (800 k steps) 61.3 / 56.3 / 41.4 % and 14.1 / 21.9 / 18.5 %. Better on every seed, median
    # yaw rate 0.06-0.09 rad/s, but still short of the 95 % bar
    # (docs/experiments/2026-12-06-a-tick-of-delay.md).
    # Preset v8 (2026-12-06): v7 started from a teacher and trained on the full ranges. The
    # hand-written cascade (train/baseline.py, 95.4 % / 94.9 % with a tick, 1,000 episodes, seed 5)
    # is a function of the observation once the observation holds the altitude integral (layout
    # "integral"), so the run starts with 90 k env steps of DAgger from it (train.teacher), trains
    # the critic alone on them, then runs DDPG with a Q-filtered pull toward the teacher
    # (agent.bc_weight 2, TD3+BC's scale) at actor_lr 3e-4. With that start the actor no longer has
    # to discover flight on the hardest airframes, so it trains on the vehicle file's full ranges
    # (randomization_scale 1; v6's 0.5x existed because learning from scratch stalled there).
    # v7: --layout default --set realism.randomization_scale=0.5 --set agent.actor_lr=0.001
    # (a --layout other than the preset's drops the teacher settings).
    # v9 (2026-12-07): v8 at 2 updates per tick instead of the common 4. The loop was update-bound;
    # half the updates cost about as many env steps to the bar (150-250 k either way) at 1.15-1.25x
    # the env steps/s: 5 seeds side by side, median / max 39.5 / 48.2 s against 48.6 / 63.1 s
    # (docs/experiments/2026-12-07-update-cost.md). v8: --set train.updates_per_step=4.
    # v10 (2026-12-07 afternoon): v9 with twice the pull toward the teacher (bc_weight 4). Chosen on
    # seeds 5-9 against v9 (median 31.3 against 51.1 s, 100-350 k env steps against 200-300 k),
    # confirmed on seeds 10-14 (median 45.2 against 52.6 s, 1.16; better on 4 of 5); bc_weight 1
    # was worse (0.58), 8 no different (docs/experiments/2026-12-07-fused-tick.md).
    # v9: --set agent.bc_weight=2.
    # v11 (2026-12-07 evening): v10 exploring twice as hard (train.sigma_start 0.4, decaying to
    # 0.05 over 300 k env steps as before). Chosen on seeds 30-44 (0.1 / 0.3 / 0.4 / 0.5 side by
    # side: 0.53 / 1.32 / 1.09 / 1.02 against the next lower), confirmed on the ten fresh seeds
    # 45-54: median / max 30.5 / 41.6 s against v10's 32.1 / 55.2 s, faster on 8 of 10, 145 k env
    # steps to the bar on average against 175 k (docs/experiments/2026-12-07-exploration.md).
    # v10: --set train.sigma_start=0.2.
    # v12 (2026-12-07 night): v11 evaluating every 25 k env steps instead of 50 k. Its seeds were
    # passing between two evaluations and waited up to 50 k env steps (~11 s) to be seen; a
    # 100-throw evaluation of two candidates costs ~1 s. Seeds 0-4 side by side: every seed
    # confirmed at 125 k env steps instead of 150 k, median / max 27.6 / 30.6 s against 30.7 /
    # 33.4 s (1.11); fresh seeds 75-79: 24.2 / 27.0 s against 24.9 / 29.9 s (1.03), then ten fresh
    # seeds 80-89: 21.2 / 23.4 s against 22.5 / 26.5 s (1.06, faster on 8). The confirmed actors
    # on 1,000 more throws are as good (seeds 0-4: mean 96.0 against 96.1 %; 80-89: 95.4 / 95.5 %).
    # Every 12.5 k was slower again (0.93): evaluations cost what they saved
    # (docs/experiments/2026-12-07-evaluation-cadence.md). Once the bar is met, the common 50 k
    # again: a 5-minute run (~1.3 M env steps) would otherwise evaluate ~50 times at 1-1.7 s each.
    # v11: --set train.eval_every_steps=50000.
    ("crazyflie", "ctbr"): {"version": 12, "layout": "integral", "action_history": 3,
                            "train": {"yaw_symmetry": True, "eval_latency_ticks_max": 1, "updates_per_step": 2.0,
                                      "teacher": "cascade", "teacher_steps": 90_000, "sigma_start": 0.4,
                                      "eval_every_steps": 25_000, "eval_every_steps_after_target": 50_000},
                            "agent": {"smooth_noise_scale": 10.0, "bc_weight": 4.0, "actor_lr": 3e-4},
                            "reward": {"yaw_rate": 0.1}, "realism": {"randomization_scale": 1.0}},
    # Crazyflie motors (preset v4, 2026-12-06, issue #23): v3 (73.8 % at best, 2 M steps at 100 Hz)
    # with v8's machinery, at 250 Hz. A motor-level policy is its own rate loop; a hand-written one
    # (train.baseline.ObservedIntegralMotorCascade, the teacher) holds 95 % of seed 21's throws at
    # 250 Hz and 25-63 % at 100 Hz, where the gains that settle a throw in time ring with a tick of
    # delay (docs/experiments/2026-12-06-motor-teacher.md). 250 Hz divides the app's 1 kHz loop.
    # The teacher flies 150 k env steps (600 s of flight at 250 Hz, 90 k being 900 s at 100 Hz), and
    # the actor is fitted to it with 8,000 batches (v8's 2,000 left a clone at 61 % in the periodic
    # evaluation, 8,000 at 81 %). Seed 0, 1 M env steps, 1,000 fresh episodes (seed 5): 91.1 % / 83.6 %
    # with a tick; the teacher 92.5 / 82.6 %: DDPG holds the teacher's level, it does not pass it.
    # v5 (2026-12-06 evening): v4 from the re-searched teacher gains (train.baseline.TEACHER_GAINS).
    ("crazyflie", "motors"): {"version": 5, "control_rate_hz": 250.0, "layout": "integral", "action_history": 3,
                              "train": {"yaw_symmetry": True, "eval_latency_ticks_max": 1,
                                        "teacher": "cascade", "teacher_steps": 150_000, "teacher_bc_updates": 8_000},
                              "agent": {"smooth_noise_scale": 10.0, "bc_weight": 2.0, "actor_lr": 3e-4},
                              "reward": {"yaw_rate": 0.1}},
    # x500 ctbr preset v8 (2026-12-06): v7 started from the cascade teacher on the integral layout
    # (train.baseline.TEACHER_GAINS: a stiffer vertical loop and a cap on the downward demand, 89.2 %
    # alone), half the Crazyflie's pull (bc_weight 1), actor_lr 3e-4 and 1.5x training ranges. Seed 0,
    # 1 M steps: 94.5 % of 1,000 fresh episodes (92.1 % with a tick) where v7 gave the committed 79.8 %
    # (docs/experiments/2026-12-06-x500-v8.md). v7: --layout default --set realism.randomization_scale=1.25
    # (the default layout drops the teacher).
    # v9 (2026-12-06 evening): v8 with a teacher whose yaw-rate setpoint yields to a saturated
    # collective (train.baseline.TEACHER_GAINS yaw_yield_thrust_fraction 0.8; PX4's allocator takes
    # collective to stop a throw's yaw spin): 92.2 -> 94.7 % on seed 31 (seed 0), 95.3 % on fresh
    # seeds (docs/experiments/2026-12-06-x500-yaw-yield.md). The settings below are v8's.
    # v10 (2026-12-07): v9 from a teacher with tilt-rate damping (TEACHER_GAINS k_omega; 94.6 % alone
    # on fresh seeds where v9's teacher gave 89 %): the clone no longer loses 5-10 points to DDPG's
    # first updates; the time to a confirmed 95 % is the same (side by side with v9, 3 seeds: ratio of
    # medians 1.01; docs/experiments/2026-12-07-x500-tilt-rate-damping.md). v9's teacher:
    # --set 'train.teacher_gains={"kp": 8, "kd": 4, "ki": 15, "k_tilt": 7, "k_omega": 0, "max_tilt_rad": 0.6,
    # "kp_z": 14, "kd_z": 6, "max_down_acc_mps2": 4}'
    # v11 (2026-12-07): v10 observing its last three actions (the Crazyflie ctbr preset's history).
    # Side by side with v10 (quadhil bench train --vehicle x500 --to-success 0.95 --seeds 3
    # --max-seconds 300 --action-history 3 --baseline-action-history 1): 3 of 3 at a confirmed 95 %
    # in 117.7 / 225.3 / 139.2 s against 2 of 3 (seed 0 not in 300 s, 247.1 / 175.9 s), ratio of
    # medians 1.78; last actors after 500 k env steps, 4 seeds, 1,000 fresh throws of seeds 31 and 41:
    # 95.3 % mean against 94.7 % (docs/experiments/2026-12-07-x500-ceiling.md). v10: --action-history 1.
    # v12 (2026-12-07): v11 at 2 updates per tick (the common recipe's 4 kept its loop waiting on
    # the update 80 % of the time): +45-55 % env steps/s for about the same env steps to the bar;
    # 5 seeds side by side, median / max 99.2 / 164.0 s against 146.9 / 214.0 s. 1 per tick needed
    # 650 k-1.9 M env steps (median 192.9 s, 3 seeds). v11: --set train.updates_per_step=4.
    ("x500", "ctbr"): {"version": 12, "control_rate_hz": 50.0, "layout": "integral", "action_history": 3,
                       "agent": {"critic_layer_norm": True, "bc_weight": 1.0, "actor_lr": 3e-4},
                       "train": {"n_step": 8, "yaw_symmetry": True, "teacher": "cascade", "teacher_steps": 90_000,
                                 "updates_per_step": 2.0},
                       "realism": {"randomization_scale": 1.5}},
}


def default_control_rate_hz(vehicle_id: str, action_mode: str) -> float:
    """The control rate a run of ``vehicle_id`` / ``action_mode`` uses unless told otherwise (Hz)."""
    return float(PER_VEHICLE_MODE.get((vehicle_id, action_mode), {}).get("control_rate_hz", REFERENCE_RATE_HZ))


# What a teacher brings with it (every train.teacher* setting, and the pull toward it); a run on
# another layout than the preset's drops these.
TEACHER_AGENT_KEYS = ("bc_weight",)


def default_layout(vehicle_id: str, action_mode: str) -> str:
    """The observation layout a run of ``vehicle_id`` / ``action_mode`` uses unless told otherwise."""
    return PER_VEHICLE_MODE.get((vehicle_id, action_mode), {}).get("layout", "default")


def without_teacher(p: dict) -> dict:
    """Preset ``p`` with its teacher settings removed (a run on a layout the teacher cannot read)."""
    return {**p, "train": {k: v for k, v in p["train"].items() if not k.startswith("teacher")},
            "agent": {k: v for k, v in p["agent"].items() if k not in TEACHER_AGENT_KEYS}}


def default_action_history(vehicle_id: str, action_mode: str) -> int | None:
    """How many past actions a run of ``vehicle_id`` / ``action_mode`` observes unless told
    otherwise (None: the layout's own, 1 for ``default``)."""
    return PER_VEHICLE_MODE.get((vehicle_id, action_mode), {}).get("action_history")


def default_state_history(vehicle_id: str, action_mode: str) -> int | None:
    """How many past ticks of velocity and body-rate estimates a run of ``vehicle_id`` /
    ``action_mode`` observes unless told otherwise (None: none)."""
    return PER_VEHICLE_MODE.get((vehicle_id, action_mode), {}).get("state_history")


# The recipe was measured at 100 Hz. At another control rate the discount and the n-step window
# keep the same horizon in seconds (1 s and 50 ms): gamma = 0.99 ** (100 / rate), n = 5 * rate / 100.
# The x500 px4-nn policy (200 Hz, gamma 0.995, 10-step targets) was trained that way.
REFERENCE_RATE_HZ = 100.0
# Recipe versions ("version" above): v3 the common recipe (crazyflie motors), v4 (x500) the
# 2 M replay, v5 (x500 ctbr) 50 Hz and a LayerNorm critic, v6 (x500 ctbr) 80 ms targets and 1.25x
# randomization in training, v7 (x500 ctbr) quarter-turn augmentation; crazyflie ctbr v4 is v3
# with quarter turns, v5 v4 with latency 0-3 and a ramp, v6 v4 with 0.5x ranges and a yaw-rate cost,
# v7 v6 with a CAPS perturbation 10x the sensor noise, 3 past actions and delayed periodic evaluations,
# v8 v7 with the integral layout, a cascade teacher, actor_lr 3e-4 and the full ranges; crazyflie
# motors v4 is v3 at 250 Hz with crazyflie ctbr v8's machinery (a motor-level cascade teacher), v5
# v4 with that teacher's re-searched gains;
# x500 ctbr v8 is v7 with that machinery, its own teacher gains, bc_weight 1 and 1.5x ranges.
# x500 ctbr v9 is v8 with a teacher that lets the yaw spin be while the collective saturates;
# crazyflie ctbr v9 and x500 ctbr v12 make 2 updates per tick of 16 envs, not the common 4;
# crazyflie ctbr v10 pulls toward its teacher twice as hard as v9; v11 explores twice as hard as v10;
# v12 evaluates twice as often as v11.
BASE_VERSION = 3


def preset(vehicle_id: str, action_mode: str, control_rate_hz: float = REFERENCE_RATE_HZ) -> dict:
    """{'name', 'train', 'agent', 'reward', 'realism'}: overrides of TrainConfig, AgentConfig,
    RewardWeights and RealismConfig, for a policy running at ``control_rate_hz``."""
    own = PER_VEHICLE.get(vehicle_id, {})
    mode = PER_VEHICLE_MODE.get((vehicle_id, action_mode), {})
    # every section layers the same way: common recipe, then the vehicle's, then its mode's
    out = {section: {**COMMON[section], **own.get(section, {}), **mode.get(section, {})} for section in COMMON}
    ratio = control_rate_hz / REFERENCE_RATE_HZ
    if ratio != 1.0:
        out["agent"]["gamma"] = round(0.99 ** (1.0 / ratio), 4)
        out["train"]["n_step"] = max(1, int(round(out["train"]["n_step"] * ratio)))
    return {"name": f"{vehicle_id}-{action_mode}-v{mode.get('version', own.get('version', BASE_VERSION))}", **out}
