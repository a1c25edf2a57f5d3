# fpga_mpq: every target installs what it needs into .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install fashion-mnist chromium demo test test-fast bench fuzz slow lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: the CPU wheel on disk. An open range would pull a CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(MAKE) -s fashion-mnist
	$(MAKE) -s chromium
	touch $@

# Fashion-MNIST (the CNN specs' data) is a Debian package: installed here when missing and we are
# root; otherwise `--data fashion` names the package in its error.
FASHION = /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz
fashion-mnist:
	@if [ ! -f $(FASHION) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
		|| (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1) \
		|| echo "dataset-fashion-mnist could not be installed: the Fashion-MNIST specs and tests are skipped"; fi

# Chromium renders the HTML report headless (tests/test_report.py): installed here when missing and we
# are root; otherwise that screenshot test is skipped.
chromium:
	@if ! command -v chromium >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get install -y -q chromium >/dev/null 2>&1 \
			|| (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1) \
			|| echo "chromium could not be installed: the report's screenshot test is skipped"; \
		else echo "chromium is not installed (installing it needs root): the report's screenshot test is skipped"; fi; fi

install: $(VENV)/.installed

demo: install
	$(BIN)/fpga-mpq flow -o out/demo

# Both cores (pytest-xdist: each worker its own temporary folders; searches run without Ray unless a test
# asks for it), the 30 slowest tests and the total printed at the end.
test: install
	$(BIN)/ruff check .
	$(BIN)/pytest -q -m "not slow" -n 2 --durations=30

# The development loop (< 5 minutes): tests/, the unit tests (no C++ build, no RTL simulation).
test-fast: install
	$(BIN)/ruff check .
	$(BIN)/pytest -q -m "not slow" -n 2 --durations=10 tests

# Speed targets, measured side by side with the peer in one run (never timed unit tests).
bench: install
	cd bench && ../$(BIN)/python bench_cli.py
	cd bench && ../$(BIN)/python bench_golden.py
	cd bench && ../$(BIN)/python bench_build.py
	cd bench && ../$(BIN)/python bench_estimate.py
	cd bench && ../$(BIN)/python bench_search.py
	cd bench && ../$(BIN)/python bench_cnn.py
	cd bench && ../$(BIN)/python bench_dqmq.py
	cd bench && ../$(BIN)/python bench_train.py
	cd bench && ../$(BIN)/python bench_iso.py
	# HGQ2 (the peer on LUTs per accuracy) and its Keras 3, for this bench only: no test imports them.
	$(BIN)/python -m pip install -q hgq2==0.2.0
	cd bench && ../$(BIN)/python bench_hgq2.py

# Property tests with many more random networks (600 golden-vs-qonnx, 150 through C simulation),
# 24 SIGKILL/SIGINT fault injections each into generate, flow and search, every case of the Brevitas
# zoo (golden == qonnx) and of its presets (C simulation), and the hostile-input survey (231 crafted
# ONNX files, external data, JSON reports, specs, checkpoints, links in projects, output names, streams).
fuzz: install
	MPQ_FUZZ=1 $(BIN)/pytest -q -n 2 tests/test_property.py hw_tests/test_property_csim.py hw_tests/test_fault_injection.py \
		hw_tests/test_brevitas_presets.py tests/test_brevitas_zoo.py
	$(BIN)/python hw_tests/hostile_survey.py

# The long hardware tests: RTL simulation of the 784-input TFC zoo models, the residual MLP and the small CNN
# (minutes of da4ml and Verilator build each), and the residual CNN in io_parallel.
slow: install
	$(BIN)/pytest -q -m slow -n 2

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf out build .pytest_cache
