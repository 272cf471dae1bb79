"""The built wheel carries what the CLI's defaults need: configs/ as package data (the embedded demo and capacity
specs, the model configs they name), the LICENSE, one version; installed alone, its embedded defaults resolve from
any working folder."""
import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import recitebench

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]  # offline if we can
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", *isolation, "--no-deps", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True)
    return next(out.glob("recitebench-*.whl"))


def test_the_wheel_holds_the_configs_the_license_and_one_version(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"recitebench/configs/{p.relative_to(ROOT / 'configs')}" for p in (ROOT / "configs").rglob("*")
               if p.is_file() and p.suffix in (".yaml", ".json")}
    assert shipped and shipped <= names
    assert any(n.endswith("licenses/LICENSE") for n in names)
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert f"Version: {recitebench.__version__}" in meta and "License-Expression: MIT" in meta
    assert "Classifier: Intended Audience :: Science/Research" in meta


def test_an_installed_wheel_finds_its_embedded_specs_from_any_folder(wheel, tmp_path, shared):
    target, work = tmp_path / "site", tmp_path / "work"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "RECITEBENCH_SHARED": str(shared)}
    for cmd in (["run", "--dry-run"], ["capacity", "--dry-run", "--out", "cap"], ["study"]):
        res = subprocess.run([sys.executable, "-m", "recitebench", *cmd], cwd=work, env=env, capture_output=True,
                             text=True)
        if cmd[0] == "study":  # the study's run folders live in the repository's docs/, not in the wheel
            assert res.returncode != 0 and "is not a folder" in res.stderr and "Traceback" not in res.stderr
            continue
        assert res.returncode == 0, res.stderr
    code = "import recitebench.experiment.spec as s; print(s.default_spec_path())"
    probe = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, check=True)
    assert Path(probe.stdout.strip()).is_relative_to(target)  # the wheel's copy, not the checkout's


def test_every_source_package_is_listed_for_the_wheel():
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT / "src").parts) for p in (ROOT / "src").rglob("__init__.py")}
    assert found <= listed, f"add {sorted(found - listed)} to [tool.setuptools] packages"


def test_constraints_pin_every_dependency_and_the_extras_pin_nothing():
    import re

    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines()
                if line and not line.startswith("#"))

    def name(req: str) -> str:
        return re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower().replace("_", "-")

    pinned = {k.lower().replace("_", "-") for k in pins}
    needed = {name(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    assert needed <= pinned, f"pin {sorted(needed - pinned)} in constraints.txt"
    assert not any("==" in r for extra in project["optional-dependencies"].values() for r in extra)
    assert "torch" in pinned and all(re.fullmatch(r"\d+(\.\d+)*", v) for v in pins.values())


@pytest.mark.slow
def test_a_fresh_venv_with_only_the_wheel_runs_the_embedded_demo_and_capacity_to_the_end(wheel, tmp_path, shared):
    """A new venv (no checkout on its path, no editable install) holding the built wheel, its dependencies reached
    through a .pth line to this environment's site-packages (a path there is not scanned for .pth files, so this
    checkout's editable install stays out): `recitebench run` and `recitebench capacity` with no spec finish."""
    import sysconfig
    import venv

    fresh = tmp_path / "fresh"
    venv.EnvBuilder(with_pip=False).create(fresh)
    py = fresh / "bin" / "python"
    site = Path(subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["RECITEBENCH_SHARED"] = str(shared)
    where = subprocess.run([py, "-c", "import recitebench; print(recitebench.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(site)  # the wheel's code, not this checkout's
    for cmd, done in ((["run"], "runs/demo/report.md"), (["capacity", "--out", "cap"], "cap/capacity.json")):
        res = subprocess.run([py, "-m", "recitebench", *cmd], cwd=work, env=env, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr[-2000:]
        assert (work / done).is_file(), f"{' '.join(cmd)} wrote no {done}"
