"""Embedding corecni's pod network manager: runs as-is as root, cleans up after itself.

It makes a "node" network namespace (standing in for the host, so the machine's
own network is never touched), writes a bridge + host-local network into a
temporary conf dir, attaches two pods (sync API, then asyncio), prints what
they got, pings one from the other, and removes everything again.

    sudo .venv/bin/python docs/examples/embed_manager.py
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
import uuid
from pathlib import Path

from corecni import netns
from corecni.manager import (
    AsyncPodNetworkManager,
    NetworkOptions,
    PodNetwork,
    PodNetworkManager,
    PodSandbox,
)


def make_netns(name: str) -> str:
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    return f"/run/netns/{name}"


def main() -> None:
    tag = uuid.uuid4().hex[:6]
    work = Path(tempfile.mkdtemp(prefix="corecni-embed-"))
    confdir = work / "net.d"
    confdir.mkdir()
    (confdir / "10-podnet.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "podnet", "plugins": [
            {"type": "bridge", "bridge": "cni-embed0", "isGateway": True,
             "ipam": {"type": "host-local", "dataDir": str(work / "ipam"),
                      "ranges": [[{"subnet": "10.66.0.0/24"}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}}]}))
    names = [f"embed-{tag}-{role}" for role in ("node", "pod1", "pod2")]
    print(f"namespaces: {' '.join(names)}")
    try:
        node, pod1_ns, pod2_ns = (make_netns(n) for n in names)
        # node-side work (the bridge) happens in "node"; first the sync API
        with netns.entered(node), \
                PodNetworkManager([str(confdir)], cache_dir=str(work / "cache")) as cni:
            cni.status()  # raises NotInitializedError until a usable config exists
            pod1 = PodSandbox(id=f"pod1{tag}", netns=pod1_ns, name="web",
                              namespace="default", uid="uid-1",
                              networks=(PodNetwork(options=NetworkOptions()
                                                   .with_labels({"app": "web"})),))
            result = cni.setup(pod1)
            eth0 = result.interfaces["eth0"]
            print(f"pod1 eth0 {eth0.mac} {[ip.address for ip in eth0.ips]}")
            cni.check(pod1)

            # --- the asyncio API: never blocks the event loop -------------------
            async def second_pod() -> str:
                async with AsyncPodNetworkManager([str(confdir)],
                                                  cache_dir=str(work / "cache")) as acni:
                    pod2 = PodSandbox(id=f"pod2{tag}", netns=pod2_ns, name="db",
                                      namespace="default", uid="uid-2")
                    res = await acni.setup(pod2)
                    address = res.interfaces["eth0"].ips[0].address
                    print(f"pod2 eth0 {address}")
                    ok = subprocess.run(["ip", "netns", "exec", names[1], "ping", "-c1",
                                         "-W2", address.split("/")[0]],
                                        capture_output=True).returncode == 0
                    print(f"pod1 -> pod2 ping: {'ok' if ok else 'FAILED'}")
                    await acni.teardown(pod2)
                    return "ok" if ok else "failed"

            outcome = asyncio.run(second_pod())
            cni.teardown(pod1)
            leftover = cni.cached_attachments()
            print(f"cached attachments after teardown: {len(leftover)}")
        if outcome != "ok" or leftover:
            raise SystemExit(1)
    finally:
        for name in names:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
