# Two commands matter: `make demo` and `make test` (both as root on Debian).
# Everything they need is installed here; nothing is assumed to be on the machine.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
APT_PACKAGES := containernetworking-plugins golang-go golang-github-appc-cni-dev \
	iproute2 iptables nftables iputils-ping gcc libc6-dev python3-venv python3-dev valgrind \
	etcd-server iperf3 podman runc busybox-static dnsmasq-base
STAMP  := $(VENV)/.installed

.PHONY: all demo demo-cluster test docs lint typecheck unit integration interop bench soak fuzz deps venv clean

all: test

# --- installation ---------------------------------------------------------
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "apt: installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml contrib/pyproject.toml setup.py $(wildcard native/*.c native/*.h native/*.py native/*.cdef native/*.def native/shim/*)
	$(MAKE) deps
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q -e "./contrib[metrics,etcd]"
	touch $@

venv: $(STAMP)

# --- the two commands -----------------------------------------------------
demo: $(STAMP)
	$(VENV)/bin/corecni demo

# three nodes (flannel + etcd, VXLAN) in namespaces: cross-node pings, then nothing left
demo-cluster: $(STAMP)
	$(PY) -m corecni_contrib.cluster_demo

test: $(STAMP) lint typecheck docs
	$(PY) -m pytest -q tests

# --- pieces ---------------------------------------------------------------
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
# the docs site (mkdocs.yml, docs/), API reference from the docstrings, into build/site;
# --strict: any warning (a broken link, a docstring griffe cannot parse) fails the build
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict -q
typecheck: $(STAMP)
	$(VENV)/bin/mypy
unit: $(STAMP)
	$(PY) -m pytest -q tests/unit
integration: $(STAMP)
	$(PY) -m pytest -q tests/integration
interop: $(STAMP)
	$(PY) -m pytest -q tests/interop
# the long variant of the generated-input suite (`make test`: 300 inputs per plugin, the
# same every run): 3000 new inputs per plugin
fuzz: $(STAMP)
	FUZZ_RANDOM=1 FUZZ_EXAMPLES=3000 FUZZ_LIVE_EXAMPLES=1000 $(PY) -m pytest -q tests/fuzz
bench: $(STAMP)
	$(PY) -m bench
# the long variants: 200 containers through the shims + daemon (make test runs 48)
# and 200 ADDs, 12 at a time, under random SIGKILLs, then DEL/GC (make test runs 24)
soak: $(STAMP)
	CORECNI_SCALE_N=200 $(PY) -m pytest -q -s tests/integration/test_daemon_scale.py
	SOAK_ADDS=200 $(PY) -m pytest -q -s tests/soak

clean:
	rm -rf $(VENV) build *.egg-info contrib/*.egg-info .gobuild
