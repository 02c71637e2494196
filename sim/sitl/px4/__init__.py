"""A PX4 twin: quadhil's physics behind PX4's MAVLink (``quadhil sitl px4``), and quadhil's
physics as the simulator of a real PX4 SITL over simulator_mavlink (``quadhil sitl px4-hil``).

Modules: ``modes`` (px4_custom_mode), ``params`` (the PX4 parameters the twin honours),
``controllers`` (mc_pos/att/rate_control approximations), ``commander`` (arming, modes,
offboard, failsafes, land detection), ``streams`` (telemetry encoders and rates), ``links``
(UDP MAVLink endpoints), ``twin`` (the real-time loop), ``cli`` (``quadhil sitl px4``), ``hil`` +
``hil_cli`` (simulator_mavlink server, ``quadhil sitl px4-hil``), ``bench`` (figures), and
``nn_control`` (PX4 mc_nn_control flying an exported network, ``--controller mc_nn:PATH``).

Dialect: the twin packs and parses with ``pymavlink.dialects.v20.common`` (MAVLink 2, the
dialect PX4 builds its default targets with for the messages used here); it never touches
the process-wide ``mavutil`` dialect selection, so clients may use any superset (mavutil's
default ``ardupilotmega`` decodes every message the twin sends).
"""
