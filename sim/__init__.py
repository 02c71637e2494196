"""quadhil simulation layer: vehicle models, batched dynamics, frames, the policy contract,
Gymnasium envs and (in ``sim.sitl``) the SITL twins. Imports numpy and gymnasium only.

Importing ``sim`` registers ``quadhil/Hover-v0`` with Gymnasium when Gymnasium is installed,
without importing the simulator itself: a companion computer that only needs the contract
(``sim.contract``, ``sim.frames``) pulls in neither Gymnasium nor the compiled physics.
"""

try:
    import gymnasium as _gym
except ModuleNotFoundError:  # companion-computer install: contract and frames only
    _gym = None

if _gym is not None and "quadhil/Hover-v0" not in _gym.registry:
    _gym.register(id="quadhil/Hover-v0", entry_point="sim.env:HoverEnv")
