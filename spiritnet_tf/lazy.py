"""Packages whose public names load their module on first use (PEP 562), so that
``spiritnet COMMAND --help`` answers without importing TensorFlow."""

import importlib
import sys

__all__ = ["lazy_names"]


def lazy_names(package, owners):
    """``(__getattr__, __dir__)`` for the package named ``package``: each name in
    ``owners`` (name -> module path) is imported from its module when first read, then
    kept in the package, together with the other names that module owns: importing a
    submodule makes it an attribute of the package, which would otherwise hide a public
    name spelled like the submodule (``evaluation.evaluate``, the function) once another
    name of that submodule had been read first."""
    module = sys.modules[package]

    def __getattr__(name):
        if name not in owners:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        owner = importlib.import_module(owners[name])
        for other, path in owners.items():
            if path == owners[name]:
                setattr(module, other, getattr(owner, other))
        return getattr(module, name)

    def __dir__():
        return sorted(set(vars(module)) | set(owners))

    return __getattr__, __dir__
