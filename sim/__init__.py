"""quadhil simulation layer: vehicle models, batched dynamics, frames, the policy contract,
Gymnasium envs and (in ``sim.sitl``) the SITL twins. Imports numpy and gymnasium only."""

from sim.env import register as _register

_register()
