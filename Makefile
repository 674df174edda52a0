# clrkdnet_ros developer entry points. Everything lives inside the repo: the Python venv in .venv/,
# the clrkdnet_msgs interface build in build/msgs/ and its ament prefix in install/, where clrkdnet_ros
# itself is installed in the colcon layout (ros2 run / ros2 launch find it there). The ROS 2 command line
# comes from ROS2_CLI (../shared/ros2_cli) and tf2 from ROS2_TF (../shared/ros2_tf) when those folders exist;
# without them set-up skips those steps.
#
#   make test   set up (only what is out of date) and run the whole test suite
#   make demo   set up and run the demo (scripts/demo.sh)
#   make lint   ruff check + format check, import contracts

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PREFIX := install
MSGS_BUILD := build/msgs
CLI_BUILD := build/composition_interfaces
TF2_BUILD := build/tf2
ROS2_CLI ?= $(abspath $(CURDIR)/../shared/ros2_cli)
ROS2_TF ?= $(abspath $(CURDIR)/../shared/ros2_tf)

# Stamps: a target is redone only when one of its inputs is newer than its stamp.
VENV_STAMP := $(VENV)/.clrkdnet-requirements.stamp
MSGS_STAMP := $(MSGS_BUILD)/.clrkdnet-installed.stamp
LINK_STAMP := $(VENV)/.clrkdnet-linked.stamp
# Named after the outcome, so that set-up installs the tools once the folder appears.
CLI_STAMP := $(CLI_BUILD)/.clrkdnet-$(if $(wildcard $(ROS2_CLI)/wheels),installed,skipped).stamp
TF2_STAMP := $(TF2_BUILD)/.clrkdnet-$(if $(wildcard $(ROS2_TF)/build_tf2.sh),installed,skipped).stamp
PACKAGE_STAMP := $(PREFIX)/.clrkdnet-ros-installed.stamp

MSGS_INPUTS := msg/package.xml msg/CMakeLists.txt $(wildcard msg/msg/*.msg) \
	scripts/build_msgs.sh scripts/cmake/drop_missing_imported_includes.cmake
# The folders are inputs so that an added or removed launch/config/model file is installed (or unlinked).
PACKAGE_INPUTS := setup.py package.xml scripts/install_package.py launch config msg/msg models resource
# The wheels folder when it exists, so that new wheels are installed; nothing when it does not.
CLI_INPUTS := scripts/install_ros2_cli.sh scripts/build_msgs.sh $(wildcard $(ROS2_CLI)/wheels)
# The build script and the sources when they exist (a changed source is rebuilt); nothing when they do not.
TF2_INPUTS := scripts/install_tf2.sh $(wildcard $(ROS2_TF)/build_tf2.sh $(ROS2_TF)/src/*/package.xml)

.PHONY: setup msgs test demo lint clean

setup: $(VENV_STAMP) $(MSGS_STAMP) $(CLI_STAMP) $(TF2_STAMP) $(LINK_STAMP) $(PACKAGE_STAMP)

$(VENV_STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt
	touch $@

msgs: $(MSGS_STAMP)

$(MSGS_STAMP): $(MSGS_INPUTS) $(VENV_STAMP)
	scripts/build_msgs.sh $(VENV) $(MSGS_BUILD) $(PREFIX)
	touch $@

$(CLI_STAMP): $(CLI_INPUTS) $(VENV_STAMP)
	scripts/install_ros2_cli.sh $(VENV) $(ROS2_CLI) $(CLI_BUILD) $(PREFIX)
	mkdir -p $(@D) && touch $@

$(TF2_STAMP): $(TF2_INPUTS) $(VENV_STAMP)
	scripts/install_tf2.sh $(VENV) $(ROS2_TF) $(TF2_BUILD) $(PREFIX)
	mkdir -p $(@D) && touch $@

$(LINK_STAMP): scripts/link_venv.py $(VENV_STAMP)
	$(PY) scripts/link_venv.py $(PREFIX)
	touch $@

$(PACKAGE_STAMP): $(PACKAGE_INPUTS) $(VENV_STAMP)
	$(PY) scripts/install_package.py $(PREFIX)
	touch $@

test: setup
	$(PY) -m pytest

demo: setup
	scripts/demo.sh

lint: $(VENV_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) test/test_architecture.py

clean:
	rm -rf build $(PREFIX) demo_output
