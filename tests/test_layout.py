"""Option name -> file in one hop: every option file `conf/<group>/<name>.yaml` is a registered option of
that group whose registering module exists, with a schema in `flexnet.schema.SCHEMAS`; every launcher
preset in `conf/hydra/launcher/` stands on a schema in Hydra's ConfigStore whose `_target_` exists.
The checks are functions of (conf dir, registry) so that they are shown to fail on a bogus file."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import CONF
from flexnet.registry import Registry, registries

GROUPS = ["dataset", "labeling", "arch", "scaling", "optimizer", "regularizer", "reparam", "search", "logger"]


def module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def unresolved(conf: Path, group: str, registry: Registry, schemas: dict) -> list[str]:
    """The option files of conf/<group>/ that do not lead to code: one line per problem."""
    problems = []
    for path in sorted((conf / group).glob("*.yaml")):
        option, name = path.stem, (yaml.safe_load(path.read_text()) or {}).get("name")
        if name != option:
            problems.append(f"{path.name}: name={name!r}, not the file name")
        if option not in registry:
            problems.append(f"{path.name}: not registered in the {group} registry")
        elif not module_exists(registry.module_of(option)):
            problems.append(f"{path.name}: registered by {registry.module_of(option)}, which does not exist")
        if option not in schemas:
            problems.append(f"{path.name}: no schema in SCHEMAS[{group!r}]")
    return problems


def test_every_group_has_a_registry_and_option_files():
    assert set(registries()) == set(GROUPS)
    assert all(list((CONF / g).glob("*.yaml")) for g in GROUPS)


@pytest.mark.parametrize("group", GROUPS)
def test_option_files_resolve_to_registered_modules(group):
    from flexnet.schema import SCHEMAS

    assert unresolved(CONF, group, registries()[group], SCHEMAS[group]) == []


def test_the_check_fails_on_a_bogus_option(tmp_path):
    from flexnet.schema import SCHEMAS

    conf = tmp_path / "conf"
    shutil.copytree(CONF / "arch", conf / "arch")
    (conf / "arch" / "bogus.yaml").write_text("name: bogus\n")
    assert unresolved(conf, "arch", registries()["arch"], SCHEMAS["arch"]) == [
        "bogus.yaml: not registered in the arch registry", "bogus.yaml: no schema in SCHEMAS['arch']"]
    fake = Registry("arch")
    for name in registries()["arch"]:
        fake.add(name, object(), module="flexnet.models.nowhere" if name == "mlp" else "flexnet.models.mlp")
    assert unresolved(CONF, "arch", fake, SCHEMAS["arch"]) == [
        "mlp.yaml: registered by flexnet.models.nowhere, which does not exist"]


def test_registry_records_the_registering_module():
    reg = Registry("demo")
    reg.add("added", object())

    @reg.register("decorated")
    def fn():
        pass

    assert reg.module_of("added") == reg.module_of("decorated") == __name__
    assert registries()["arch"].module_of("resnet") == "flexnet.models.resnet"


def test_unknown_option_is_one_line_naming_where_options_live():
    from flexnet.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        registries()["arch"].get("foo")
    assert str(e.value).startswith("arch='foo': unknown option; allowed: alexnet_small, cnn")
    assert str(e.value).endswith("(conf/arch/<name>.yaml; code: flexnet.models.*)") and "\n" not in str(e.value)


@pytest.mark.parametrize("preset", sorted(p.stem for p in (CONF / "hydra" / "launcher").glob("*.yaml")))
def test_launcher_presets_resolve_to_their_launcher(preset):
    import hydra_plugins.flexnet_launcher.config  # noqa: F401  (stores the launcher schemas)
    from hydra.core.config_store import ConfigStore

    defaults = yaml.safe_load((CONF / "hydra" / "launcher" / f"{preset}.yaml").read_text())["defaults"]
    schema = next(d for d in defaults if isinstance(d, str) and d != "_self_")
    node = ConfigStore.instance().load(f"hydra/launcher/{schema}.yaml").node
    module, _, cls = node["_target_"].rpartition(".")
    assert module_exists(module) and hasattr(importlib.import_module(module), cls), node["_target_"]
