"""The package's structure: no module takes another module's underscore names.

Which module may import which is import-linter's contract in pyproject.toml
(``lint-imports``); this holds the rule it cannot express.
"""

import ast
from pathlib import Path

import poolnd

PACKAGE = Path(poolnd.__file__).parent


def _imported_names():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or
                                                     (node.module or "").startswith("poolnd")):
                base = list(package[:len(package) - node.level + 1]) if node.level else []
                module = [*base, *(node.module.split(".") if node.module else [])]
                for alias in node.names:
                    yield path, module, alias.name


def _is_module(module, name) -> bool:
    folder = PACKAGE.parent.joinpath(*module)
    return (folder / f"{name}.py").is_file() or (folder / name / "__init__.py").is_file()


def test_no_module_imports_underscore_names_of_another():
    crossing = [f"{path.relative_to(PACKAGE)}: {'.'.join(module)}.{name}"
                for path, module, name in _imported_names()
                if name.startswith("_") and not name.startswith("__")
                and not _is_module(module, name)]
    assert crossing == []


def test_the_check_sees_imports():
    names = {(".".join(module), name) for _, module, name in _imported_names()}
    assert ("poolnd._layout", "to_canonical") in names
    assert ("poolnd._kernels", "_rows") in names  # a module: allowed
