# Two commands for a newcomer: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= demo-out
FRESH ?= 0

.PHONY: demo test venv weights bench bench-results docs clean

$(STAMP): pyproject.toml requirements/cpu.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# CPU pins first (torch CPU build), then the package with its extras on top of them
	$(BIN)/python -m pip install -q -r requirements/cpu.txt
	$(BIN)/python -m pip install -q -c requirements/cpu.txt -e ".[openvino,train,dev,dicom]"
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	# under CI, Hypothesis draws from a fixed seed: a CI result depends on the code, not on the draw
	$(BIN)/python -m pytest -q -n 2 --durations=15 $(if $(CI),--hypothesis-seed=0,)

demo: $(STAMP)
	$(BIN)/python -m btseg.cli.demo --out $(OUT) $(if $(filter 1,$(FRESH)),--fresh,)

weights: $(STAMP)
	$(BIN)/python tools/make_weights.py

# every artifact of the bundled model on every backend installed here, side by side
bench: $(STAMP)
	$(BIN)/btseg-bench --out bench-out

# re-make benchmarks/RESULTS.md's tables (builds the demo run first when it is missing)
bench-results: $(STAMP)
	$(BIN)/python benchmarks/run_all.py --build

# fill the measured numbers in README/docs/RESULTS from benchmarks/results/ (tools/docs_numbers.py)
docs: $(STAMP)
	$(BIN)/python tools/docs_numbers.py

clean:
	rm -rf $(OUT) build *.egg-info
