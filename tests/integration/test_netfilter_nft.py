"""nft in-process (libnftables) and as the ``nft`` tool: the same transactions, the
same answers, in the calling thread's namespace only.

``corecni.kit.firewall`` runs nft scripts through libnftables when it loads and
falls back to exec'ing ``nft`` (``CORECNI_NFT_EXEC=1`` forces that). Plugins
tell failures apart by nft's messages ("File exists", "No such file or
directory"), so both ways must answer alike.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable
from typing import Any

import pytest

from corecni import netns
from corecni.kit import firewall
from corecni.spec.errors import CNIError

SCRIPT = """add table inet ccnitest
add set inet ccnitest s { type ipv4_addr; }
add map inet ccnitest m { type inet_proto . inet_service : ipv4_addr . inet_service; }
add element inet ccnitest s { 10.0.0.1 comment "c1" }
add element inet ccnitest m { tcp . 8080 comment "c1" : 10.0.0.1 . 80 }
"""


def _ruleset(path: str) -> Any:
    name = path.rsplit("/", 1)[-1]
    out = subprocess.run(["ip", "netns", "exec", name, "nft", "-j", "list", "ruleset"],
                         capture_output=True, text=True, check=True).stdout
    return [item for item in json.loads(out)["nftables"] if "metainfo" not in item]


@pytest.mark.parametrize("way", ["in-process", "exec"])
def test_same_transactions_and_messages(way: str, netns_factory: Callable[..., str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    if way == "exec":
        monkeypatch.setenv(firewall.NFT_EXEC_ENV, "1")
    elif firewall._libnftables() is None:
        pytest.skip("libnftables.so.1 is not installed")
    node = netns_factory("node")
    with netns.entered(node):
        assert firewall.nft_list_table("inet", "ccnitest") is None
        assert firewall.nft_chain_rules("inet", "ccnitest", "nope") is None
        firewall.nft_run(SCRIPT)
        listing = firewall.nft_list_table("inet", "ccnitest")
        assert {(e.set_name, e.key, e.comment) for e in firewall.nft_elements(listing)} == {
            ("s", "10.0.0.1", "c1"), ("m", "tcp . 8080", "c1")}
        # another value under a key that exists fails the whole transaction
        with pytest.raises(CNIError) as err:
            firewall.nft_run('add element inet ccnitest s { 10.0.0.2 comment "c2" }\n'
                             "add element inet ccnitest m { tcp . 8080 : 10.0.0.2 . 80 }\n")
        assert "File exists" in err.value.details
        with pytest.raises(CNIError) as err:
            firewall.nft_run("add element inet ccnitest gone { 10.0.0.3 }\n")
        assert "No such file or directory" in err.value.details
        firewall.nft_run("add chain inet ccnitest c\nadd rule inet ccnitest c ip saddr @s accept\n")
        rules = firewall.nft_chain_rules("inet", "ccnitest", "c")
        assert rules is not None and len(rules["c"]) == 1
    # seen from outside: the failed transactions left nothing (no 10.0.0.2, no set "gone")
    sets = {e["set"]["name"]: json.dumps(e["set"].get("elem")) for e in _ruleset(node)
            if "set" in e}
    assert list(sets) == ["s"] and "10.0.0.1" in sets["s"] and "10.0.0.2" not in sets["s"]


def test_in_process_runs_in_the_calling_threads_namespace(
        netns_factory: Callable[..., str]) -> None:
    """Two threads in two namespaces at once: each script lands in its own."""
    if firewall._libnftables() is None:
        pytest.skip("libnftables.so.1 is not installed")
    nodes = [netns_factory("node"), netns_factory("node")]
    errors: list[BaseException] = []

    def work(path: str, table: str) -> None:
        try:
            with netns.entered(path):
                for _ in range(20):
                    firewall.nft_run(f"add table inet {table}\n")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(path, f"t{i}"))
               for i, path in enumerate(nodes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for i, path in enumerate(nodes):
        assert [e["table"]["name"] for e in _ruleset(path) if "table" in e] == [f"t{i}"]
