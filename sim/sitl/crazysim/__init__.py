"""CrazySim's physics side on quadhil's simulator: the real crazyflie-firmware SITL (``cf2``)
flies on ``sim.dynamics.QuadSim``.

CrazySim (gtfactslab/CrazySim) builds crazyflie-firmware as a Linux program, ``cf2``, whose
CRTP link is a UDP socket (its firmware fork llanesc/crazyflie-firmware, ``src/hal/src/
socketlink.c``); a Gazebo plugin (``crazysim_plugin.cpp``) or a MuJoCo script (``crazysim.py``)
is the other end: it streams the IMU and the pose, reads the motor PWM and relays cflib. This
package is that other end: ``protocol`` (packet layouts), ``server`` (the 1 kHz physics loop,
one socket pair per drone), ``firmware`` (starting and stopping ``cf2`` processes), ``peer`` (a
scripted stand-in for ``cf2`` written from the firmware's side of the protocol, for tests and the
bench), ``cli`` (``quadhil sitl crazyflie-fw``) and ``bench`` (``quadhil bench sitl-fw``).
"""
