# popsteer — the two commands: `make run` and `make test`.
# npm scripts and this Makefile run on the Node 24 runtime from the `node`
# devDependency (node_modules/.bin comes first on PATH).

SHELL := /bin/bash
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)

# Debian tools the tests call, installed idempotently.
TEST_DEBS := bind9-dnsutils knot-dnsutils dnsperf exabgp bird2 chromium openssl fstrm-bin dnstap-ldns lintian systemd util-linux iproute2 unbound pdns-recursor zonemaster-cli
# Debian packages that ship a daemon the tests never use: installed with its
# service kept from starting (tests run their own processes).
TEST_DEBS_NO_SERVICE := prometheus nats-server knot
# What the native UDP module (server/transport/native/udp_batch.c) is built with.
BUILD_DEBS := gcc libc6-dev libuv1-dev binutils
NATIVE_UDP := build/udp_batch.node

# Installs the Debian packages named in $(1) that are missing.
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

# Installs the packages named in $(1) that are missing without starting their
# services: a policy-rc.d that denies starts while apt runs (unless the machine
# has its own), then the units are disabled and stopped in case an init system
# started them anyway. Only packages installed here are touched.
define apt_install_no_service
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing (services not started):$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  policy=""; if [ ! -e /usr/sbin/policy-rc.d ]; then policy=/usr/sbin/policy-rc.d; \
	    printf '#!/bin/sh\nexit 101\n' | $$SUDO tee $$policy >/dev/null && $$SUDO chmod 755 $$policy; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; status=$$?; \
	  [ -z "$$policy" ] || $$SUDO rm -f $$policy; \
	  for p in $$missing; do \
	    if [ -d /run/systemd/system ]; then $$SUDO systemctl disable --now $$p >/dev/null 2>&1 || true; \
	    elif [ -x /etc/init.d/$$p ]; then $$SUDO /etc/init.d/$$p stop >/dev/null 2>&1 || true; fi; \
	  done; \
	  exit $$status; \
	fi
endef

.PHONY: run test deps debs build-debs native typecheck lint deb bench bench-scale bench-fleet soak fuzz-nightly clean openapi

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

deps: node_modules/.installed

debs:
	$(call apt_install,$(TEST_DEBS))
	$(call apt_install_no_service,$(TEST_DEBS_NO_SERVICE))

build-debs:
	$(call apt_install,$(BUILD_DEBS))

# Batched UDP system calls (recvmmsg/sendmmsg). Node-API and libuv 1.x are
# ABI-stable, so one build serves any Node that loads it.
$(NATIVE_UDP): server/transport/native/udp_batch.c node_modules/.installed
	@$(MAKE) --no-print-directory build-debs
	@mkdir -p build
	cc -O2 -Wall -Wextra -Werror -shared -fPIC -I node_modules/node-api-headers/include -o $@.tmp $< && mv $@.tmp $@

native: $(NATIVE_UDP)

# Serves even where the native module cannot be built: UDP then runs on dgram.
run: deps
	@$(MAKE) --no-print-directory native || echo "popsteer: native UDP module not built; UDP will run on Node's dgram"
	node bin/popsteer.js serve --config policies --geo-data geo-data --listen 127.0.0.1:5353 --admin 127.0.0.1:8053

typecheck: deps
	tsc --noEmit -p tsconfig.json

# typescript-eslint with type information (eslint.config.js): unused code,
# floating and misused promises.
lint: deps
	eslint --max-warnings 0 .

# Test servers share one GeoIP index cache made for this run (built once
# here, before the servers start). Every temporary file of the run goes
# under one directory of its own (TMPDIR), removed after it with the cache,
# so the suite leaves nothing in /tmp, $$HOME or the tree, whatever a test
# or a process it started forgot to remove.
test: deps debs native typecheck lint
	@cache=$$(mktemp -d -t popsteer-test-cache.XXXXXX); scratch=$$(mktemp -d -t popsteer-test-tmp.XXXXXX); \
	POPSTEER_CACHE_DIR=$$cache node bin/popsteer.js validate >/dev/null; \
	TMPDIR=$$scratch POPSTEER_TEST_CACHE_DIR=$$cache node --test --test-concurrency=2 --test-timeout=180000 \
	  'test/unit/**/*.test.ts' 'test/conformance/**/*.test.ts' 'test/integration/**/*.test.ts' 'test/bench/**/*.test.ts'; \
	status=$$?; rm -rf "$$cache" "$$scratch"; exit $$status

# dist/popsteer_<version>_<arch>.deb: popsteer, its production dependencies,
# the Node.js 24 runtime and the native UDP module (packaging/build-deb.ts).
deb: deps native
	node packaging/build-deb.ts --out dist

# Not part of `make test`: figures, not verdicts. Installs the peers it compares with.
bench: deps native
	node test/bench/run-all.ts

# What a CDN-sized configuration costs: start-up, memory, reload, q/s (test/bench/scale/run.ts; SCALE_QUICK=1 for the small sizes).
bench-scale: deps native
	node test/bench/scale/run.ts

# Five popsteer instances on a 3-server NATS cluster: drain and publish propagation, probes per target, RSS and CPU of the fleet layer.
bench-fleet: deps native
	node test/bench/fleet.bench.ts
	node test/bench/fleet-verdict.bench.ts

# Ten minutes at 70% of peak with flapping probes and reloads (SOAK_SECONDS to change).
soak: deps debs
	node test/soak/soak.ts

# The fuzz suite at nightly size.
fuzz-nightly: deps
	FUZZ_RUNS=1000000 node --test test/conformance/fuzz.test.ts

# The admin API's OpenAPI description, generated from its route schemas.
openapi: deps
	mkdir -p contrib && node server/cli/openapi-export.ts > contrib/openapi.json.tmp && mv contrib/openapi.json.tmp contrib/openapi.json

clean:
	rm -rf node_modules state test-results build dist
