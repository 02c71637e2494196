"""quadhil: train a quadcopter policy in simulation, export it to TFLite, fly it over cflib or
MAVLink. This package holds only the command line; the layers are ``sim``, ``train``,
``deploy`` and ``firmware_bridge``."""

__version__ = "0.1.0"
