"""Training layer: Keras 3 DDPG agent, replay buffer, noise, training loop, evaluation."""
