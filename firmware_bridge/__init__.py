"""The bridge: links (cflib, pymavlink), fixed-rate control loop, safety supervisor, flight logs, onboard code."""
