"""The native batch path under valgrind memcheck: no invalid access, no definite leak.

Python itself is noisy under valgrind, so a small C driver is linked straight
against ``native/*.c`` and replays batches that ``NativeBatch.serialize()``
produced: successful phases, a mid-batch failure with rollback, a failed name
resolution, an ACK overrun (ENOBUFS), garbage buffers, a missing namespace,
then every dump, the dry-run renderer and the link-message parser.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from corecni.net import TC_H_INGRESS, TC_H_INGRESS_HANDLE, Filter, Qdisc, Rule
from corecni.net.base import Neighbour, Route

pytest.importorskip("corecni._native")
from corecni.net.native_backend import NativeBatch

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[2]
NATIVE = ROOT / "native"

DRIVER = r"""
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include "corecni_native.h"

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(2); }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n ? (size_t)n : 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) { perror("fread"); exit(2); }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void dumps(const char *ns)
{
    struct cn_link *l; struct cn_addr *a; struct cn_route *r; struct cn_neigh *n;
    int c = cn_dump_links(ns, NULL, &l);
    printf("links %s %d", ns, c);
    for (int i = 0; i < c; i++) printf(" %s", l[i].name);
    printf("\n");
    if (c > 0) cn_free(l);
    c = cn_dump_links(ns, "eth0", &l); if (c >= 0) cn_free(l);
    c = cn_dump_links(ns, "nosuch", &l); if (c >= 0) cn_free(l);
    c = cn_dump_addrs(ns, 0, &a); printf("addrs %d\n", c); if (c >= 0) cn_free(a);
    c = cn_dump_routes(ns, 0, &r); printf("routes %d\n", c); if (c >= 0) cn_free(r);
    c = cn_dump_neighs(ns, 0, &n); printf("neighs %d\n", c); if (c >= 0) cn_free(n);
    struct cn_qdisc *q; struct cn_filter *f; struct cn_rule *ru;
    c = cn_dump_qdiscs(ns, &q); printf("qdiscs %d\n", c); if (c >= 0) cn_free(q);
    c = cn_dump_filters(ns, "veth1", 0xffff0000u, &f); printf("filters %d\n", c);
    if (c >= 0) cn_free(f);
    c = cn_dump_filters(ns, "nosuch", 0, &f); if (c >= 0) cn_free(f);
    c = cn_dump_rules(ns, 0, &ru); printf("rules %d\n", c); if (c >= 0) cn_free(ru);
    int conf[128];
    c = cn_link_conf(ns, "eth0", AF_INET, conf, 128); printf("conf4 %d\n", c);
    c = cn_link_conf(ns, "eth0", AF_INET6, conf, 128); printf("conf6 %d\n", c);
    c = cn_link_conf(ns, "eth0", AF_INET6, conf, 3);  /* fewer slots than settings */
    c = cn_link_conf(ns, "nosuch", AF_INET, conf, 128); printf("conf-nosuch %d\n", c);
}

/* argv: spec... where spec is "commit|<netns>|<rcvbuf>|<file>", "dump|<netns>" or
 * "parse|<file>" (one RTM_NEWLINK message) */
int main(int argc, char **argv)
{
    for (int k = 1; k < argc; k++) {
        char *spec = strdup(argv[k]);
        char *kind = strtok(spec, "|");
        if (strcmp(kind, "parse") == 0) {
            size_t len;
            unsigned char *buf = slurp(strtok(NULL, "|"), &len);
            struct cn_link l;
            int rc = cn_parse_link(buf, len, &l);
            printf("parse rc=%d %s mode=%d:%u vlan=%d:%u\n", rc, l.kind, l.has_mode, l.mode,
                   l.has_vlan_id, l.vlan_id);
            free(buf);
            free(spec);
            continue;
        }
        if (strcmp(kind, "dump") == 0) {
            dumps(strtok(NULL, "|"));
            free(spec);
            continue;
        }
        char *ns = strtok(NULL, "|");
        int rcvbuf = atoi(strtok(NULL, "|"));
        char *file = strtok(NULL, "|");
        size_t len;
        unsigned char *buf = slurp(file, &len);
        struct cn_err errs[64];
        struct cn_stats st;
        int rc = cn_batch_commit(ns, buf, len, rcvbuf, errs, 64, &st);
        printf("commit %s rc=%d", file, rc);
        for (int i = 0; i < rc; i++) printf(" [%d:%d]", errs[i].index, errs[i].err);
        printf(" phases=%d rolled_back=%d\n", st.phases, st.rolled_back);
        unsigned char *out; size_t outlen;
        rc = cn_batch_render(buf, len, "br0=3,eth0=2,veth1=4", &out, &outlen, errs, 64, &st);
        if (out) cn_free(out);
        free(buf);
        free(spec);
    }
    printf("version %s\n", cn_version());
    return 0;
}
"""


def _write(tmp: Path, name: str, batch: NativeBatch | bytes) -> str:
    path = tmp / name
    path.write_bytes(batch if isinstance(batch, bytes) else batch.serialize())
    return str(path)


def test_batch_path_is_clean_under_valgrind(tmp_path: Path, node_netns: str,
                                            container_netns: str) -> None:
    valgrind, gcc = shutil.which("valgrind"), shutil.which("gcc")
    if valgrind is None or gcc is None:
        pytest.skip("valgrind and gcc are needed (apt-get install -y valgrind)")
    (tmp_path / "driver.c").write_text(DRIVER)
    sources = [str(p) for p in sorted(NATIVE.glob("*.c"))]
    subprocess.run([gcc, "-g", "-O1", "-Wall", "-Wextra", "-Werror", "-std=gnu11",
                    f"-I{NATIVE}", *sources, str(tmp_path / "driver.c"), "-o",
                    str(tmp_path / "driver")], check=True)

    node, ctr = node_netns, container_netns
    bridge = (NativeBatch(node).add_bridge("br0", mtu=1400).set_link("br0", up=True)
              .add_address("br0", "10.1.0.1/24").add_address("br0", "fd01::1/64", nodad=True))
    attach = (NativeBatch(node)
              .add_veth("veth1", "eth0", peer_netns=ctr, mtu=1400, mac="02:00:00:00:00:01",
                        peer_mac="02:00:00:00:00:02")
              .set_link("veth1", master="br0", up=True, hairpin=True, promisc=True,
                        alias="pod"))
    inside = (NativeBatch(ctr)
              .set_link("eth0", up=True)
              .add_address("eth0", "10.1.0.2/24")
              .add_address("eth0", "fd01::2/64", nodad=True)
              .add_route(Route(dst="0.0.0.0/0", gateway="10.1.0.1", ifname="eth0"))
              .add_route(Route(dst="10.9.0.0/16", gateway="10.1.0.1", table=1000, priority=5,
                               mtu=1300, advmss=1200, src="10.1.0.2"))
              .add_neighbour(Neighbour("eth0", "10.1.0.9", "02:00:00:00:00:09")))
    partial = (NativeBatch(node)
               .add_bridge("nb1")
               .add_veth("a0", "a0p", peer_netns=ctr)
               .add_macvlan("mv0", "a0", netns=ctr)
               .add_route(Route(dst="10.50.0.0/16", gateway="192.0.2.1"))
               .add_bridge("nb2"))
    unresolved = NativeBatch(node).add_bridge("nb3").add_address("ghost0", "10.0.0.1/24")
    overrun = NativeBatch(node)
    for i in range(30):
        overrun.add_bridge(f"ob{i}")
    churn = (NativeBatch(node)
             .add_veth("c0", "c0p")
             .set_link("c0p", rename="c1", netns=ctr)
             .del_link("ghost0", missing_ok=True)
             .del_address("ghost0", "10.0.0.1/24", missing_ok=True)
             .del_route(Route(dst="10.77.0.0/16"), missing_ok=True)
             .del_link("c0"))
    shape = (NativeBatch(node)
             .add_ifb("ifb0").add_tap("tap0", mtu=1300).set_link("veth1", allmulti=True,
                                                                 txqlen=500)
             .add_qdisc(Qdisc("veth1", "tbf", handle=0x10000, rate=2**33, burst=10**6,
                              limit=2 * 10**6))
             .add_qdisc(Qdisc("veth1", "ingress", handle=TC_H_INGRESS_HANDLE,
                              parent=TC_H_INGRESS))
             .add_filter(Filter("veth1", TC_H_INGRESS_HANDLE, classid=0x10001, redirect="ifb0"))
             .add_rule(Rule(table=100, src="10.1.0.2/32", iif="veth1"))
             .del_link("tap0").add_tap("tap1").add_tap("tap1"))  # the second is EEXIST
    specs = [
        f"commit|{node}|0|{_write(tmp_path, 'bridge', bridge)}",
        f"commit|{node}|0|{_write(tmp_path, 'attach', attach)}",
        f"commit|{ctr}|0|{_write(tmp_path, 'inside', inside)}",
        f"commit|{node}|0|{_write(tmp_path, 'partial', partial)}",
        f"commit|{node}|0|{_write(tmp_path, 'unresolved', unresolved)}",
        f"commit|{node}|1|{_write(tmp_path, 'overrun', overrun)}",
        f"commit|{node}|0|{_write(tmp_path, 'churn', churn)}",
        f"commit|{node}|0|{_write(tmp_path, 'shape', shape)}",
        f"commit|{node}|0|{_write(tmp_path, 'garbage', bytes(range(256)) * 3)}",
        f"commit|{node}|0|{_write(tmp_path, 'truncated', attach.serialize()[:-6])}",
        f"commit|/run/netns/ccni-no-such-ns|0|{tmp_path / 'bridge'}",
        f"dump|{node}",
        f"dump|{ctr}",
    ]
    # RTM_NEWLINK requests parse as link messages: the read-back of kinds this kernel lacks
    table = {"eth0": 2}
    vlan = NativeBatch(None).add_vlan("v0", "eth0", 42).render(table)
    specs += [f"parse|{_write(tmp_path, name, data)}" for name, data in (
        ("p-vlan", vlan),
        ("p-ipvlan", NativeBatch(None).add_ipvlan("i0", "eth0", mode="l3s").render(table)),
        ("p-macvlan", NativeBatch(None).add_macvlan("m0", "eth0", mode="vepa").render(table)),
        ("p-truncated", vlan[:-4]))]
    proc = subprocess.run(
        [valgrind, "--error-exitcode=99", "--leak-check=full",
         "--show-leak-kinds=definite", "--errors-for-leak-kinds=definite",
         str(tmp_path / "driver"), *specs],
        capture_output=True, text=True, check=False, timeout=600)
    report = proc.stderr
    assert proc.returncode == 0, f"valgrind found errors:\n{report}\n{proc.stdout}"
    assert "ERROR SUMMARY: 0 errors" in report
    assert "Invalid read" not in report and "Invalid write" not in report
    assert "definitely lost: 0 bytes" in report or "All heap blocks were freed" in report

    commits = [line for line in proc.stdout.splitlines() if line.startswith("commit ")]
    names = ["bridge", "attach", "inside", "partial", "unresolved", "overrun", "churn",
             "shape", "garbage", "truncated", "missing-ns"]
    out = dict(zip(names, commits, strict=True))
    assert "rc=0 phases=2" in out["bridge"]
    assert "rc=0 phases=1" in out["attach"] and "rc=0 phases=1" in out["inside"]
    assert "rc=1 [3:101]" in out["partial"] and "rolled_back=4" in out["partial"]  # ENETUNREACH
    assert "rc=1 [1:19]" in out["unresolved"] and "rolled_back=1" in out["unresolved"]  # ENODEV
    assert ":105]" in out["overrun"] and "rolled_back=30" in out["overrun"]  # ENOBUFS
    assert "rc=0" in out["churn"]
    assert "rc=1 [9:17]" in out["shape"] and "rolled_back=2" in out["shape"]  # EEXIST: ifb, tap1
    assert "rc=-22" in out["garbage"] and "rc=-22" in out["truncated"]  # EINVAL
    assert "rc=-2 " in out["missing-ns"]  # ENOENT
    parsed = [line for line in proc.stdout.splitlines() if line.startswith("parse ")]
    assert parsed == ["parse rc=0 vlan mode=0:0 vlan=1:42", "parse rc=0 ipvlan mode=1:2 vlan=0:0",
                      "parse rc=0 macvlan mode=1:2 vlan=0:0", "parse rc=-22  mode=0:0 vlan=0:0"]
    links = [line for line in proc.stdout.splitlines() if line.startswith("links ")]
    assert links[0].split()[3:] == ["lo", "br0", "veth1"]
    assert set(links[1].split()[3:]) == {"lo", "eth0"}  # c1 went with its peer c0
    conf = [line for line in proc.stdout.splitlines() if line.startswith("conf")]
    # the node has no eth0 (ENODEV); the container's eth0 reports both families
    assert conf[:3] == ["conf4 -19", "conf6 -19", "conf-nosuch -19"]
    assert int(conf[3].split()[1]) > 26  # up to route_localnet at least
    assert int(conf[4].split()[1]) > 27  # up to accept_dad at least
    assert conf[5] == "conf-nosuch -19"
