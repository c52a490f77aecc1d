# GoQ developer commands. `make help` lists them.
.DEFAULT_GOAL := help
.PHONY: help setup test bench bench-quick proto cluster-up cluster-down cluster-status

help:  ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

setup:  ## set up a fresh machine: system packages, .venv, control-plane binaries (built once)
	bash scripts/setup.sh

test:  ## run everything CI runs: ruff, ruff format, mypy and the whole test suite
	bash scripts/test.sh $(ARGS)

bench:  ## GoQ beside RabbitMQ, NATS JetStream and a bare gRPC hop; rewrites docs/benchmarks.md (~30 min)
	bash bench/setup.sh
	.venv/bin/python bench/run.py $(ARGS)

bench-quick:  ## every scenario of the same, small: a few minutes
	bash bench/setup.sh
	.venv/bin/python bench/run.py --quick $(ARGS)

proto:  ## regenerate the Python code for goq/api/v1/*.proto
	bash scripts/gen-proto.sh

cluster-up:  ## start a local MongoDB and Kubernetes control plane that outlive the command
	.venv/bin/goq-dev up

cluster-down:  ## stop what cluster-up started
	.venv/bin/goq-dev down

cluster-status:  ## say what cluster-up started and whether it runs
	.venv/bin/goq-dev status
