"""The PX4 preflight parameter check: read the parameters the policy depends on over MAVLink,
compare them with what it was trained for (:mod:`deploy.px4_params`), refuse naming each
mismatch, or set the policy's values first when asked to (``quadhil fly --set-params``)."""

from __future__ import annotations

import math

from deploy import px4_params
from firmware_bridge.links import Link, LinkError

READ_TIMEOUT_S = 3.0


def px4_param_refusals(link: Link, spec, vehicle, set_params: bool, log=None) -> list[str]:
    """Refusals from the vehicle's parameters ([] if the policy can fly them). With
    ``set_params``, every parameter that differs from the policy's value is set first. Also hands
    PX4's takeoff/landing timing parameters to the link. Links that are not PX4: []."""
    if link.firmware != "px4" or spec.action_mode != "ctbr":
        return []
    pp = px4_params.policy_params(spec, vehicle)
    timing = list(getattr(link, "timing", {}))
    try:
        actual = link.read_params(px4_params.names_to_read(pp) + timing, READ_TIMEOUT_S)
    except LinkError as exc:
        return [f"could not read PX4 parameters: {exc}"]
    if hasattr(link, "read_timing"):
        link.read_timing(actual)
    problems = px4_params.check(pp, actual, vehicle)
    record = {"type": "px4_params", "read": actual, "trained": pp.values, "problems": problems, "set": None}
    differs = {n: v for n, v in pp.values.items()
               if n not in actual or not math.isclose(float(actual[n]), v, rel_tol=1e-4, abs_tol=1e-6)}
    if differs and set_params:  # fly as trained: the policy's values, not just the refused ones
        try:
            record["set"] = link.set_params(differs, READ_TIMEOUT_S)
        except LinkError as exc:
            problems = problems + [f"--set-params failed: {exc}"]
        else:
            actual = {**actual, **link.read_params(list(pp.values), READ_TIMEOUT_S)}
            problems = px4_params.check(pp, actual, vehicle)
            record["problems_after_set"] = problems
    if log is not None:
        log.write(record)
    return [f"PX4 parameter: {p}" for p in problems]
