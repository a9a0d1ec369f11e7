"""The package a user installs: every module shipped, every import declared (and a light
start-up: tests/test_light_commands.py)."""

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions

from setuptools import find_packages

from tests.conftest import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_every_package_is_found_and_every_experiments_configs_ship():
    """Packages are found, not listed; an experiment's configs/ and the launchers ship as package data
    (.ci/wheel-check runs the built wheel from outside the checkout)."""
    assert PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"] == ["atml*"]
    shipped = PYPROJECT["tool"]["setuptools"]["package-data"]["*"]
    assert {"configs/*.yaml", "launchers/*.yaml"} <= set(shipped)
    for package in find_packages(REPO, include=["atml.experiments.*"]):
        folder = REPO / package.replace(".", "/") / "configs"
        assert {"default.yaml", "smoke.yaml"} <= {p.name for p in folder.glob("*.yaml")}, package
    assert {"local.yaml", "slurm.yaml"} <= {p.name for p in (REPO / "atml/configs/launchers").glob("*.yaml")}


def _imported_top_level_modules() -> set[str]:
    names = set()
    for path in (REPO / "atml").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"atml"}


def test_every_imported_library_is_declared():
    """By the dependencies, or by an optional extra (a feature's own, e.g. tensorboard; not `test`)."""
    extras = [
        dep
        for name, deps in PYPROJECT["project"]["optional-dependencies"].items()
        if name != "test"
        for dep in deps
    ]
    declared = {
        re.split(r"[<>=!~\[ ;]", dep)[0].lower().replace("_", "-")
        for dep in [*PYPROJECT["project"]["dependencies"], *extras]
    }
    distributions = packages_distributions()
    for module in sorted(_imported_top_level_modules()):
        provided_by = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        assert provided_by & declared, (
            f"atml imports '{module}' but pyproject declares none of {sorted(provided_by)}"
        )


def test_no_private_modules_of_other_libraries_are_imported():
    for path in (REPO / "atml").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module]
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                else []
            )
            for module in modules:
                if module.split(".")[0] not in sys.stdlib_module_names | {"atml"}:
                    assert not any(part.startswith("_") for part in module.split(".")), (
                        f"{path.name} imports {module}"
                    )


def test_the_readme_fits_on_a_screen_and_links_only_to_files_of_the_repository():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    links = re.findall(r"\]\(([^)#]+)", text)
    assert links, "the README links to the docs"
    for link in links:
        assert not link.startswith(("http", "/", "..")), link
        assert (REPO / link).is_file(), f"README links to {link}, which is not in the repository"
