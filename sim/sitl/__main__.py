from quadhil.cli import package_main

raise SystemExit(package_main("sim.sitl"))
