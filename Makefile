# GoQ developer commands. `make help` lists them.
.DEFAULT_GOAL := help
.PHONY: help setup demo up down test bench bench-quick proto cluster-up cluster-down cluster-status

help:  ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

setup:  ## set up a fresh machine: system packages, .venv, Kubernetes binaries, GoQ's images (built once)
	bash scripts/setup.sh

demo:  ## GoQ on a real local Kubernetes node, step by step; stops what it started (~2 min once built)
	@test -x .venv/bin/goq-dev || bash scripts/setup.sh
	.venv/bin/goq-dev demo $(ARGS)

up:  ## the same node with GoQ and the shop example, left running to explore with kubectl and goqctl
	@test -x .venv/bin/goq-dev || bash scripts/setup.sh
	.venv/bin/goq-dev up --with-examples

down:  ## stop everything `make up` or an interrupted `make demo` started, undoing what the node changed
	.venv/bin/goq-dev down

test:  ## run everything CI runs: ruff, ruff format, mypy, import contracts and the whole test suite
	bash scripts/test.sh $(ARGS)

bench:  ## GoQ beside RabbitMQ, NATS JetStream and a bare gRPC hop; rewrites docs/benchmarks.md (~30 min)
	bash bench/setup.sh
	.venv/bin/python bench/run.py $(ARGS)

bench-quick:  ## every scenario of the same, small: a few minutes
	bash bench/setup.sh
	.venv/bin/python bench/run.py --quick $(ARGS)

proto:  ## regenerate the Python code for client/goq/api/v1/*.proto
	bash scripts/gen-proto.sh

cluster-up:  ## start a local MongoDB and Kubernetes control plane (no node) that outlive the command
	.venv/bin/goq-dev up

cluster-down:  ## stop what cluster-up started
	.venv/bin/goq-dev down

cluster-status:  ## say what cluster-up started and whether it runs
	.venv/bin/goq-dev status
