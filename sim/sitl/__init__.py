"""SITL twins: a Crazyflie over CRTP/UDP (cflib udp driver) and a PX4 vehicle over MAVLink."""
