# The two commands a new user types: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VEHICLE ?= crazyflie
STAMP := $(VENV)/.installed
# --no-cache-dir: the wheels (TensorFlow's alone is ~600 MB) are not kept a second time in pip's
# cache; a CI run once failed with "No space left on device" mid-install.

.PHONY: demo test bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-cache-dir --upgrade pip
	$(PY) -m pip install --quiet --no-cache-dir -e '.[all]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/quadhil demo --vehicle $(VEHICLE)

# The real-time flights and the CPU-bound tests run at once, the latter at the lowest CPU priority
# (tests/run_suite.sh says why); exit 0 only when both ran and passed.
test: $(STAMP)
	PY=$(PY) bash tests/run_suite.sh

bench: $(STAMP)
	$(VENV)/bin/quadhil bench sim

clean:
	rm -rf $(VENV) build *.egg-info
