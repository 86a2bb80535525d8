"""The serving app is a lower layer than training: no module of `inference/` imports `training_jobs`,
so a serving-only deployment (web + inference workers) can leave the training app out."""
import ast
from pathlib import Path

import inference

INFERENCE = Path(inference.__file__).parent
UPPER = ("training_jobs",)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import in the file, relative ones resolved inside `inference`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(("inference", *path.relative_to(INFERENCE).parent.parts))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found += [(node.lineno, module)] + [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return found


def upward_imports() -> list[str]:
    return [
        f"{path.relative_to(INFERENCE.parent)}:{line} imports {module}"
        for path in sorted(INFERENCE.rglob("*.py"))
        for line, module in imported_modules(path)
        if module.split(".")[0] in UPPER
    ]


def test_no_inference_module_imports_the_training_app():
    assert upward_imports() == []


def test_the_check_sees_every_kind_of_import(tmp_path, monkeypatch):
    package = tmp_path / "inference"
    (package / "sub").mkdir(parents=True)
    (package / "sub" / "mod.py").write_text(
        "import os\n"
        "def f():\n"
        "    from training_jobs.selectors import run_list_for\n"
        "    import training_jobs.models\n"
        "    importlib.import_module('training_jobs.services')\n"
        "from .. import selectors\n"
    )
    monkeypatch.setattr(__name__ + ".INFERENCE", package)
    assert {found.split(" imports ")[1] for found in upward_imports()} == {
        "training_jobs.selectors", "training_jobs.selectors.run_list_for", "training_jobs.models",
        "training_jobs.services",
    }
