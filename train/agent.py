"""DDPG agent (Keras 3 on TensorFlow), with optional TD3 refinements.

Critic: minimize (Q(s, a) - y)^2 with y = r + gamma * m * Q'(s', mu'(s')), where m = 0 only
when the episode *terminated* (crash, out of bounds) and 1 otherwise; on a time-limit truncation
s' is the ended episode's last observation and the target bootstraps through it.

Actor: two interchangeable forms of the same gradient (``actor_loss`` flag):

* ``"q"``: loss = -mean_i Q(s_i, mu(s_i)), differentiated w.r.t. the actor's variables only.
* ``"action_gradients"`` (the form of older Keras DDPG code): g_i = dQ/da at a = mu(s_i) is asked
  of the critic and held constant; loss = -mean_i sum_j g_ij * mu_j(s_i).

Why a product with a constant is a loss at all: by the chain rule the deterministic policy
gradient is grad_w J = mean_i (d mu(s_i)/dw)^T dQ/da|_{a=mu(s_i)}. The function
L(w) = -mean_i g_i . mu_w(s_i), with g_i frozen, has exactly the gradient -mean_i (d mu/dw)^T g_i,
so one step of gradient descent on L is one step of ascent on Q along the policy. Its *value* means
nothing; only its gradient does. Freezing g (and updating only the actor's variables) is also what
stops the actor from "improving" by changing the critic.

Smoothness (``smooth_weight`` > 0; the spatial term of CAPS, Mysore et al. 2021, "Regularizing
Action Policies for Smooth Control with Reinforcement Learning"): both forms add
``smooth_weight * mean_i |mu(s_i) - mu(s_i + eps_i)|^2`` with eps_i drawn at the size of the
vehicle's sensor noise. Without it DDPG learns high-gain policies that turn estimate noise into
bang-bang commands (measured on the x500: the action changed by 0.8 of its range per tick in
hover with sensor noise, 0.07 without), which saturates motors and limit-cycles on heavy airframes.

Privileged critic (``privileged_critic``; asymmetric actor-critic, Pinto et al. 2018, as RLtools
does): the critic also sees the episode's hidden airframe (:meth:`sim.env.HoverTask.privileged_state`:
mass, thrust gains, inertia, motor lag, CoM offset, latency), the actor does not. The replay stores
[observation | privileged] rows; the actor reads the first ``spec.obs_dim`` columns. The actor's
gradient is still dQ/da at a = mu(s), now for the airframe the sample came from, so its average
over the replay is the gradient of the expected return over the randomized airframes, without the
critic having to guess the airframe from a state that does not show it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import keras
import numpy as np
import tensorflow as tf

from sim.contract import PolicySpec
from train.networks import build_actor, build_critic

ACTOR_LOSSES = ("q", "action_gradients")
# tf.random.stateless_normal algorithms the compiled update may draw its noise with (AgentConfig.noise_rng)
NOISE_RNGS = ("threefry", "philox", "auto_select")


@dataclass(frozen=True)
class AgentConfig:
    """Hyper-parameters of the agent (all of them end up in config.json)."""

    actor_hidden: tuple[int, ...] = (64, 64)
    critic_hidden: tuple[int, ...] = (128, 128)
    actor_lr: float = 1e-3
    critic_lr: float = 1e-3
    gamma: float = 0.99
    tau: float = 0.005
    actor_loss: str = "q"
    twin_critics: bool = False  # TD3: min of two critics in the target
    target_noise: float = 0.0  # TD3: target policy smoothing std (0 = off)
    target_noise_clip: float = 0.5
    policy_delay: int = 1  # TD3: actor/target update every k critic updates
    reward_scale: float = 1.0
    smooth_weight: float = 0.0  # CAPS spatial smoothness weight (0 = off)
    smooth_noise_scale: float = 1.0  # perturbation std as a multiple of the sensor noise std
    jit: bool = True  # XLA-compile the update (about 1.5-2x the updates/s on a small CPU)
    privileged_critic: bool = False  # critic also sees the hidden airframe (module docstring)
    critic_layer_norm: bool = False  # LayerNorm before each hidden ReLU of the critic(s)
    # > 0 with a teacher (train.teacher): the actor is also pulled toward the teacher's action,
    # bc_weight * mean|Q| * |mu(s) - a_teacher(s)|^2 (TD3+BC's scale, Fujimoto & Gu 2021), on the
    # samples where the critic rates the teacher's action higher (the Q filter of Nair et al. 2018)
    bc_weight: float = 0.0
    # > 0 with privileged_critic: the actor's last hidden layer also feeds a linear head trained to
    # predict the hidden airframe (the privileged columns), airframe_aux_weight * mean|Q| * MSE, so
    # its features learn to identify the airframe from what the observation holds (a state history);
    # the head is not part of the exported actor
    airframe_aux_weight: float = 0.0
    # the algorithm of the noise the compiled update draws itself (train.augment_in_graph):
    # threefry since 2026-12-07; "auto_select" (TensorFlow's default) is the stream before, at
    # 4.4x threefry's cost on this project's CPU (DDPGAgent.drawn_noise)
    noise_rng: str = "threefry"
    # > 0: keep a slow Polyak average of the actor (average <- (1 - tau) average + tau actor after
    # every actor step) beside the target actor, for the trainer to evaluate as one more candidate:
    # DDPG's iterates wander around the level the critic supports, and an average over a few
    # thousand updates sits nearer its centre (weight averaging in RL: Nikishin et al. 2018). Only
    # evaluated, never acted with or bootstrapped from, so it does not change what the run learns.
    average_tau: float = 0.0

    def to_dict(self) -> dict:
        """Plain-JSON dict."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "AgentConfig":
        """Inverse of :meth:`to_dict` (unknown keys ignored). A run saved before ``noise_rng``
        existed drew its in-graph noise with TensorFlow's default, and resumes drawing it so."""
        fields = cls.__dataclass_fields__
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in fields}
        kw.setdefault("noise_rng", "auto_select")
        return cls(**kw)


def observation_noise_std(spec: PolicySpec, sensor_noise, scale: float = 1.0) -> np.ndarray:
    """(obs_dim,) float32 std of the sensor noise on each raw observation entry.

    ``sensor_noise`` is a :class:`sim.vehicle.SensorNoise` (m, m/s, rad, rad/s); rotation-matrix
    entries move by about the attitude noise in rad; past velocities and body rates (state history)
    carry the noise of their tick; action history is exact (std 0).
    """
    per_field = {"position_error_w": sensor_noise.position_m, "rotation_matrix_wb": sensor_noise.attitude_rad,
                 "rotation_matrix_rows01_wb": sensor_noise.attitude_rad, "velocity_w": sensor_noise.velocity_mps,
                 "omega_b": sensor_noise.gyro_rad_s, "velocity_history_w": sensor_noise.velocity_mps,
                 "omega_history_b": sensor_noise.gyro_rad_s}
    std = np.concatenate([np.full(f.size, per_field.get(f.name, 0.0)) for f in spec.observation])
    return (scale * std).astype(np.float32)


def _smoothness(actor: keras.Model, obs: tf.Tensor, mu: tf.Tensor, obs_noise) -> tf.Tensor:
    """mean_i |mu(s_i) - mu(s_i + eps_i)|^2, differentiable w.r.t. the actor."""
    mu_noisy = actor(obs + obs_noise, training=True)
    return tf.reduce_mean(tf.reduce_sum(tf.square(mu - mu_noisy), axis=1))


def _q_filtered_bc(critic: keras.Model, critic_obs: tf.Tensor, mu: tf.Tensor, teacher_act: tf.Tensor) -> tf.Tensor:
    """mean|Q| * mean_i [Q(s_i, a_teacher) > Q(s_i, mu_i)] |mu_i - a_teacher_i|^2; only mu is
    differentiated (the filter and the scale are constants of the step)."""
    q_mu = critic([critic_obs, mu], training=False)[:, 0]
    q_teacher = critic([critic_obs, teacher_act], training=False)[:, 0]
    keep = tf.stop_gradient(tf.cast(q_teacher > q_mu, tf.float32))
    scale = tf.stop_gradient(tf.reduce_mean(tf.abs(q_mu)))
    return scale * tf.reduce_mean(keep * tf.reduce_sum(tf.square(mu - teacher_act), axis=1))


def _airframe_aux(aux: keras.Model, obs: tf.Tensor, critic_obs: tf.Tensor, q_scale: tf.Tensor) -> tf.Tensor:
    """q_scale * mean squared error of ``aux``'s airframe prediction against the privileged columns
    of ``critic_obs`` (those after the observation)."""
    target = tf.stop_gradient(critic_obs[:, obs.shape[-1]:])
    return tf.stop_gradient(q_scale) * tf.reduce_mean(tf.square(aux(obs, training=True) - target))


def airframe_r2(aux: keras.Model, critic_obs: tf.Tensor, obs_dim: int) -> tf.Tensor:
    """Share of the privileged columns' variance over the batch that ``aux`` predicts from the
    observation (1 - squared error / squared deviation from the batch mean, all columns pooled):
    1 is a head that knows the airframe, 0 one that knows only its average, < 0 worse."""
    target = critic_obs[:, obs_dim:]
    err = tf.reduce_sum(tf.square(aux(critic_obs[:, :obs_dim], training=False) - target))
    dev = tf.reduce_sum(tf.square(target - tf.reduce_mean(target, axis=0, keepdims=True)))
    return 1.0 - err / tf.maximum(dev, 1e-12)


def actor_gradients(actor: keras.Model, critic: keras.Model, obs: tf.Tensor, form: str,
                    smooth_weight: float = 0.0, obs_noise: tf.Tensor | None = None,
                    critic_obs: tf.Tensor | None = None, bc_weight: float = 0.0,
                    teacher_act: tf.Tensor | None = None, aux: keras.Model | None = None,
                    aux_weight: float = 0.0):
    """(loss, gradients w.r.t. actor.trainable_variables) of the DDPG actor objective, either form.

    With ``smooth_weight`` > 0 and ``obs_noise`` (B, obs_dim) perturbations of ``obs``, both forms
    add the same smoothness penalty (module docstring). ``critic_obs`` (B, obs_dim + privileged)
    is what a privileged critic reads instead of ``obs``. With ``bc_weight`` > 0 and
    ``teacher_act`` (B, 4), both add the Q-filtered pull toward the teacher (AgentConfig.bc_weight).
    With ``aux_weight`` > 0 and ``aux`` (the actor's trunk plus an airframe head), both add the
    airframe prediction loss (AgentConfig.airframe_aux_weight), and the gradients run over
    actor.trainable_variables followed by the head's own variables."""
    smooth = smooth_weight > 0 and obs_noise is not None
    bc = bc_weight > 0 and teacher_act is not None
    use_aux = aux_weight > 0 and aux is not None
    if critic_obs is None:
        critic_obs = obs
    variables = list(actor.trainable_variables)
    if use_aux:
        mine = {id(v) for v in variables}
        variables += [v for v in aux.trainable_variables if id(v) not in mine]
    if form == "q":
        with tf.GradientTape() as tape:
            mu = actor(obs, training=True)
            q = critic([critic_obs, mu], training=False)
            loss = -tf.reduce_mean(q)
            if smooth:
                loss += smooth_weight * _smoothness(actor, obs, mu, obs_noise)
            if bc:
                loss += bc_weight * _q_filtered_bc(critic, critic_obs, mu, teacher_act)
            if use_aux:
                loss += aux_weight * _airframe_aux(aux, obs, critic_obs, tf.reduce_mean(tf.abs(q)))
        return loss, tape.gradient(loss, variables)
    if form == "action_gradients":
        a = actor(obs, training=False)
        with tf.GradientTape() as inner:
            inner.watch(a)
            q_sum = tf.reduce_sum(critic([critic_obs, a], training=False))  # sum: per-sample dQ_i/da_i
        dq_da = tf.stop_gradient(inner.gradient(q_sum, a))
        with tf.GradientTape() as tape:
            mu = actor(obs, training=True)
            loss = -tf.reduce_mean(tf.reduce_sum(dq_da * mu, axis=1))
            if smooth:
                loss += smooth_weight * _smoothness(actor, obs, mu, obs_noise)
            if bc:
                loss += bc_weight * _q_filtered_bc(critic, critic_obs, mu, teacher_act)
            if use_aux:
                q_scale = tf.reduce_mean(tf.abs(critic([critic_obs, mu], training=False)))
                loss += aux_weight * _airframe_aux(aux, obs, critic_obs, q_scale)
        return loss, tape.gradient(loss, variables)
    raise ValueError(f"actor_loss must be one of {ACTOR_LOSSES}, got {form!r}")


class DDPGAgent:
    """Actor, critic(s), their targets and optimizers; :meth:`update` runs K gradient steps."""

    def __init__(self, spec: PolicySpec, config: AgentConfig = AgentConfig(), privileged_dim: int = 0):
        """``privileged_dim``: width of the critic-only columns after the observation in every
        replay row (required > 0 with ``config.privileged_critic``, 0 without)."""
        if config.actor_loss not in ACTOR_LOSSES:
            raise ValueError(f"actor_loss must be one of {ACTOR_LOSSES}, got {config.actor_loss!r}")
        if config.noise_rng not in NOISE_RNGS:
            raise ValueError(f"noise_rng must be one of {NOISE_RNGS}, got {config.noise_rng!r}")
        if config.privileged_critic != (privileged_dim > 0):
            raise ValueError(f"privileged_critic={config.privileged_critic} needs privileged_dim "
                             f"{'> 0' if config.privileged_critic else '= 0'}, got {privileged_dim}")
        if config.airframe_aux_weight > 0 and not config.privileged_critic:
            raise ValueError("airframe_aux_weight > 0 learns from the replay's airframe columns: "
                             "set privileged_critic too")
        self.spec, self.config = spec, config
        self.privileged_dim = int(privileged_dim)
        c = config
        self.actor = build_actor(spec, hidden=c.actor_hidden)
        self.actor_target = build_actor(spec, hidden=c.actor_hidden, name="actor_target")
        self.critics = [build_critic(spec, hidden=c.critic_hidden, name=f"critic_{i}", privileged_dim=privileged_dim,
                                     layer_norm=c.critic_layer_norm)
                        for i in range(2 if c.twin_critics else 1)]
        self.critic_targets = [build_critic(spec, hidden=c.critic_hidden, name=f"critic_target_{i}",
                                            privileged_dim=privileged_dim, layer_norm=c.critic_layer_norm)
                               for i in range(len(self.critics))]
        self.actor_average = build_actor(spec, hidden=c.actor_hidden, name="actor_average") if c.average_tau > 0 else None
        self.reset_actor_followers()
        for cr, ct in zip(self.critics, self.critic_targets):
            ct.set_weights(cr.get_weights())
        # the airframe head (AgentConfig.airframe_aux_weight) on the actor's last hidden layer, and
        # the actor's trunk with it as one model
        self.aux_head, self.aux, self.aux_opt = None, None, None
        if c.airframe_aux_weight > 0:
            self.aux_head = keras.layers.Dense(privileged_dim, name="airframe_head")
            self.aux = keras.Model(self.actor.inputs[0], self.aux_head(self.actor.layers[-2].output),
                                   name="actor_airframe_aux")
            self.aux_opt = keras.optimizers.Adam(c.actor_lr)
            self.aux_opt.build(self.aux_head.trainable_variables)
        self.actor_opt = keras.optimizers.Adam(c.actor_lr)
        self.critic_opt = keras.optimizers.Adam(c.critic_lr)
        self.critic_vars = [v for cr in self.critics for v in cr.trainable_variables]
        self.actor_opt.build(self.actor.trainable_variables)
        self.critic_opt.build(self.critic_vars)
        self.n_updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="n_updates")
        # False: updates train the critic(s) only (the warm start's critic pass, train.teacher)
        self.actor_enabled = tf.Variable(True, trainable=False, name="actor_enabled")
        self.bc_opt = None  # the behaviour-cloning optimizer and its compiled step, made on first use
        self._bc_fn = None
        self._numpy_plan = None  # numpy_actor's frozen normalization and variable handles, made on first use
        self._obs_noise_std = None  # (obs_dim,) for in-graph smoothness noise (set_augmentation)
        self._turn_index = None  # column map of an in-graph quarter turn (set_augmentation)
        self._update_fn = tf.function(self._update_many, reduce_retracing=True, jit_compile=config.jit,
                                      autograph=False)

    # --- one gradient step ------------------------------------------------------------------

    def td_targets(self, rew, next_obs, mask, tnoise=None):
        """y = scale * r + gamma * mask * Q'(s', mu'(s') [+ clipped noise]), min over twin targets.
        ``mask`` is 0 for terminated transitions (no bootstrap) and 1 for truncated or running ones."""
        c = self.config
        next_a = self.actor_target(next_obs[:, :self.spec.obs_dim], training=False)
        if c.target_noise > 0 and tnoise is not None:
            next_a = tf.clip_by_value(next_a + tnoise, -1.0, 1.0)
        q_next = [ct([next_obs, next_a], training=False)[:, 0] for ct in self.critic_targets]
        q_next = q_next[0] if len(q_next) == 1 else tf.minimum(q_next[0], q_next[1])
        return tf.stop_gradient(c.reward_scale * rew + c.gamma * mask * q_next)

    def _critic_step(self, obs, act, rew, next_obs, mask, tnoise):
        y = self.td_targets(rew, next_obs, mask, tnoise)
        with tf.GradientTape() as tape:
            qs = [cr([obs, act], training=True)[:, 0] for cr in self.critics]
            loss = tf.add_n([tf.reduce_mean(tf.square(q - y)) for q in qs])
        grads = tape.gradient(loss, self.critic_vars)
        self.critic_opt.apply_gradients(zip(grads, self.critic_vars))
        return loss, tf.reduce_mean(qs[0])

    def _soft_update(self):
        tau = self.config.tau
        pairs = [(self.actor_target, self.actor, tau)] + [(ct, cr, tau) for ct, cr in zip(self.critic_targets, self.critics)]
        if self.actor_average is not None:
            pairs.append((self.actor_average, self.actor, self.config.average_tau))
        for tgt, src, rate in pairs:
            for t, s in zip(tgt.weights, src.weights):
                t.assign(t * (1.0 - rate) + s * rate)

    def reset_actor_followers(self) -> None:
        """Set the target actor (and the averaged actor, AgentConfig.average_tau) equal to the
        actor: after its weights were set outside the update (initialization, cloning)."""
        weights = self.actor.get_weights()
        self.actor_target.set_weights(weights)
        if self.actor_average is not None:
            self.actor_average.set_weights(weights)

    def set_augmentation(self, obs_noise_std: np.ndarray | None = None, turn_pairs: tuple | None = None) -> None:
        """What :meth:`update` makes inside the compiled step when it is given ``noise_seeds`` and
        ``turns``: smoothness noise of std ``obs_noise_std`` (obs_dim,) and quarter turns of the
        column pairs ``turn_pairs`` (:func:`train.symmetry.turn_pairs`). Call before the first update."""
        self._obs_noise_std = None if obs_noise_std is None else np.asarray(obs_noise_std, np.float32)
        if turn_pairs is None:
            self._turn_index = None
            return
        a, b = (list(x) for x in turn_pairs)
        width = self.spec.obs_dim + self.privileged_dim
        index = list(range(width))  # gather map over [row | turned a columns | turned b columns]
        for i, col in enumerate(a):
            index[col] = width + i
        for i, col in enumerate(b):
            index[col] = width + len(a) + i
        self._turn_index = (a, b, index)

    def _turn(self, rows, turns):
        """rows (B, W) turned by ``turns`` (B,) quarter turns, as train.symmetry.quarter_turn does
        (the same products, so the same floats)."""
        a, b, index = self._turn_index
        k = tf.math.floormod(tf.cast(turns, tf.int32), 4)
        c = tf.gather(tf.constant([1.0, 0.0, -1.0, 0.0]), k)[:, None]
        s = tf.gather(tf.constant([0.0, 1.0, 0.0, -1.0]), k)[:, None]
        xa, xb = tf.gather(rows, a, axis=1), tf.gather(rows, b, axis=1)
        return tf.gather(tf.concat([rows, c * xa - s * xb, s * xa + c * xb], axis=1), index, axis=1)

    @property
    def noise_algorithm(self) -> str:
        """The stateless algorithm :meth:`drawn_noise` uses: ``config.noise_rng``, except that
        TensorFlow has a threefry kernel only under XLA (the plain CPU kernel refuses its counter),
        so an update that is not compiled (``config.jit`` false) draws with philox instead."""
        if self.config.noise_rng == "threefry" and not self.config.jit:
            return "philox"
        return self.config.noise_rng

    def drawn_noise(self, seeds, batch: int):
        """(TD3 target noise (B, 4) clipped, smoothness noise (B, obs_dim)) from ``seeds`` (2, 2)
        int, with tf.random.stateless_normal and ``config.noise_rng``; None for a noise this agent
        does not use. Threefry by default: on this project's CPU it draws a (128, 45) smoothness
        noise in 77 us where TensorFlow's default algorithm takes 336 us, and that draw was a fifth
        of an x500 update (docs/experiments/2026-12-07-update-cost.md)."""
        c = self.config
        alg = self.noise_algorithm
        tnoise = snoise = None
        if c.target_noise > 0:
            tnoise = tf.clip_by_value(c.target_noise * tf.random.stateless_normal([batch, 4], seeds[0], alg=alg),
                                      -c.target_noise_clip, c.target_noise_clip)
        if c.smooth_weight > 0 and self._obs_noise_std is not None:
            snoise = tf.random.stateless_normal([batch, self.spec.obs_dim], seeds[1], alg=alg) * self._obs_noise_std
        return tnoise, snoise

    def _update_many(self, obs, act, rew, next_obs, mask, tnoise, snoise, turns=None, seeds=None, teacher_act=None):
        """K gradient steps on K pre-sampled batches (leading axis K). Returns mean losses/Q.
        ``turns`` (K, B) / ``seeds`` (K, 2, 2): turn the rows and draw the noise in here
        (:meth:`set_augmentation`) instead of taking them from the host. ``teacher_act`` (K, B, 4):
        the teacher's actions for ``obs`` (body-frame, so a quarter turn leaves them unchanged).

        Written with tf.while_loop and tf.cond and compiled with autograph off: autograph's
        rewriting of this method and every helper it calls took ~0.7 s of each run's first update
        call (docs/experiments/2026-12-08-tracing-layernorm-delay.md); the graph is the same."""
        k = tf.shape(obs)[0]
        zero = tf.constant(0.0)

        def actor_step(obs_i, snoise_i, teacher_i):
            al, grads = actor_gradients(self.actor, self.critics[0], obs_i[:, :self.spec.obs_dim],
                                        self.config.actor_loss, self.config.smooth_weight, snoise_i,
                                        critic_obs=obs_i, bc_weight=self.config.bc_weight,
                                        teacher_act=teacher_i, aux=self.aux, aux_weight=self.config.airframe_aux_weight)
            n_actor_vars = len(self.actor.trainable_variables)
            # how well the head predicts this batch's airframe, before the step (TensorBoard's airframe/r2)
            r2 = zero if self.aux is None else airframe_r2(self.aux, obs_i, self.spec.obs_dim)
            self.actor_opt.apply_gradients(zip(grads[:n_actor_vars], self.actor.trainable_variables))
            if self.aux is not None:
                self.aux_opt.apply_gradients(zip(grads[n_actor_vars:], self.aux_head.trainable_variables))
            return al, tf.constant(1.0), r2

        def policy_step(obs_i, snoise_i, teacher_i):
            al, n, r2 = tf.cond(self.actor_enabled, lambda: actor_step(obs_i, snoise_i, teacher_i),
                                lambda: (zero, zero, zero))
            self._soft_update()
            return al, n, r2

        def body(i, closs, aloss, qmean, n_actor, r2_sum):
            obs_i, next_obs_i, tnoise_i, snoise_i = obs[i], next_obs[i], tnoise[i], snoise[i]
            if turns is not None:
                obs_i, next_obs_i = self._turn(obs_i, turns[i]), self._turn(next_obs_i, turns[i])
            if seeds is not None:
                drawn_t, drawn_s = self.drawn_noise(seeds[i], tf.shape(obs_i)[0])
                tnoise_i = tnoise_i if drawn_t is None else drawn_t
                snoise_i = snoise_i if drawn_s is None else drawn_s
            teacher_i = None if teacher_act is None else teacher_act[i]
            cl, qm = self._critic_step(obs_i, act[i], rew[i], next_obs_i, mask[i], tnoise_i)
            with tf.control_dependencies([self.n_updates.assign_add(1)]):
                due = tf.equal(self.n_updates % self.config.policy_delay, 0)
            al, n, r2 = tf.cond(due, lambda: policy_step(obs_i, snoise_i, teacher_i), lambda: (zero, zero, zero))
            return i + 1, closs + cl, aloss + al, qmean + qm, n_actor + n, r2_sum + r2

        _, closs, aloss, qmean, n_actor, r2_sum = tf.while_loop(lambda i, *_: i < k, body,
                                                                (tf.constant(0), zero, zero, zero, zero, zero))
        kf = tf.cast(k, tf.float32)
        r2 = tf.where(n_actor > 0, r2_sum / tf.maximum(n_actor, 1.0), float("nan"))  # no actor step: no figure
        return closs / kf, aloss / tf.maximum(n_actor, 1.0), qmean / kf, r2

    def update(self, obs, act, rew, next_obs, mask, tnoise=None, snoise=None, turns=None, noise_seeds=None,
               teacher_act=None) -> dict:
        """Run K updates on arrays shaped (K, B, ...); ``obs``/``next_obs`` rows are
        [observation | privileged] (obs_dim + privileged_dim). ``tnoise`` (K, B, 4) is the TD3
        target smoothing noise (already clipped) and ``snoise`` (K, B, obs_dim) the smoothness
        perturbation of the observation, both drawn by the caller's numpy Generator so a run is
        reproducible. Or, cheaper for the host: ``noise_seeds`` (K, 2, 2) int, drawn the same way,
        seed the same noises inside the compiled step (tf.random.stateless_normal, so still
        reproducible), and ``turns`` (K, B) int quarter-turns both ends of each transition there
        (:meth:`set_augmentation`). ``teacher_act`` (K, B, 4): the teacher's actions for ``obs``, for
        AgentConfig.bc_weight. Returns {'critic_loss', 'actor_loss', 'q_mean'} as floats, and with the
        airframe head (AgentConfig.airframe_aux_weight) 'airframe_r2', its mean :func:`airframe_r2` over
        the K batches' actor steps, each taken before that step (NaN when no actor step ran)."""
        width = self.spec.obs_dim + self.privileged_dim
        if obs.shape[-1] != width or next_obs.shape[-1] != width:
            raise ValueError(f"replay rows must be obs_dim + privileged_dim = {width} wide, "
                             f"got {obs.shape[-1]} and {next_obs.shape[-1]}")
        if noise_seeds is not None and self.config.smooth_weight > 0 and self._obs_noise_std is None:
            raise ValueError("in-graph smoothness noise needs set_augmentation(obs_noise_std=...) first")
        # unused placeholders where the compiled step draws the noise itself
        placeholder = (obs.shape[0], 1, 1) if noise_seeds is not None else None
        if tnoise is None:
            tnoise = np.zeros(placeholder or act.shape, dtype=np.float32)
        if snoise is None:
            snoise = np.zeros(placeholder or obs.shape[:-1] + (self.spec.obs_dim,), dtype=np.float32)
        if turns is not None and self._turn_index is None:
            raise ValueError("turns need set_augmentation(turn_pairs=...) first")
        extra = {}
        if turns is not None:
            extra["turns"] = tf.constant(turns, dtype=tf.int32)
        if noise_seeds is not None:
            extra["seeds"] = tf.constant(noise_seeds, dtype=tf.int64)
        if teacher_act is not None and self.config.bc_weight > 0:
            extra["teacher_act"] = tf.constant(teacher_act, dtype=tf.float32)
        out = self._update_fn(tf.constant(obs), tf.constant(act), tf.constant(rew), tf.constant(next_obs),
                              tf.constant(mask), tf.constant(tnoise, dtype=tf.float32),
                              tf.constant(snoise, dtype=tf.float32), **extra)
        stats = {"critic_loss": float(out[0]), "actor_loss": float(out[1]), "q_mean": float(out[2])}
        if self.aux is not None:
            stats["airframe_r2"] = float(out[3])
        return stats

    def behaviour_clone(self, obs: np.ndarray, target_act: np.ndarray, batches: np.ndarray) -> float:
        """Supervised steps of the actor toward ``target_act`` (N, 4) for ``obs`` (N, obs_dim) raw
        observations, one per row of ``batches`` (S, B) int indices into them; mean squared error
        in normalized action units, its own Adam at ``actor_lr``. The target actor is set equal to
        the actor afterwards. Returns the last step's loss."""
        if self.bc_opt is None:
            self.bc_opt = keras.optimizers.Adam(self.config.actor_lr)
            self.bc_opt.build(self.actor.trainable_variables)
            self._bc_fn = tf.function(self._bc_many, reduce_retracing=True, jit_compile=self.config.jit,
                                      autograph=False)
        loss = self._bc_fn(tf.constant(obs, tf.float32), tf.constant(target_act, tf.float32),
                           tf.constant(batches, tf.int32))
        self.reset_actor_followers()
        return float(loss)

    def _bc_many(self, obs, target_act, batches):
        """One supervised step per row of ``batches``; a tf.while_loop, compiled with autograph off
        as :meth:`_update_many` is. Returns the last step's loss."""
        def body(i, _):
            o, a = tf.gather(obs, batches[i]), tf.gather(target_act, batches[i])
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.reduce_sum(tf.square(self.actor(o, training=True) - a), axis=1))
            grads = tape.gradient(loss, self.actor.trainable_variables)
            self.bc_opt.apply_gradients(zip(grads, self.actor.trainable_variables))
            return i + 1, loss

        return tf.while_loop(lambda i, _: i < tf.shape(batches)[0], body, (tf.constant(0), tf.constant(0.0)))[1]

    def set_lr_factor(self, factor: float) -> None:
        """Scale both learning rates to ``factor`` x their configured values."""
        self.actor_opt.learning_rate.assign(self.config.actor_lr * factor)
        self.critic_opt.learning_rate.assign(self.config.critic_lr * factor)
        if self.aux_opt is not None:
            self.aux_opt.learning_rate.assign(self.config.actor_lr * factor)

    # --- acting without TF overhead --------------------------------------------------------

    def numpy_actor(self):
        """A pure-numpy forward pass of the current actor weights: obs (N, D) -> actions (N, 4).
        ~20x faster than calling Keras for the small batches of acting; refreshed by the caller
        after every update call, so it reads the variables it needs directly (about half the
        time of :meth:`NumpyActor.from_keras`, which it equals)."""
        if self._numpy_plan is None:
            first = NumpyActor.from_keras(self.actor)  # the frozen normalization, and the layers' activations
            dense = [layer for layer in self.actor.layers if isinstance(layer, keras.layers.Dense)]
            self._numpy_plan = (first, [(layer.kernel, layer.bias, act) for layer, (_, _, act) in zip(dense, first.layers)])
        first, plan = self._numpy_plan
        return first.with_layers([(k.numpy(), b.numpy(), act)
                                  for k, b, act in plan])

    # --- state for checkpoints ------------------------------------------------------------

    def variables(self) -> list:
        """Every variable whose value defines the agent's future (nets, targets, optimizers)."""
        vs = list(self.actor.weights) + list(self.actor_target.weights)
        for cr, ct in zip(self.critics, self.critic_targets):
            vs += list(cr.weights) + list(ct.weights)
        vs += list(self.actor_opt.variables) + list(self.critic_opt.variables) + [self.n_updates]
        if self.aux is not None:
            vs += list(self.aux_head.weights) + list(self.aux_opt.variables)
        if self.actor_average is not None:
            vs += list(self.actor_average.weights)
        return vs

    def get_state(self) -> list[np.ndarray]:
        """Values of :meth:`variables`."""
        return [np.array(v.numpy()) for v in self.variables()]

    def set_state(self, values: list[np.ndarray]) -> None:
        """Inverse of :meth:`get_state`; raises ValueError on a shape mismatch."""
        vs = self.variables()
        if len(values) != len(vs):
            raise ValueError(f"checkpoint has {len(values)} agent arrays, expected {len(vs)}")
        for v, x in zip(vs, values):
            if tuple(v.shape) != tuple(np.shape(x)):
                raise ValueError(f"checkpoint array for {v.name} has shape {np.shape(x)}, expected {tuple(v.shape)}")
            v.assign(x)


class NumpyActor:
    """Numpy forward pass of a Dense/tanh actor built by :func:`train.networks.build_actor`."""

    def __init__(self, mean, std, layers):
        self.mean, self.inv_std, self.layers = mean, 1.0 / std, layers

    @classmethod
    def from_keras(cls, actor: keras.Model) -> "NumpyActor":
        """Copy the weights of ``actor`` (normalization, dense layers and their activations)."""
        norm = actor.get_layer("obs_normalization")
        mean = np.asarray(norm.mean, dtype=np.float32).reshape(-1)
        std = np.sqrt(np.asarray(norm.variance, dtype=np.float32).reshape(-1))
        std = np.maximum(std, 1e-7)  # keras' own epsilon floor
        layers = []
        for layer in actor.layers:
            if isinstance(layer, keras.layers.Dense):
                w, b = (np.asarray(x, dtype=np.float32) for x in layer.get_weights())
                act = layer.get_config()["activation"]
                layers.append((w, b, act))
        return cls(mean, std, layers)

    def with_layers(self, layers) -> "NumpyActor":
        """The same normalization with other (kernel, bias, activation) layers."""
        out = NumpyActor.__new__(NumpyActor)
        out.mean, out.inv_std, out.layers = self.mean, self.inv_std, layers
        return out

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        x = (np.asarray(obs, dtype=np.float32) - self.mean) * self.inv_std
        for w, b, act in self.layers:
            x = x @ w + b
            if act == "tanh":
                x = np.tanh(x)
            elif act == "relu":
                x = np.maximum(x, 0.0)
            elif act != "linear":
                raise ValueError(f"NumpyActor does not know activation {act!r}")
        return x
