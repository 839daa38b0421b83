# lavpr_ros: the two commands people need are `make demo` and `make test`; both set up first.
SHELL := /bin/bash
.DEFAULT_GOAL := help
ENV := set +u; source scripts/env.sh; set -u;

.PHONY: help setup models demo test lint format bench clean

help:
	@echo "make demo    - set up, then run the node graph on a real recorded sequence (main job)"
	@echo "make test    - set up, then ruff check + the whole test suite"
	@echo "make setup   - .venv with ROS 2 Kilted wheels + colcon build (idempotent)"
	@echo "make models  - export the default ONNX models into models/ when missing"
	@echo "make bench   - lavpr bench core"

setup:
	@bash scripts/setup.sh

models: setup
	@bash training/build_default_models.sh

demo: setup models
	@bash scripts/demo.sh

test: setup models
	@bash scripts/test.sh

lint: setup
	@$(ENV) ruff check . && ruff format --check .

format: setup
	@$(ENV) ruff format . && ruff check --fix .

bench: setup models
	@$(ENV) lavpr bench core

clean:
	rm -rf build install log results
