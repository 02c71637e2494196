# The two commands a new user types: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VEHICLE ?= crazyflie
STAMP := $(VENV)/.installed

.PHONY: demo test bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/quadhil demo --vehicle $(VEHICLE)

# Real-time flights sleep most of their time: 3 xdist workers on 2 cores, with the CPU-bound tests
# kept to one worker at a time (tests/conftest.py).
test: $(STAMP)
	$(PY) -m pytest -q -n 3 --dist loadgroup tests

bench: $(STAMP)
	$(VENV)/bin/quadhil bench sim

clean:
	rm -rf $(VENV) build *.egg-info
