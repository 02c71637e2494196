"""A Crazyflie 2.1 SITL twin that the real cflib connects to over its udp:// driver.

Modules: ``crtp`` (wire codec), ``toc``, ``params`` (port 2), ``logging`` (port 5),
``commander`` (ports 3 and 7), ``supervisor`` (port 9 and the safety state machine),
``controller`` (onboard PID), ``twin`` (physics + firmware behaviour), ``server`` (UDP,
real time), ``cli`` (``quadhil sitl crazyflie``).
"""
