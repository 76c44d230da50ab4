"""A broken plugin fails at load with its name; observers wrap hooks."""

from __future__ import annotations

import pytest

from corecni.plugin import PluginLoadError, Request, load_plugin
from corecni.spec.config import PluginConfig
from corecni.spec.result import Result
from tests.plugins import broken
from tests.plugins.recorder_observer import Recorder


@pytest.mark.parametrize(("obj", "reason"), [
    (broken.MissingHooks(), "interface plugin lacks required hooks: cni_del, cni_check"),
    (broken.MixedFamilies(), "mixes hook families"),
    (broken.BadSignature(), "req"),
    (broken.UnknownHook(), "ipam_frobnicate"),
    (object(), "implements none of cni_add, ipam_add or meta_add"),
])
def test_broken_plugin_fails_at_load(obj: object, reason: str) -> None:
    with pytest.raises(PluginLoadError) as info:
        load_plugin("brokenthing", obj)
    assert "'brokenthing'" in info.value.msg
    assert reason in info.value.details
    assert info.value.code == 7


def test_import_error_names_plugin() -> None:
    with pytest.raises(PluginLoadError) as info:
        load_plugin("ghost", "tests.plugins.no_such_module")
    assert "'ghost'" in info.value.msg and "No module named" in info.value.details


def test_families_detected() -> None:
    assert load_plugin("a", "tests.plugins.fake_iface").family == "interface"
    assert load_plugin("b", "tests.plugins.fixed_ipam").family == "ipam"
    assert load_plugin("c", "tests.plugins.dns_meta").family == "meta"


def test_hook_returning_nothing_on_add_is_an_error() -> None:
    plugin = load_plugin("noresult", broken.NoResult())
    config = PluginConfig.from_dict({"cniVersion": "1.0.0", "name": "n", "type": "noresult"})
    with pytest.raises(Exception, match="returned no result"):
        plugin.run(Request(command="ADD", config=config, container_id="c", ifname="eth0"))


def test_observer_wraps_add() -> None:
    recorder = Recorder()
    plugin = load_plugin("fixed-ipam", "tests.plugins.fixed_ipam", observers=[recorder])
    config = PluginConfig.from_dict({"cniVersion": "1.0.0", "name": "n", "type": "fixed-ipam"})
    result = plugin.run(Request(command="ADD", config=config, container_id="c", ifname="eth0"))
    assert isinstance(result, Result)
    assert recorder.seen == [("before", "ADD"), ("after", "Result")]


def test_meta_add_without_prev_result_is_refused() -> None:
    plugin = load_plugin("dns-meta", "tests.plugins.dns_meta")
    config = PluginConfig.from_dict({"cniVersion": "1.0.0", "name": "n", "type": "dns-meta"})
    with pytest.raises(Exception, match="must be chained after"):
        plugin.run(Request(command="ADD", config=config, container_id="c", ifname="eth0"))
