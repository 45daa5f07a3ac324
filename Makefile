# fiblab: one-line targets. `make test` does all set-up it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VARIANT ?= threads
# More arguments of `python -m loadtest.compare`: ARGS="--variants coro --scenarios convoy"
ARGS ?=

.PHONY: help venv browser redis kustomize ss k8s lint test test-fast bench-server bench-gil bench-hostile bench-loadgen bench-bucketing bench-instructions serve dashboards \
	up up-no-grafana down logs compare compare-modern compare-versions compare-quick compare-docker report \
	compare-baseline results docs capacity capacity-sweep capacity-rates switch-interval connections timeline profile check clean

help:
	@echo "make test          lint (ruff, mypy) and every test, in a parallel pass and a serial one; creates $(VENV) on first use"
	@echo "make up / down / logs    the lab in Docker (docker compose up -d / down / logs -f)"
	@echo "make up-no-grafana the lab without Grafana (when its image cannot be pulled)"
	@echo "make compare       the talk's nine variants, every scenario: a report in results/<time>/"
	@echo "make compare-modern  the variants beyond the talk, with threads, asyncio and their process pools"
	@echo "make compare-versions  threads, threads-procpool, coro, asyncio on this Python, 3.13 and 3.14: one table"
	@echo "make compare-quick threads vs threads-procpool, short runs (a smoke test)"
	@echo "make compare-docker  every variant (--variants all) inside the compose network"
	@echo "    compare, compare-quick, compare-docker take ARGS, e.g. ARGS=\"--variants coro --scenarios convoy\""
	@echo "make report DIR=results/<time>   redraw a report from its summary.json"
	@echo "make compare-baseline OLD=results/<a> NEW=results/<b>   every figure of NEW beside OLD's: baseline.md"
	@echo "make capacity      the talk's variants: concurrency sweep, rate curves, Redis anchor"
	@echo "make capacity-sweep  the sweep and the Redis anchor only"
	@echo "make capacity-rates FROM=results/capacity-<time>   rate curves at that sweep's capacities"
	@echo "    pin with FIB_SERVER_CPUS=1 FIB_LOADGEN_CPUS=0 (compare and capacity, local and compose)"
	@echo "make switch-interval  the convoy at switch intervals 0.5-20 ms against its law (design §3.2): results/switch-interval-<time>/ (ARGS=\"--out DIR\")"
	@echo "make connections   what a connection costs (design §6.10): idle connections' memory, threads, fds, admission; slow clients; fairness; Redis beside: results/connections-<time>/ (ARGS=\"--quick\")"
	@echo "make timeline VARIANT=threads  the convoy drawn: a lane per client and server thread, GIL waits sampled (Docker; VARIANT=six: the six of design §3.2)"
	@echo "make profile VARIANT=threads  flame graphs (wall clock, GIL holders, speedscope) of one variant during the convoy, py-spy: results/profile-<variant>-<time>/"
	@echo "make check TARGET=tcp://HOST:PORT   any server against the line protocol (design §2), from outside: results/check-<time>/ (ARGS=\"--max-n 45\"; ARGS=\"--behaviours --like threads\": the talk's behaviours too)"
	@echo "make bench-loadgen req/s of the raw perf2 loop vs one Locust user"
	@echo "make bench-bucketing  Locust's sub-ms buckets: one user's req/s with and without; the master's cost"
	@echo "make bench-instructions  instrumentation cost in instructions (valgrind)"
	@echo "make test-fast     the tests not marked slow"
	@echo "make lint          ruff and mypy only"
	@echo "make bench-server  req/s and s/request of every variant; metrics overhead"
	@echo "make bench-gil     the GIL probe's cost: idle CPU, a Python loop, fib(1) req/s and the convoy, on and off"
	@echo "make bench-hostile reliability of every variant under hostile clients"
	@echo "make serve VARIANT=threads   run one variant on 127.0.0.1:25000 (metrics :9100)"
	@echo "make results      every report under docs/results made again by this commit, on a quiet machine (docs/testing.md: how long each took)"
	@echo "make docs          the figures and tables of README.md and docs/*.md, filled from docs/results (a test fails when they differ)"
	@echo "make k8s           regenerate deploy/k8s/base/variants.yaml from docker-compose.yml"
	@echo "make dashboards    regenerate grafana/dashboards/*.json from grafana/dashboards.py"

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("fiblab needs Python >= 3.11, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The browser test drives Debian's Chromium; install it when we may (root).
CHROMIUM := $(shell command -v chromium 2>/dev/null)
browser:
ifeq ($(CHROMIUM),)
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the browser test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "WARNING: no chromium and not root: the browser test will skip (or fail in CI)"; \
	fi
endif

# The manifest tests (tests/repo/test_k8s.py) render deploy/k8s with Debian's
# kustomize; install it when we may (root). Debian ships it from trixie on;
# on an older release the script takes trixie's package, checked as apt would.
kustomize:
	@if ! command -v kustomize >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing Debian's kustomize for the manifest tests"; \
			apt-get update -qq && sh deploy/k8s/install-kustomize.sh; \
		else \
			echo "WARNING: no kustomize and not root: the manifest tests will skip (or fail in CI)"; \
		fi; \
	fi

# deploy/k8s/base/variants.yaml from docker-compose.yml (tests/repo/test_k8s.py checks it)
k8s: $(STAMP)
	$(BIN)/python deploy/k8s/variants.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The capacity run's anchor (loadtest/capacity/anchor.py) runs Debian's
# redis-server and redis-benchmark; install them when we may (root). The
# anchor starts its own server on a free port: Debian's service is stopped
# and disabled (a container without systemd would start it at install).
REDIS_PROGRAMS := $(and $(shell command -v redis-server 2>/dev/null),$(shell command -v redis-benchmark 2>/dev/null))
redis:
ifeq ($(REDIS_PROGRAMS),)
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's redis-server and redis-tools for the capacity anchor"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null && \
		{ if [ -d /run/systemd/system ]; then systemctl disable --now redis-server; \
		  else invoke-rc.d redis-server stop; update-rc.d redis-server disable; fi >/dev/null 2>&1 || true; }; \
	else \
		echo "WARNING: no redis-server or redis-benchmark and not root: no Redis anchor (its tests skip, or fail in CI)"; \
	fi
endif

# The conformance suite reads each listener's backlog with `ss` (iproute2).
ss:
	@command -v ss >/dev/null || { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's iproute2 (ss) for the conformance suite"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null; \
	else \
		echo "WARNING: no ss and not root: the backlog test skips (fails in CI)"; \
	fi; }

# Two passes (tests/conftest.py): the tests that mostly wait run in
# TEST_WORKERS parallel workers, then the `serial` ones alone, since they
# measure what other tests would disturb. Both passes always run; each
# prints its 30 slowest tests.
TEST_WORKERS ?= 4
test: lint browser redis kustomize ss
	@rc=0; \
	$(BIN)/pytest -m "not serial" -n $(TEST_WORKERS) --dist worksteal --durations=30 || rc=$$?; \
	$(BIN)/pytest -m serial --durations=30 || rc=$$?; \
	exit $$rc

test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow and not docker"

bench-server: $(STAMP)
	$(BIN)/python -m tests.bench.server

# What the GIL probe costs: fib(1) req/s and the convoy, probe on and off, threads and coro.
bench-gil: $(STAMP)
	$(BIN)/python -m tests.bench.gil
	$(BIN)/python -m tests.bench.server --gil-probe

bench-hostile: $(STAMP)
	$(BIN)/python -m tests.bench.hostile

bench-instructions: $(STAMP)
	$(BIN)/python -m tests.bench.instructions

bench-loadgen: $(STAMP)
	$(BIN)/python -m tests.bench.loadgen

bench-bucketing: $(STAMP)
	$(BIN)/python -m tests.bench.bucketing

serve: $(STAMP)
	$(BIN)/python -m services $(VARIANT)

dashboards: $(STAMP)
	$(BIN)/python grafana/dashboards.py

up:
	docker compose up -d --build
	@echo "Locust http://127.0.0.1:8089  Grafana http://127.0.0.1:3000  Prometheus http://127.0.0.1:9090"

# `docker compose up` pulls Grafana's image before it starts anything: without
# a registry (offline, an outage) nothing starts. The services are listed by
# compose itself; an empty list would mean all of them, so it stops there.
up-no-grafana:
	services="$$(docker compose config --services | grep -vx grafana)" && \
		docker compose up -d --build $$services
	@echo "Locust http://127.0.0.1:8089  Prometheus http://127.0.0.1:9090"

down:
	docker compose down

logs:
	docker compose logs -f --tail=100

compare: $(STAMP)
	$(BIN)/python -m loadtest.compare --variants talk $(ARGS)

# The seven variants beyond the talk, with the four of the talk their
# predictions compare them with. The interpreter pools need CPython 3.14:
# on an older Python they run in their compose image, built here first.
compare-modern: $(STAMP)
	@if $(BIN)/python -c 'import sys; sys.exit(sys.version_info >= (3, 14))'; then \
		docker compose build threads-interppool; fi
	$(BIN)/python -m loadtest.compare --variants modern $(ARGS)

# The talk's core variants on this Python, 3.13 and 3.14 (the images are
# built from this checkout): one table, results/versions-<time>/versions.md.
compare-versions: $(STAMP)
	$(BIN)/python -m loadtest.compare.versions $(ARGS)

compare-quick: $(STAMP)
	$(BIN)/python -m loadtest.compare --variants threads,threads-procpool \
		--duration 4 --repeat 1 --warmup 1 $(ARGS)

# Builds first: the compare service runs locust-master's image and has no
# `build:` of its own (docker-compose.yml), so `run` alone would not rebuild it.
compare-docker:
	mkdir -p results
	docker compose build
	docker compose --profile compare run --rm --user "$$(id -u):$$(id -g)" compare $(ARGS)

# A run against an earlier one: OLD and NEW are results/<time> folders.
compare-baseline: $(STAMP)
	@test -n "$(OLD)" -a -n "$(NEW)" || (echo "usage: make compare-baseline OLD=results/<a> NEW=results/<b>"; exit 2)
	$(BIN)/python -m loadtest.compare.report --baseline $(OLD)/summary.json $(NEW)/summary.json

# Capacity and latency curves (docs/design.md §6.4): results/capacity-<time>/.
capacity: $(STAMP) redis
	$(BIN)/python -m loadtest.capacity --variants talk $(ARGS)

capacity-sweep: $(STAMP) redis
	$(BIN)/python -m loadtest.capacity --variants talk --parts sweep,anchor $(ARGS)

capacity-rates: $(STAMP)
	@test -n "$(FROM)" || (echo "usage: make capacity-rates FROM=results/capacity-<time>"; exit 2)
	$(BIN)/python -m loadtest.capacity --variants talk --parts rates \
		--capacity-from $(FROM)/summary.json $(ARGS)

# The convoy at each switch interval against its law (docs/design.md §3.2, §6.7):
# results/switch-interval-<time>/, or ARGS="--out DIR".
switch-interval: $(STAMP)
	$(BIN)/python -m loadtest.switchinterval $(ARGS)

# What a connection costs (docs/design.md §3.3, §6.10): every variant and Redis,
# results/connections-<time>/, or ARGS="--out DIR". The interpreter pools need
# CPython 3.14: on an older Python they run in their compose image, built here first.
connections: $(STAMP) redis
	@if $(BIN)/python -c 'import sys; sys.exit(sys.version_info >= (3, 14))'; then \
		docker compose build threads-interppool; fi
	$(BIN)/python -m loadtest.connections $(ARGS)

# The convoy drawn from a real run (docs/design.md §6.6): the servers run on
# CPython 3.15 in the variants image, under the GIL sampler (Docker).
timeline: $(STAMP)
	$(BIN)/python -m loadtest.timeline --variants $(VARIANT) $(ARGS)

# Flame graphs of one variant while the convoy runs (docs/design.md §6.8):
# results/profile-<variant>-<time>/; ARGS="--seconds 15 --reference" and so on.
profile: $(STAMP)
	$(BIN)/python -m loadtest.profile --variant $(VARIANT) $(ARGS)

# Any server that speaks the line protocol, checked from outside (docs/design.md §6.9).
check: $(STAMP)
	@test -n "$(TARGET)" || (echo "usage: make check TARGET=tcp://HOST:PORT"; exit 2)
	$(BIN)/python -m loadtest.check $(TARGET) $(ARGS)

# Every committed report again, from this commit (docs/design.md §6.11).
# The interpreter pools' image and Redis are set up by the steps that need them.
results: $(STAMP) redis
	$(BIN)/python -m loadtest.results $(ARGS)

# README.md's and docs/*.md's generated regions, from docs/results' JSON.
docs: $(STAMP)
	$(BIN)/python -m loadtest.docgen $(ARGS)

report: $(STAMP)
	@test -n "$(DIR)" || (echo "usage: make report DIR=results/<time>"; exit 2)
	$(BIN)/python -m loadtest.compare.report $(DIR)/summary.json

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
