"""The package's structure: no module takes another module's underscore names, and every
public function and method is annotated.

Which module may import which is import-linter's contract in pyproject.toml
(``lint-imports``); this holds the rules it cannot express.
"""

import ast
import importlib.util
import inspect
import typing
from pathlib import Path

import pytest

import poolnd
import poolnd.compat.d2l
import poolnd.compat.numpynet
import poolnd.compat.tinyml

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


# --------------------------------------------------------------------------- type hints


def _missing_annotations(fn) -> list[str]:
    """The parameters of ``fn`` (``self`` aside) without an annotation, and "return"."""
    signature = inspect.signature(fn)
    missing = [p.name for p in signature.parameters.values()
               if p.name != "self" and p.annotation is inspect.Parameter.empty]
    if signature.return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


def _public_methods(cls):
    """``cls``'s public methods, its own and inherited, with ``__init__``, ``__call__``
    and ``__repr__`` where poolnd defines them."""
    for name, member in inspect.getmembers(cls):
        if isinstance(member, property):
            member = member.fget
        if not inspect.isfunction(member) or not member.__module__.startswith("poolnd"):
            continue  # object's slots, and what MyGrad's Operation defines
        if not name.startswith("_") or name in ("__init__", "__call__", "__repr__"):
            yield f"{cls.__module__}.{cls.__name__}.{name}", member


def _public_api():
    for name in poolnd.__all__:
        yield f"poolnd.{name}", getattr(poolnd, name)
    layers = [getattr(poolnd.nn, name) for name in poolnd.nn.__all__]
    for cls in [*layers, poolnd.nn.SavedForwards]:
        yield from _public_methods(cls)
    for module in (poolnd.compat.d2l, poolnd.compat.numpynet, poolnd.compat.tinyml):
        for name in module.__all__:
            member = getattr(module, name)
            if inspect.isclass(member):
                yield from _public_methods(member)
            else:
                yield f"{module.__name__}.{name}", member


def _mygrad_api():
    """The functions of poolnd.mygrad, and its classes' methods (none without MyGrad)."""
    if importlib.util.find_spec("mygrad") is None:
        return
    mygrad = importlib.import_module("poolnd.mygrad")
    for name, member in vars(mygrad).items():
        if inspect.isfunction(member) and member.__module__ == mygrad.__name__:
            yield f"poolnd.mygrad.{name}", member
        elif inspect.isclass(member) and member.__module__ == mygrad.__name__:
            for qualname, method in _public_methods(member):
                if method.__module__ == mygrad.__name__:
                    yield qualname, method


def test_every_public_function_and_method_is_annotated():
    api = dict(_public_api())
    assert {"poolnd.max_pool2d", "poolnd.set_num_threads", "poolnd.nn.MaxPool2d.forward",
            "poolnd.nn.MaxPool2d.__init__", "poolnd.nn.MaxUnpool2d.__call__",
            "poolnd.nn.AvgPool1d.train", "poolnd.nn.AvgPool1d.eval",
            "poolnd.nn.LPPool3d.backward", "poolnd.compat.tinyml.MaxPool2D.forward"} <= set(api)
    missing = {name: m for name, fn in api.items() if (m := _missing_annotations(fn))}
    assert missing == {}


def test_every_function_of_poolnd_mygrad_is_annotated():
    pytest.importorskip("mygrad")
    api = dict(_mygrad_api())
    assert {"poolnd.mygrad.max_pool", "poolnd.mygrad.adaptive_avg_pool", "poolnd.mygrad.pooled",
            "poolnd.mygrad.LayerOperation.backward_var"} <= set(api)
    missing = {name: m for name, fn in api.items() if (m := _missing_annotations(fn))}
    assert missing == {}


def test_the_annotations_name_what_their_modules_hold():
    # with `from __future__ import annotations` they are strings, checked by nobody at import
    # time: a misspelt name would break typing.get_type_hints (and every type checker)
    unresolved = {}
    for name, fn in [*_public_api(), *_mygrad_api()]:
        try:
            typing.get_type_hints(fn)
        except Exception as error:  # NameError, or a TypeError from a bad expression
            unresolved[name] = repr(error)
    assert unresolved == {}


def test_the_annotation_check_sees_what_is_missing():
    def half(x, y: int = 0, *args, z: int, **kwargs: int):
        pass

    assert _missing_annotations(half) == ["x", "args", "return"]
    assert _missing_annotations(poolnd.nn.MaxPool2d.train) == []  # self aside
