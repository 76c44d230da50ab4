"""Generated bad input against every exec'd contrib plugin (issue 12's standing fuzz).

For each plugin, hypothesis makes at least ``FUZZ_EXAMPLES`` (300) calls from a valid
call by mutating it: the CNI_* variables (any bytes, a missing or foreign or own
namespace, odd commands), stdin (random bytes, a key set to any JSON value, a key
removed, byte edits, a BOM, NaN, deep nesting) or both. Each call must answer as a
plugin must:

* stdout holds one JSON object or nothing, never a traceback (nor stderr one);
* a failure is exit 1 with an error JSON whose code is a spec code (1-7, 11, 50,
  51) or 999 for a kernel refusal - never 999 naming a Python exception;
* nothing changes: links, addresses, routes, rules and qdiscs of node and
  containers, the node's nftables and iptables, the plugins' stores. A call that
  succeeds is an ADD the input happened not to break: its DEL (same input) must
  succeed and leave the same nothing (beyond what a plugin keeps on purpose for
  every pod, as Go's do: see ``reset_shared``).

Every contrib plugin is fuzzed: interface and IPAM plugins attach to the container
namespace; meta plugins get a ``prevResult`` naming a real veth (``Node.prev_result``)
in a second one. dummy, vrf, ipvlan and vlan have no kernel module here: their valid ADD fails
(999 naming the module), so what is checked there is the refusals and that a
failing ADD changes nothing.

``test_generated_input_on_a_live_attachment`` makes the same calls on top of a live
attachment (``LIVE_EXAMPLES`` per plugin): a failing call must leave it exactly as it
was (this found tuning's repeated/failing ADD losing the pod's saved settings), and
DEL of both must leave nothing.

Calls go through the fork server (the installed launcher's own code in a forked
child: an exec without interpreter start, ~10x cheaper); every ``REAL_EXEC_EVERY``-th
call is a real exec of the launcher. ``make fuzz`` runs more examples, new each time
(``FUZZ_EXAMPLES``, ``FUZZ_LIVE_EXAMPLES``, ``FUZZ_RANDOM``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corecni.testing import NetnsFactory
from tests.fuzz._node import ForkServer, Node, Reply, exec_launcher, state

pytestmark = pytest.mark.root

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
#: ``make test`` replays the same inputs every run (derandomized: a red run is
#: reproducible); ``make fuzz`` sets FUZZ_RANDOM=1 and explores new ones each time
FUZZ_RANDOM = os.environ.get("FUZZ_RANDOM", "") not in ("", "0")
REAL_EXEC_EVERY = 100
#: the plugins that write the node's firewall (only then is it read: ~1 ms each time)
FIREWALLING = {"bridge", "ptp", "portmap", "firewall"}
#: no kernel module here: a valid ADD fails (999, naming the module)
NO_MODULE = {"dummy", "vrf", "ipvlan", "vlan"}
META = {"bandwidth", "tuning", "sbr", "vrf", "portmap", "firewall"}
SPEC_CODES = {1, 2, 3, 4, 5, 6, 7, 11, 50, 51}
#: a 999 whose details are a Python exception name is an unhandled bug, not the kernel
PYTHON_EXCEPTION = re.compile(r"^[A-Z][A-Za-z]*(Error|Exception|Exit|Interrupt|Warning)$")


def ipam(node: Node, subnet: str) -> dict[str, Any]:
    return {"type": "host-local", "dataDir": str(node.data_dir),
            "ranges": [[{"subnet": subnet}]], "routes": [{"dst": "0.0.0.0/0"}]}


def base_configs(node: Node) -> dict[str, dict[str, Any]]:
    """A valid config per plugin type (each ADDs and DELs cleanly on the fuzz node)."""
    def net(plugin_type: str, **keys: Any) -> dict[str, Any]:
        return {"cniVersion": "1.0.0", "name": "fuzznet", "type": plugin_type, **keys}

    prev = node.prev_result()

    return {
        "bridge": net("bridge", bridge="fz0", isGateway=True, ipMasq=True,
                      ipam=ipam(node, "10.61.0.0/24")),
        "ptp": net("ptp", ipMasq=True, ipam=ipam(node, "10.62.0.0/24")),
        "macvlan": net("macvlan", master="phys0", ipam=ipam(node, "10.63.0.0/24")),
        "ipvlan": net("ipvlan", master="phys0", ipam=ipam(node, "10.64.0.0/24")),
        "vlan": net("vlan", master="phys0", vlanId=5, ipam=ipam(node, "10.65.0.0/24")),
        "host-device": net("host-device", device="hostdev0"),
        "loopback": net("loopback"),
        "host-local": net("host-local", ipam=ipam(node, "10.66.0.0/24")),
        "static": net("static", ipam={"type": "static", "addresses": [
            {"address": "10.67.0.5/24", "gateway": "10.67.0.1"}],
            "routes": [{"dst": "0.0.0.0/0"}]}),
        "tap": net("tap", mtu=1400, ipam=ipam(node, "10.68.0.0/24")),
        "dummy": net("dummy", ipam=ipam(node, "10.69.0.0/24")),
        "bandwidth": net("bandwidth", ingressRate=1000000, ingressBurst=100000,
                         egressRate=2000000, egressBurst=200000, prevResult=prev),
        "tuning": net("tuning", mtu=1400, promisc=True, txQLen=500,
                      sysctl={"net.ipv4.conf.eth0.arp_filter": "1"},
                      dataDir=str(node.data_dir / "tuning"), prevResult=prev),
        "sbr": net("sbr", prevResult=prev),
        "vrf": net("vrf", vrfname="vrf0", table=1001, prevResult=prev),
        "portmap": net("portmap", capabilities={"portMappings": True}, snat=True,
                       runtimeConfig={"portMappings": [
                           {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                           {"hostPort": 8053, "containerPort": 53, "protocol": "udp"}]},
                       prevResult=prev),
        "firewall": net("firewall", backend="iptables", prevResult=prev),
    }


# --- strategies ----------------------------------------------------------------------------

def env_text() -> st.SearchStrategy[str]:
    """What an environment value can be: any bytes but NUL, as os.environ decodes them."""
    return st.one_of(
        st.text(max_size=40).filter(lambda t: "\x00" not in t),
        st.binary(max_size=40).map(
            lambda b: b.replace(b"\x00", b"").decode("utf-8", "surrogateescape")),
        st.sampled_from(["", "eth0", "a" * 16, "a" * 300, ".", "..", "eth:0", "e th",
                         "\udcff\udcfe", "eth0\n", "lo", "vethmeta0", "phys0", "net1"]),
    )


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
        st.sampled_from(["", "0.0.0.0/0", "::/0", "10.61.0.0/24", "fd00::/64", "cni0",
                         "no-such-type", "/tmp/\x00x", "\ud800", "zz:zz", "a" * 300,
                         "../../etc", "1.0.0", "9.9.9", "host-local", "nftables",
                         "iptables", "tcp", "eth0", "10.70.0.2/24", "net.ipv4.ip_forward"]))
    return st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
        max_leaves=6)


def key_paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.extend(key_paths(value, (*prefix, key)))
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            out.extend(key_paths(value, (*prefix, index)))
    return out


def set_path(obj: Any, path: tuple[Any, ...], value: Any, delete: bool = False) -> Any:
    copy = json.loads(json.dumps(obj))
    target = copy
    for step in path[:-1]:
        target = target[step]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return copy


EXTRA_KEYS = ["bridge", "ipam", "mtu", "master", "mode", "vlanId", "cniVersion", "name",
              "type", "prevResult", "runtimeConfig", "args", "dns", "isGateway", "ipMasq",
              "hairpinMode", "vlan", "vlanTrunk", "device", "capabilities",
              "cni.dev/valid-attachments", "dataDir", "ingressRate", "egressBurst",
              "sysctl", "txQLen", "promisc", "allmulti", "table", "vrfname", "multiQueue",
              "owner", "group", "portMappings", "snat", "markMasqBit", "externalSetMarkChain",
              "conditionsV4", "masqAll", "backend", "ingressPolicy", "iptablesAdminChainName",
              "selinuxContext"]


@st.composite
def stdin_of(draw: st.DrawFn, base: dict[str, Any]) -> bytes:
    kind = draw(st.sampled_from(["same", "set", "set", "set", "delete", "add", "bytes",
                                 "edit", "special"]))
    paths = key_paths(base)
    if kind == "same":
        return json.dumps(base).encode()
    if kind == "set":
        return json.dumps(set_path(base, draw(st.sampled_from(paths)),
                                   draw(json_values()))).encode()
    if kind == "delete":
        return json.dumps(set_path(base, draw(st.sampled_from(paths)), None,
                                   delete=True)).encode()
    if kind == "add":
        section = draw(st.sampled_from([(), ("ipam",)] if "ipam" in base else [()]))
        key = draw(st.one_of(st.sampled_from(EXTRA_KEYS), st.text(max_size=10)))
        return json.dumps(set_path(base, (*section, key), draw(json_values()))).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    text = json.dumps(base).encode()
    if kind == "edit":
        at = draw(st.integers(min_value=0, max_value=len(text)))
        edit = draw(st.sampled_from(["cut", "insert", "replace"]))
        chunk = draw(st.binary(min_size=1, max_size=4))
        if edit == "cut":
            return text[:at]
        if edit == "insert":
            return text[:at] + chunk + text[at:]
        return text[:at] + chunk + text[at + len(chunk):]
    special = draw(st.sampled_from(["bom", "nan", "deep", "deep-unclosed", "utf16", "empty",
                                    "array", "nul"]))
    return {
        "bom": b"\xef\xbb\xbf" + text,
        "nan": text[:-1] + b', "mtu": NaN}',
        "deep": text[:-1] + b', "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        "deep-unclosed": b"{" * 3000,
        "utf16": json.dumps(base).encode("utf-16"),
        "empty": b"",
        "array": b"[" + text + b"]",
        "nul": text[:-1] + b', "x": "a\\u0000b"}',
    }[special]


@st.composite
def env_of(draw: st.DrawFn, node: Node, netns: str) -> dict[str, str]:
    env = node.env(draw(st.sampled_from(["ADD"] * 6 + ["DEL", "CHECK", "GC", "STATUS"])),
                   netns=netns)
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        key = draw(st.sampled_from(["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS",
                                    "CNI_IFNAME", "CNI_ARGS", "CNI_PATH", "CNI_ARGS"]))
        if key == "CNI_NETNS":
            value = draw(st.one_of(st.sampled_from(
                ["", "/proc/self/ns/net", "/nonexistent", "/etc/hostname", "/proc/self/ns/uts",
                 "/run/netns"]), env_text()))
        elif key == "CNI_COMMAND":
            value = draw(st.one_of(st.sampled_from(
                ["", "VERSION", "add", "FROB", "ADD ", "DEL"]), env_text()))
        elif key == "CNI_ARGS":
            value = draw(st.one_of(env_text(), st.sampled_from(
                ["IP=10.61.0.300", "IP=zz", "MAC=zz:zz", "K=a=b", "some;extra;args",
                 "IgnoreUnknown=1;IP=10.99.0.5", "IP=10.61.0.7", "GATEWAY=x"])))
        else:
            value = draw(env_text())
        if value == "" and draw(st.booleans()):
            env.pop(key, None)
        else:
            env[key] = value
    return env


# --- the checks -----------------------------------------------------------------------------

def assert_answer(reply: Reply, env: dict[str, str]) -> dict[str, Any] | None:
    """The protocol's shape; the parsed stdout (None when empty)."""
    text = reply.stdout.decode("utf-8", "replace")
    assert "Traceback" not in text, text
    assert "Traceback" not in reply.stderr.decode("utf-8", "replace"), reply.stderr
    assert reply.status in (0, 1), (reply.status, reply.stderr[-2000:])
    out = json.loads(text) if text.strip() else None
    if reply.status == 0:
        assert out is None or isinstance(out, dict), text
        return out
    assert isinstance(out, dict), (text, reply.stderr[-500:])
    code, msg = out.get("code"), out.get("msg")
    assert isinstance(code, int) and isinstance(msg, str), out
    details = str(out.get("details", ""))
    if code == 999:
        assert not PYTHON_EXCEPTION.match(details), (out, env)
        assert "Traceback" not in msg + details, out
    else:
        assert code in SPEC_CODES, out
    return out


@pytest.fixture(scope="module")
def fuzz_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, ForkServer]]:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    factory = NetnsFactory()
    server = None
    try:
        node = Node.make(factory, tmp_path_factory.mktemp("fuzz"))
        # plugins run in the store: a relative ``dataDir`` of a generated input writes
        # there (checked like the rest), never into the repository
        server = ForkServer(node.node, cwd=node.data_dir)
        yield node, server
    finally:
        if server is not None:
            server.close()
        factory.cleanup()


def reset_shared(node: Node, server: ForkServer, plugin_type: str) -> None:
    """After a successful ADD+DEL: undo what a plugin keeps on purpose beyond one pod, as
    Go's do: the masquerade/portmap/firewall chains and tables, lo taken down by
    loopback's DEL, sbr's routes moved out of the main table (the meta attachment is
    made again). A bridge is not reset: the DEL of the ADD that created it removes it."""
    if plugin_type == "sbr":
        node.make_meta_link()
    server.reset(flush=plugin_type in FIREWALLING,
                 up=((node.ctr, "lo"), (node.mctr, "lo")) if plugin_type == "loopback" else ())


PLUGINS = ["bridge", "ptp", "macvlan", "ipvlan", "vlan", "host-device", "loopback",
           "host-local", "static", "tap", "dummy", "bandwidth", "tuning", "sbr", "vrf",
           "portmap", "firewall"]


@pytest.mark.parametrize("plugin_type", PLUGINS)
def test_generated_bad_input(plugin_type: str, fuzz_node: tuple[Node, ForkServer]) -> None:
    node, server = fuzz_node
    base = base_configs(node)[plugin_type]
    path = node.launcher(plugin_type)
    netns = node.mctr if plugin_type in META else node.ctr
    rules = plugin_type in FIREWALLING  # only these write firewall rules: read them
    namespaces = (node.node, node.ctr, node.mctr)
    baseline = state(node, server, with_firewall=rules)
    valid_add(node, server, plugin_type, base, netns, baseline)
    calls, added = [0], [0]

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
              derandomize=not FUZZ_RANDOM, suppress_health_check=list(HealthCheck),
              print_blob=True)
    @given(env=env_of(node, netns), stdin=stdin_of(base))
    def one_call(env: dict[str, str], stdin: bytes) -> None:
        calls[0] += 1
        real = calls[0] % REAL_EXEC_EVERY == 0
        reply = exec_launcher(node.node, path, env, stdin, cwd=node.data_dir) if real else \
            server.call(path, env, stdin, state_of=namespaces, firewall=rules)
        assert_answer(reply, env)
        command = env.get("CNI_COMMAND")
        if reply.status == 0 and command == "ADD":
            added[0] += 1
            result = reply.stdout
            reply = server.call(path, {**env, "CNI_COMMAND": "DEL"}, stdin,
                                state_of=namespaces, firewall=rules)
            assert reply.status == 0, ("DEL after a successful ADD failed", reply, env, stdin)
            assert not attachment_rules(reply.nft, result, env["CNI_CONTAINERID"]), \
                (reply.nft, env, stdin)
        now = state(node, server, with_firewall=rules, reply=reply)
        if reply.status == 0 and command in ("ADD", "DEL") and now != baseline:
            reset_shared(node, server, plugin_type)
            now = state(node, server, with_firewall=rules)
        assert now == baseline, {"input": (env, stdin[:500]), **difference(baseline, now)}

    one_call()
    assert calls[0] >= FUZZ_EXAMPLES
    print(f"{plugin_type}: {calls[0]} calls, {added[0]} successful ADDs")
    if plugin_type not in NO_MODULE:  # inputs that happen to stay valid reach the kernel
        assert added[0] > 0


#: examples of the live-attachment variant per plugin in ``make test`` (each is three calls)
LIVE_EXAMPLES = int(os.environ.get("FUZZ_LIVE_EXAMPLES", "30"))
#: commands whose success changes nothing either
READ_ONLY = {"CHECK", "STATUS", "VERSION"}


@pytest.mark.parametrize("plugin_type", [p for p in PLUGINS if p not in NO_MODULE])
def test_generated_input_on_a_live_attachment(plugin_type: str,
                                              fuzz_node: tuple[Node, ForkServer]) -> None:
    """The same inputs, each on top of a live attachment (the base config's ADD of c1 on
    eth0): a call that fails - an ADD for the same container and interface, a DEL of
    another, a CHECK that finds drift - or a read-only one that succeeds leaves the live
    attachment exactly as it was (a failed ADD's undo must not take the live pod's
    address, rules or saved settings with it). Then the input's own attachment (if it
    made one) and the live one are deleted: the node is as before."""
    node, server = fuzz_node
    base = base_configs(node)[plugin_type]
    path = node.launcher(plugin_type)
    netns = node.mctr if plugin_type in META else node.ctr
    rules = plugin_type in FIREWALLING
    namespaces = (node.node, node.ctr, node.mctr)
    baseline = state(node, server, with_firewall=rules)
    live_env, live_stdin = node.env("ADD", netns=netns), json.dumps(base).encode()

    @settings(max_examples=LIVE_EXAMPLES, deadline=None, database=None,
              derandomize=not FUZZ_RANDOM, suppress_health_check=list(HealthCheck),
              print_blob=True)
    @given(env=env_of(node, netns), stdin=stdin_of(base))
    def one_call(env: dict[str, str], stdin: bytes) -> None:
        live = server.call(path, live_env, live_stdin, state_of=namespaces, firewall=rules)
        assert live.status == 0, live
        before = state(node, server, with_firewall=rules, reply=live)
        reply = server.call(path, env, stdin, state_of=namespaces, firewall=rules)
        assert_answer(reply, env)
        command = env.get("CNI_COMMAND")
        if (reply.status != 0 and command != "DEL") or (reply.status == 0 and command in READ_ONLY):
            now = state(node, server, with_firewall=rules, reply=reply)
            assert now == before, {"input": (env, stdin[:500]), **difference(before, now)}
        if reply.status == 0 and command == "ADD":
            undo = server.call(path, {**env, "CNI_COMMAND": "DEL"}, stdin)
            assert undo.status == 0, ("DEL after a successful ADD failed", undo, env, stdin)
        gone = server.call(path, {**live_env, "CNI_COMMAND": "DEL"}, live_stdin)
        assert gone.status == 0, gone
        now = state(node, server, with_firewall=rules)
        if now != baseline:
            reset_shared(node, server, plugin_type)
            now = state(node, server, with_firewall=rules)
        assert now == baseline, {"input": (env, stdin[:500]), **difference(baseline, now)}

    one_call()


def attachment_rules(ruleset: str | None, added: bytes, container_id: str) -> list[str]:
    """The lines of the node's ruleset that still name an attachment after its DEL: its
    addresses (from the ADD's result), its ID (corecni's nftables comments), its own
    chains (Go's ``CNI-<hash>`` masquerade, ``CNI-DN-<hash>`` DNAT). What may stay is
    what every pod shares (base chains, ``CNI-HOSTPORT-*``, ``CNI-FORWARD``, ...)."""
    result = json.loads(added)
    words = [re.compile(r"(?<![\d.])" + re.escape(ip["address"].split("/")[0]) + r"(?![\d])")
             for ip in result.get("ips", [])]
    words += [re.compile(r"\bCNI-(DN-)?[0-9a-f]{20,}\b"),
              re.compile(r'comment "[^"]*\b' + re.escape(container_id) + r'\b')]
    return [line for line in (ruleset or "").splitlines() if any(w.search(line) for w in words)]


def difference(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Only what changed, one level into each namespace (the whole state is long)."""
    out: dict[str, Any] = {}
    for key in before:
        old, new = before[key], after.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            out[key] = {sub: {"gone": [r for r in old[sub] if r not in new.get(sub, [])],
                              "new": [r for r in new.get(sub, []) if r not in old[sub]]}
                        for sub in old if old[sub] != new.get(sub)}
        else:
            out[key] = {"before": old, "after": new}
    return out


def valid_add(node: Node, server: ForkServer, plugin_type: str, base: dict[str, Any],
              netns: str, baseline: dict[str, Any]) -> None:
    """The base config is valid: its ADD succeeds (or, without the kernel module, fails
    with 999 naming it), its DEL leaves the node as it was. Else every generated input
    would fail for the same reason and the fuzz would prove nothing."""
    stdin = json.dumps(base).encode()
    rules = plugin_type in FIREWALLING
    added = server.call(node.launcher(plugin_type), node.env("ADD", netns=netns), stdin,
                        state_of=(node.node,), firewall=rules)
    if rules:  # the leftover detector sees what an ADD writes
        assert attachment_rules(added.nft, added.stdout, "c1"), added.nft
    if plugin_type in NO_MODULE:
        error = json.loads(added.stdout)
        assert added.status == 1 and error["code"] == 999, error
        assert "module" in error["msg"], error
    else:
        assert added.status == 0, (added.stdout, added.stderr[-2000:])
        result = json.loads(added.stdout)
        assert result.get("interfaces") or result.get("ips"), result
    deleted = server.call(node.launcher(plugin_type), node.env("DEL", netns=netns), stdin)
    assert deleted.status == 0, deleted
    if state(node, server, with_firewall=rules) != baseline:
        reset_shared(node, server, plugin_type)
    now = state(node, server, with_firewall=rules)
    assert now == baseline, difference(baseline, now)


BAD_ARGS = ["IP=zz;MAC=zz:zz;GATEWAY=x", "K=a=b;some;extra;args", "IP=10.0.0.300/24",
            "IgnoreUnknown=1;MAC=01:02"]


@pytest.mark.parametrize("plugin_type", PLUGINS)
def test_del_never_fails_on_cni_args(plugin_type: str,
                                     fuzz_node: tuple[Node, ForkServer]) -> None:
    """Issue 12 item 3, for every contrib plugin and inside a test node (DEL of
    bandwidth, portmap and firewall acts in the node's namespace): DEL of a live
    attachment with CNI_ARGS a strict parser refuses succeeds and removes it."""
    node, server = fuzz_node
    base = base_configs(node)[plugin_type]
    netns = node.mctr if plugin_type in META else node.ctr
    rules = plugin_type in FIREWALLING
    baseline = state(node, server, with_firewall=rules)
    stdin = json.dumps(base).encode()
    for args in BAD_ARGS:
        added = server.call(node.launcher(plugin_type), node.env("ADD", netns=netns), stdin)
        assert added.status == (1 if plugin_type in NO_MODULE else 0), added
        deleted = server.call(node.launcher(plugin_type),
                              node.env("DEL", netns=netns, args=args), stdin,
                              state_of=(node.node, node.ctr, node.mctr), firewall=rules)
        assert (deleted.status, deleted.stdout) == (0, b""), (args, deleted)
        if added.status == 0:
            assert not attachment_rules(deleted.nft, added.stdout, "c1"), deleted.nft
        now = state(node, server, with_firewall=rules, reply=deleted)
        if now != baseline:
            reset_shared(node, server, plugin_type)
            now = state(node, server, with_firewall=rules)
        assert now == baseline, (args, difference(baseline, now))
