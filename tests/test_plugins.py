"""Plugins through entry points, with made-up entry points (no installation): lazy loading, where each
name came from, and broken plugins reported by name while the built-ins and the other plugins keep working."""
from __future__ import annotations

import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import victims.plugins as plugins
from attacks import ATTACKS, Attack
from benchmark.cli.main import main
from victims.plugins import PluginWarning
from victims.registry import Registry, UnknownNameError


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch):
    """A directory on sys.path for made-up plugin modules; they are forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("plug_"):
            del sys.modules[name]


def write(directory: Path, name: str, source: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(source))


def installed(monkeypatch, group: str, *eps: tuple[str, str]) -> None:
    """Pretend that the entry points `(name, value)` of `group` are installed (and nothing else)."""
    monkeypatch.setattr(plugins, "discover",
                        lambda g: [EntryPoint(n, v, group) for n, v in eps] if g == group else [])


def test_an_object_entry_point_is_registered_lazily_under_its_name(plugin_dir, monkeypatch):
    write(plugin_dir, "plug_obj", "class Thing:\n    pass\n")
    installed(monkeypatch, "test.things", ("thing", "plug_obj:Thing"))
    registry: Registry = Registry("thing")
    registry.register("builtin")(object())
    registry.plugins_from("test.things")
    assert "plug_obj" not in sys.modules  # nothing is imported before the first lookup
    assert registry.names() == ["builtin", "thing"]
    assert registry.get("thing") is sys.modules["plug_obj"].Thing
    assert registry.sources() == {"builtin": "built-in", "thing": "unknown distribution"}


def test_a_module_entry_point_registers_itself_and_is_credited(plugin_dir, monkeypatch):
    registry: Registry = Registry("thing")
    monkeypatch.setitem(sys.modules, "plug_host", type(sys)("plug_host"))
    sys.modules["plug_host"].REGISTRY = registry
    write(plugin_dir, "plug_mod", """
        from plug_host import REGISTRY

        @REGISTRY.register("made-by-module")
        class Made:
            pass
    """)
    installed(monkeypatch, "test.things", ("anything", "plug_mod"))
    registry.plugins_from("test.things")
    assert registry.names() == ["made-by-module"] and "anything" not in registry
    assert registry.sources()["made-by-module"] == "unknown distribution"


def test_broken_plugins_are_reported_and_rolled_back_and_the_rest_works(plugin_dir, monkeypatch):
    registry: Registry = Registry("thing")
    monkeypatch.setitem(sys.modules, "plug_host", type(sys)("plug_host"))
    sys.modules["plug_host"].REGISTRY = registry
    write(plugin_dir, "plug_good", "class Good:\n    pass\n")
    write(plugin_dir, "plug_raises", "raise RuntimeError('no GPU driver here')\n")
    write(plugin_dir, "plug_half", """
        from plug_host import REGISTRY
        REGISTRY.register("half-made")(object())
        raise ImportError("missing dependency foo")
    """)
    write(plugin_dir, "plug_clash", "class Clash:\n    pass\n")
    installed(monkeypatch, "test.things", ("raises", "plug_raises"), ("half", "plug_half"),
              ("builtin", "plug_clash:Clash"), ("absent", "plug_nowhere:X"), ("good", "plug_good:Good"))
    builtin = object()
    registry.register("builtin")(builtin)
    registry.plugins_from("test.things")
    with pytest.warns(PluginWarning) as caught:
        names = registry.names()
    assert names == ["builtin", "good"]  # the half-made registration was rolled back
    assert registry.get("builtin") is builtin
    failed = {f.name: f.error for f in registry.failures}
    assert set(failed) == {"raises", "half", "builtin", "absent"}
    assert "no GPU driver here" in failed["raises"] and "missing dependency foo" in failed["half"]
    assert "registered twice" in failed["builtin"] and "built-in" in failed["builtin"]
    assert "ModuleNotFoundError" in failed["absent"]
    assert len(caught) == 4 and all("pip uninstall" in str(w.message) for w in caught)
    with pytest.raises(UnknownNameError, match="valid things: builtin, good"):
        registry.get("raises")


def test_refresh_drops_uninstalled_plugins_and_loads_new_ones(plugin_dir, monkeypatch):
    write(plugin_dir, "plug_a", "class A:\n    pass\n")
    write(plugin_dir, "plug_b", "class B:\n    pass\n")
    registry: Registry = Registry("thing")
    registry.plugins_from("test.things")
    installed(monkeypatch, "test.things", ("a", "plug_a:A"))
    assert registry.names() == ["a"]
    installed(monkeypatch, "test.things", ("b", "plug_b:B"))
    registry.refresh_plugins()
    assert registry.names() == ["b"]


@pytest.fixture
def attack_plugins(plugin_dir, monkeypatch):
    """Made-up attack plugins seen by the real ATTACKS registry; gone again afterwards."""
    write(plugin_dir, "plug_attack", """
        from attacks import Attack

        class Noop(Attack):
            def generate(self, spec, images, labels, index, **kw):
                raise NotImplementedError

        class Clash(Attack):
            def generate(self, spec, images, labels, index, **kw):
                raise NotImplementedError

        class NotAnAttack:
            pass
    """)
    installed(monkeypatch, "cp_bench.attacks", ("noop", "plug_attack:Noop"), ("wrong", "plug_attack:NotAnAttack"),
              ("cp-s", "plug_attack:Clash"),
              ("noop-again", "plug_attack:Noop"))
    with pytest.warns(PluginWarning):
        ATTACKS.refresh_plugins()
    yield
    monkeypatch.undo()
    ATTACKS.refresh_plugins()
    assert "noop" not in ATTACKS


def test_attack_plugins_in_the_real_registry_and_bench_plugins(attack_plugins, capsys):
    assert ATTACKS.get("noop").name == "noop" and issubclass(ATTACKS.get("noop"), Attack)
    assert ATTACKS.get("cp-s").__module__ == "attacks.contrastive_poisoning"  # the built-in is kept
    assert main(["plugins"]) == 1  # a plugin failed
    out = capsys.readouterr().out
    assert "noop" in out and "unknown distribution" in out and "3 plugin(s) failed to load" in out
    assert "'wrong'" in out and "must name an Attack subclass" in out
    assert "'cp-s'" in out and "registered twice (first by built-in, now by unknown distribution)" in out
    assert "'noop-again'" in out and "already in the attack registry under another name" in out
    assert sys.modules["plug_attack"].Clash.name == ""  # a refused class is left as it was


def test_bench_plugins_lists_the_built_ins(capsys):
    assert main(["plugins"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["attack", "cp-s", "built-in"] in rows and ["algorithm", "byol", "built-in"] in rows
    assert ["architecture", "vgg19", "built-in"] in rows
