# upnext — see README.md. `make run` and `make test` are all a newcomer needs.
.PHONY: run test install build train eval skew train-logged retrain-loop online-eval bench bench-compare loadtest world kuairand shardmap clean check-cycles faiss-avx2 faiss-avx2-if-possible

NODE ?= node
TSC  := node_modules/.bin/tsc

## install: Debian packages, npm packages and the faiss-node build (only what is missing)
install:
	@scripts/install.sh

## build: compile TypeScript to dist/
build: install
	@$(TSC) -p tsconfig.json

## faiss-avx2: faiss 1.7.3 compiled for AVX2/FMA + a second faiss-node addon (1-4 min once); item
## shards load it when present and the CPU has avx2+fma (UPNEXT_FAISS=debian|avx2|auto overrides)
faiss-avx2: install
	@scripts/build-faiss-avx2.sh

## the same, best effort: run/bench/loadtest try it and carry on with Debian's faiss if it fails
## (skip it with UPNEXT_FAISS=debian); `make test` never builds it, so CI tests Debian's build
faiss-avx2-if-possible: install
	@if [ "$${UPNEXT_FAISS:-auto}" != debian ] && grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then \
	  scripts/build-faiss-avx2.sh || echo "warning: the AVX2 faiss build failed; item shards use Debian's faiss (slower retrieval)" >&2; fi

## run: build, prepare the default world and models (cached), start a local cluster, show it serving
run: build faiss-avx2-if-possible
	@$(NODE) dist/cluster/local/main.js $(ARGS)

## test: unit + integration tests against real nats-server, faiss, ONNX Runtime and gRPC
test: build check-cycles
	@scripts/run-tests.sh

## check-cycles: fail on import cycles (keeps the layering honest)
check-cycles: build
	@dirs=$$(for d in core actors cluster shardmap offline loadtest; do [ -d dist/$$d ] && echo dist/$$d; done); \
	node_modules/.bin/madge --circular --extensions js $$dirs >/dev/null 2>&1 || { node_modules/.bin/madge --circular --extensions js $$dirs; exit 1; }

## train: default world + KuaiRand -> models/ and reports/eval.json
train: build
	@$(NODE) dist/offline/cli.js train $(ARGS)

## eval: offline evaluation of the current models -> reports/eval.json
eval: build
	@$(NODE) dist/offline/cli.js eval $(ARGS)

## skew: training/serving skew of ranker features (feature log vs training rows) -> reports/skew.json
## (ARGS="--nats nats://127.0.0.1:4222 --cluster local --world default --models models")
skew: build
	@$(NODE) dist/offline/cli.js skew $(ARGS)

## train-logged: retrain the ranker on the rows the cluster logged, joined with the events that followed
## (ARGS="--nats nats://127.0.0.1:4222 --cluster local [--from-model models/<version>]"; default: the served version)
train-logged: build
	@$(NODE) dist/offline/cli.js train-logged $(ARGS)

## retrain-loop: train-logged on a schedule; --promote switches the cluster to a candidate that passes the gate
## (ARGS="--nats nats://127.0.0.1:4222 --cluster local --every 6h [--promote] [--rounds N]"; one JSON line per round -> reports/retrain.jsonl)
retrain-loop: build
	@$(NODE) dist/offline/cli.js retrain-loop $(ARGS)

## online-eval: the world's simulated users against a running cluster (paired arms) -> reports/online-eval.json
## (ARGS="--target 127.0.0.1:50051 --world data/worlds/<world> --requests 2000 --rate 20 [--log-events]")
online-eval: build
	@$(NODE) dist/loadtest/online-eval.js $(ARGS)

## bench: component benchmarks and the end-to-end ceiling ratio -> reports/bench.json
## (faiss runs single-threaded: OpenMP's one-thread-per-core default made one search 20x slower)
bench: build faiss-avx2-if-possible
	@OMP_NUM_THREADS=1 $(NODE) dist/loadtest/bench.js $(ARGS)

## bench-compare: two bench reports side by side, and the conditions in which they differ
## (A=reports/<baseline>.json, B defaults to reports/bench.json)
bench-compare: build
	@test -n "$(A)" || { echo "make bench-compare: set A=reports/<baseline>.json (B defaults to reports/bench.json)" >&2; exit 2; }
	@$(NODE) dist/loadtest/bench-compare.js $(A) $(or $(B),reports/bench.json)

## loadtest: a named scenario (SCENARIO=ramp) against a local cluster -> reports/loadtest/
loadtest: build faiss-avx2-if-possible
	@$(NODE) dist/loadtest/cli.js $(or $(SCENARIO),ramp) $(ARGS)

## world: generate a synthetic world (ARGS="--name default --videos 1000000 --users 20000 --days 5")
world: build
	@$(NODE) dist/offline/world/cli.js $(ARGS)

## kuairand: convert ../shared/data/kuairand into data/worlds/kuairand
kuairand: build
	@$(NODE) dist/offline/kuairand/cli.js $(ARGS)

## shardmap: show the shard map of a running cluster (ARGS="show --nats nats://127.0.0.1:4222 --cluster local")
shardmap: build
	@$(NODE) dist/shardmap/cli.js $(or $(ARGS),show)

clean:
	rm -rf dist run
