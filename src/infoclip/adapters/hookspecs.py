"""Former home of the hook specifications, kept so that ``from infoclip.adapters.hookspecs import hookimpl``
still works: the specs live in ``infoclip.hookspecs`` (the package root, below every domain module)."""

from infoclip.hookspecs import (
    hookimpl,
    hookspec,
    infoclip_register_adapters,
    infoclip_register_datasets,
    infoclip_register_weights,
)

__all__ = ["hookimpl", "hookspec", "infoclip_register_adapters", "infoclip_register_datasets", "infoclip_register_weights"]
