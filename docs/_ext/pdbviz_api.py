"""The API reference, generated from the package's ``__all__`` lists, and the docstring check.

For every module named in ``pdbviz_api_modules`` (conf.py) this writes
``api/<module>.rst``: the module's docstring and a table of its public names.
Each public object gets one page, ``api/generated/<module>.<name>.rst``, under
the first module in ``pdbviz_api_canonical_order`` that exports it; every other
module that re-exports it (the lazy top level above all) links there, and
cross-references to any of its names (``pdbviz.quantize``,
``pdbviz.quant.convert.quantize``) resolve to that page.

A module's public names are its ``__all__``; a module without one offers the
functions, classes and UPPER_CASE constants it defines without a leading
underscore. The build warns (an error under ``-W``) when

* a public module of ``pdbviz`` has no API page,
* a public function or class, or a public method or property of a public class,
  has no docstring of its own (a method that overrides one of a base class from
  another package, like ``nn.Module.forward``, may go without: it is left out),
* a public constant has no ``#:`` comment or docstring.
"""

from __future__ import annotations

import ast
import enum
import functools
import importlib
import inspect
import os
import pkgutil
from pathlib import Path
from types import ModuleType

from sphinx.application import Sphinx
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging

logger = logging.getLogger(__name__)

_SCALARS = (int, float, complex, str, bytes, bool, type(None))


# ---------------------------------------------------------------- what is public
def public_names(module: ModuleType) -> list[str]:
    """The public names of ``module``: ``__all__`` (dunder names left out), or what it defines."""
    if hasattr(module, "__all__"):
        return [n for n in module.__all__ if not (n.startswith("__") and n.endswith("__"))]
    tree = ast.parse(inspect.getsource(module))
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [t.id for t in targets if isinstance(t, ast.Name) and t.id.isupper()]
    return [n for n in dict.fromkeys(names) if not n.startswith("_")]


def kind_of(obj) -> str:
    """The autodoc directive for ``obj``: function, exception, class or data."""
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if inspect.isroutine(obj) or isinstance(obj, functools.partial):
        return "function"
    return "data"


def object_key(module: str, name: str, obj) -> object:
    """Identity of an exported object: the object itself, except for scalars (which may be shared)."""
    return (module, name) if isinstance(obj, _SCALARS) else id(obj)


def _member_function(attr):
    if isinstance(attr, property):
        return attr.fget
    if isinstance(attr, functools.cached_property):
        return attr.func
    if isinstance(attr, (classmethod, staticmethod)):
        return attr.__func__
    return attr if inspect.isfunction(attr) else None


def _overrides_foreign(cls: type, name: str) -> bool:
    """Whether ``name`` overrides a documented attribute of a base class from another package (torch's)."""
    package = cls.__module__.partition(".")[0]
    for base in cls.__mro__[1:]:
        if name in vars(base):
            return base.__module__.partition(".")[0] != package and bool(inspect.getdoc(vars(base)[name]))
    return False


def private_bases(cls: type) -> list[type]:
    """Base classes of ``cls`` from its own package whose names start with ``_``: their members are ``cls``'s API."""
    package = cls.__module__.partition(".")[0]
    return [b for b in cls.__mro__[1:] if b.__module__.partition(".")[0] == package and b.__name__.startswith("_")]


def class_members(cls: type) -> list[tuple[str, bool]]:
    """Public methods and properties of ``cls`` (its own and its private bases'): ``(name, documented)``.

    A member that overrides one of a base class from another package without a
    docstring of its own is left out: it is that package's API (``forward``).
    """
    out: dict[str, bool] = {}
    for owner in [cls, *private_bases(cls)]:
        for name, attr in vars(owner).items():
            func = _member_function(attr)
            if name in out or name.startswith("_") or func is None:
                continue
            if isinstance(owner, enum.EnumMeta) and name in owner.__members__:
                continue
            if func.__doc__:
                out[name] = True
            elif not _overrides_foreign(owner, name):
                out[name] = False
    return list(out.items())


def _defining_module(module: ModuleType, name: str) -> list[str]:
    """Modules where a constant exported by ``module`` under ``name`` may be defined: it and its submodules."""
    mods = [module.__name__]
    if hasattr(module, "__path__"):
        mods += [info.name for info in pkgutil.walk_packages(module.__path__, module.__name__ + ".")]
    return mods


def constant_documented(module: ModuleType, name: str) -> bool:
    """Whether a module-level constant has a ``#:`` comment or a docstring where it is assigned."""
    for modname in _defining_module(module, name):
        try:
            docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
        except Exception:  # noqa: BLE001 - a module without source
            continue
        if ("", name) in docs and "".join(docs[("", name)]).strip():
            return True
    return False


def missing_docstrings(modules: list[ModuleType]) -> list[str]:
    """Every public name of ``modules`` (and member of their public classes) that has no docstring."""
    missing: list[str] = []
    seen: set = set()
    for module in modules:
        for name in public_names(module):
            if not hasattr(module, name):
                missing.append(f"{module.__name__}.{name} is in __all__ but does not exist")
                continue
            obj = getattr(module, name)
            key = object_key(module.__name__, name, obj)
            if key in seen:
                continue
            seen.add(key)
            where = f"{module.__name__}.{name}"
            kind = kind_of(obj)
            if kind == "data":
                if not constant_documented(module, name):
                    missing.append(f"{where}: constant without a '#:' comment or docstring")
            else:
                own = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
                if not (own or "").strip():
                    missing.append(f"{where}: {kind} without a docstring")
            if inspect.isclass(obj):
                missing += [f"{where}.{m}: member without a docstring" for m, ok in class_members(obj) if not ok]
    return missing


# ---------------------------------------------------------------- pages
def _title(text: str, char: str = "=") -> str:
    return f"{text}\n{char * len(text)}\n"


def _stub(module: str, name: str, obj, aliases: list[str]) -> str:
    kind = kind_of(obj)
    lines = [_title(f"{module}.{name}"), f".. currentmodule:: {module}", ""]
    if aliases:
        lines += ["Also available as " + ", ".join(f"``{a}``" for a in aliases) + ".", ""]
    lines.append(f".. auto{kind}:: {name}")
    if kind in ("class", "exception"):
        lines += ["   :members:", "   :show-inheritance:"]
        if private_bases(obj):
            lines.append("   :inherited-members:")  # skip_foreign_member keeps those of the private bases only
    elif kind == "data" and len(repr(obj)) > 100:
        lines.append("   :no-value:")
    return "\n".join(lines) + "\n"


def _cli_help() -> str:
    """``pdbviz --help`` and each command's help, for the page of ``pdbviz.cli``."""
    from pdbviz.cli import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        parser = build_parser()
        sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        parts = [("pdbviz", parser.format_help())] + [(f"pdbviz {n}", p.format_help()) for n, p in sub.choices.items()]
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    out = ["", _title("The pdbviz command", "-")]
    for title, text in parts:
        out += [f"``{title} --help``::", ""] + ["   " + ln if ln else "" for ln in text.splitlines()] + [""]
    return "\n".join(out)


def generate(app: Sphinx) -> None:
    """Write ``api/`` from the configured modules and warn about every gap."""
    names = app.config.pdbviz_api_modules
    modules = {name: importlib.import_module(name) for name in names}
    root = modules[names[0]]

    listed = set(names)
    for info in pkgutil.iter_modules(root.__path__):
        full = f"{root.__name__}.{info.name}"
        if not info.name.startswith("_") and full not in listed:
            logger.warning(f"{full} is a public module without an API page: add it to pdbviz_api_modules in "
                           "docs/conf.py", type="pdbviz", subtype="api")
    for problem in missing_docstrings([modules[n] for n in app.config.pdbviz_api_canonical_order]):
        logger.warning(problem, type="pdbviz", subtype="docstring")

    canonical: dict[object, str] = {}
    for modname in app.config.pdbviz_api_canonical_order:
        module = modules[modname]
        for name in public_names(module):
            if not hasattr(module, name):
                continue  # reported above
            obj = getattr(module, name)
            canonical.setdefault(object_key(modname, name, obj), f"{modname}.{name}")
    app.env.pdbviz_canonical = canonical  # type: ignore[attr-defined]
    aliases: dict[str, list[str]] = {}
    for modname in names:
        for name in public_names(modules[modname]):
            if not hasattr(modules[modname], name):
                continue
            home = canonical[object_key(modname, name, getattr(modules[modname], name))]
            if home != f"{modname}.{name}":
                aliases.setdefault(home, []).append(f"{modname}.{name}")

    api = Path(app.srcdir) / "api"
    files: dict[Path, str] = {}
    index = [_title("API reference"),
             "Every public name, generated from the docstrings. ``import pdbviz`` gives the names of the "
             "first page; the others live in the subpackages and modules below it.", "",
             ".. toctree::", "   :maxdepth: 1", ""] + [f"   {n}" for n in names]
    files[api / "index.rst"] = "\n".join(index) + "\n"
    for modname, module in modules.items():
        entries, stubs = [], []
        for name in public_names(module):
            if not hasattr(module, name):
                continue
            obj = getattr(module, name)
            home = canonical[object_key(modname, name, obj)]
            entries.append((name, home))  # links to module.name, which resolve_alias sends to ``home``
            if home == f"{modname}.{name}":
                stubs.append(home)
                files[api / "generated" / f"{home}.rst"] = _stub(modname, name, obj, aliases.get(home, []))
        page = [_title(modname), f".. automodule:: {modname}", "   :no-members:", "",
                f".. currentmodule:: {modname}", ""]
        groups: dict[str, list[str]] = {}
        for name, home in entries:  # the top level's names, grouped by the module that documents them
            groups.setdefault(home.rpartition(".")[0] if modname == root.__name__ else modname, []).append(name)
        for group in sorted(groups, key=lambda g: names.index(g) if g in names else len(names)):
            if group != modname:
                page += [_title(f"From {group}", "-")]
            page += [".. autosummary::", "   :nosignatures:", ""] + [f"   {n}" for n in groups[group]] + [""]
        if stubs:
            page += [".. toctree::", "   :hidden:", ""] + [f"   generated/{s}" for s in stubs] + [""]
        if modname == "pdbviz.cli":
            page.append(_cli_help())
        files[api / f"{modname}.rst"] = "\n".join(page)

    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    for path in api.rglob("*.rst"):
        if path not in files:
            path.unlink()


def _resolve_object(target: str):
    parts = target.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def resolve_alias(app: Sphinx, env, node, contnode):
    """Resolve ``pdbviz.X`` references to the page where X is documented (top-level and re-exported names)."""
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not target.startswith("pdbviz."):
        return None
    canonical = getattr(env, "pdbviz_canonical", {})
    head, _, member = target.rpartition(".")
    for obj_path, rest in ((target, ""), (head, member)):
        obj = _resolve_object(obj_path)
        if obj is None:
            continue
        modname, _, name = obj_path.rpartition(".")
        home = canonical.get(object_key(modname, name, obj)) or canonical.get(id(obj))
        if home and home != obj_path:
            new = f"{home}.{rest}" if rest else home
            return env.get_domain("py").resolve_xref(env, node["refdoc"], app.builder, "obj", new, node, contnode)
    return None


def constant_docstring(app: Sphinx, what: str, name: str, obj, options, lines: list[str]) -> None:
    """Give a re-exported constant (``pdbviz.plot.PAPER``) the ``#:`` comment of its definition."""
    if what != "data" or not name.startswith("pdbviz."):
        return
    modname, _, attr = name.rpartition(".")
    try:
        module = importlib.import_module(modname)
    except ImportError:
        return
    for candidate in _defining_module(module, attr):
        try:
            docs = ModuleAnalyzer.for_module(candidate).find_attr_docs()
        except Exception:  # noqa: BLE001 - a module without source
            continue
        if ("", attr) in docs:
            lines[:] = list(docs[("", attr)])
            return
    lines[:] = []


def public_bases(app: Sphinx, name: str, obj, options, bases: list) -> None:
    """Show a private pdbviz base class (``_QuantLayer``) as its own public bases."""
    def expand(base):
        if getattr(base, "__module__", "").startswith("pdbviz") and base.__name__.startswith("_"):
            return [b for parent in base.__bases__ for b in expand(parent)]
        return [base]

    public = list(dict.fromkeys(b for base in bases for b in expand(base)))
    bases[:] = [b for b in public if b is not object] or public


def skip_foreign_member(app: Sphinx, what: str, name: str, obj, skip: bool, options):
    """Leave out members that a pdbviz class inherits from another package (torch's ``nn.Module``)."""
    func = _member_function(obj) or (obj if inspect.isroutine(obj) else None)
    module = getattr(func, "__module__", None)
    if what in ("class", "exception") and isinstance(module, str) and not module.startswith("pdbviz"):
        return True
    return None


def setup(app: Sphinx) -> dict:
    app.add_config_value("pdbviz_api_modules", [], "env")
    app.add_config_value("pdbviz_api_canonical_order", [], "env")
    app.connect("builder-inited", generate)
    app.connect("missing-reference", resolve_alias)
    app.connect("autodoc-process-docstring", constant_docstring)
    app.connect("autodoc-process-bases", public_bases)
    app.connect("autodoc-skip-member", skip_foreign_member)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
