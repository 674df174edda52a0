# clrkdnet_ros developer entry points. Everything lives inside the repo: the Python venv in .venv/,
# the clrkdnet_msgs interface build in build/msgs/ and its ament prefix in install/.
#
#   make test   set up (only what is out of date) and run the whole test suite
#   make demo   set up and run the demo (scripts/demo.sh)
#   make lint   ruff check + format check

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PREFIX := install
MSGS_BUILD := build/msgs

# Stamps: a target is redone only when one of its inputs is newer than its stamp.
VENV_STAMP := $(VENV)/.clrkdnet-requirements.stamp
MSGS_STAMP := $(MSGS_BUILD)/.clrkdnet-installed.stamp
LINK_STAMP := $(VENV)/.clrkdnet-linked.stamp

MSGS_INPUTS := msg/package.xml msg/CMakeLists.txt $(wildcard msg/msg/*.msg) \
	scripts/build_msgs.sh scripts/cmake/drop_missing_imported_includes.cmake

.PHONY: setup msgs test demo lint clean

setup: $(VENV_STAMP) $(MSGS_STAMP) $(LINK_STAMP)

$(VENV_STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt
	touch $@

msgs: $(MSGS_STAMP)

$(MSGS_STAMP): $(MSGS_INPUTS) $(VENV_STAMP)
	scripts/build_msgs.sh $(VENV) $(MSGS_BUILD) $(PREFIX)
	touch $@

$(LINK_STAMP): scripts/link_venv.py $(VENV_STAMP)
	$(PY) scripts/link_venv.py $(PREFIX)
	touch $@

test: setup
	$(PY) -m pytest

demo: setup
	scripts/demo.sh

lint: $(VENV_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean:
	rm -rf build $(PREFIX) demo_output
