# sluice: the entry points. `make up` starts everything locally, `make test`
# runs every suite. Servers are installed into .deps/ by `make deps`.
SHELL := /bin/bash
CARGO ?= cargo
PROFILE ?= release
export SLUICE_PROFILE := $(PROFILE)
PROFILE_FLAG := $(if $(filter release,$(PROFILE)),--release,)

.PHONY: deps build up down dev test fuzz lint bench fmt clean images kind-up kind-down dashboards chaos chart schema

deps: ## install the servers and tools into .deps/ (NATS, DynamoDB Local, cargo-deny, schemathesis, the mailbox)
	@bash scripts/deps.sh

build: ## build the service binaries
	$(CARGO) build $(PROFILE_FLAG) --bins

up: deps build ## start servers and services in the background; idempotent
	@bash scripts/up.sh

down: ## stop everything `make up` started
	@bash scripts/down.sh

dev: up ## `up`, then follow every log
	@tail -n 20 -F .sluice/log/*.log

test: deps ## cargo deny, the chart's checks (offline and on a real kube-apiserver), the images, every test suite against real servers started per test, a short fuzz run
	bash scripts/deny.sh
	bash scripts/check-chart.sh
	bash scripts/check-apiserver.sh
	bash scripts/images.sh
	bash scripts/check-images.sh
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast -- --test-threads=$${SLUICE_TEST_THREADS:-2}
	bash scripts/fuzz.sh $${SLUICE_FUZZ_SECONDS:-10}

fuzz: ## fuzz pattern parsing and matching for FUZZ_SECONDS (default 600)
	bash scripts/fuzz.sh $${FUZZ_SECONDS:-600}

lint: deps ## formatting, clippy (warnings denied), cargo deny
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	bash scripts/deny.sh

fmt:
	$(CARGO) fmt --all

images: ## one FROM-scratch image per service (static musl binary) as OCI archives in .sluice/images/
	bash scripts/images.sh

chart: deps ## the Helm chart's offline checks (lint, kubeconform, kube-score, promtool, shellcheck) and its install on a real kube-apiserver
	bash scripts/check-chart.sh
	bash scripts/check-apiserver.sh

schema: deps ## regenerate the chart's values.schema.json, VALUES.md and dashboards after editing values.yaml or scripts/dashboards.py
	.deps/venv/bin/python scripts/values-schema.py
	python3 scripts/values-reference.py
	python3 scripts/dashboards.py

chaos: deps ## the chaos run: SLUICE_CHAOS_EVENTS (100,000) events under random SIGKILLs and outages; fails unless nothing accepted is lost or applied twice
	$(CARGO) build --release --workspace --bins
	target/release/sluice-chaos

dashboards: ## the chart's dashboards drawn from the Prometheus of `make up` (last 15 minutes) into bench/results/dashboards/*.png
	. .sluice/dev.env && .deps/plots-venv/bin/python scripts/render-dashboards.py --prometheus "$$SLUICE_PROMETHEUS_URL" --minutes $${MINUTES:-15} --out bench/results/dashboards

kind-up: ## a kind cluster with ingress-nginx, KEDA, the images and the chart (needs docker, kind, kubectl, helm)
	bash deploy/kind/up.sh

kind-down: ## delete the kind cluster
	bash deploy/kind/down.sh

BENCH_ROUNDS ?= 3

bench: deps ## ingest, event bus, fan-out, tasks API, files, schedules, replay and pattern-matching benchmarks, BENCH_ROUNDS rounds each (medians); results in bench/results/
	$(CARGO) build --release --workspace --bins
	target/release/sluice-bench --out bench/results --rounds $(BENCH_ROUNDS)
	target/release/sluice-bench --suite bus --no-fsync --out bench/results --rounds $(BENCH_ROUNDS)
	target/release/sluice-bench --suite fanout --out bench/results --rounds $(BENCH_ROUNDS)
	target/release/sluice-bench --suite tasks --out bench/results --rounds $(BENCH_ROUNDS)
	target/release/sluice-bench --suite files --out bench/results --rounds $(BENCH_ROUNDS)
	target/release/sluice-bench --suite schedules --rules 10000 --ticks 2 --out bench/results --rounds $(BENCH_ROUNDS)
	target/release/sluice-bench --suite replay --events 50000 --out bench/results --rounds $(BENCH_ROUNDS)
	ROUNDS=$(BENCH_ROUNDS) bash scripts/bench-patterns.sh

clean: down
	rm -rf .sluice
