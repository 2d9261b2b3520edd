"""Hook specifications of infoclip's plugin system (pluggy project name ``infoclip``).

Adapters and other plugins implement these with ``@infoclip.hookimpl``. Specs only ever gain arguments;
an implementation may accept fewer arguments than its spec.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from infoclip.adapters.contract import Adapter
    from infoclip.data.registry import DatasetSpec

hookspec = pluggy.HookspecMarker("infoclip")
hookimpl = pluggy.HookimplMarker("infoclip")


@hookspec
def infoclip_register_adapters() -> list[Adapter]:
    """Contribute OVSS frameworks.

    Called once when the plugin manager is first used. Each returned ``Adapter`` names a framework,
    its shipped configs, how to build its student model and its frozen teacher, and optional
    checkpoint importers for ``infoclip convert``.

    :return: a list of ``infoclip.adapters.Adapter`` (may be empty).
    """


@hookspec
def infoclip_register_datasets() -> list[DatasetSpec]:
    """Contribute named datasets (layout, vocabulary, ignore value) to ``infoclip eval`` and ``train``.

    Called once when the dataset registry is first used.

    :return: a list of ``infoclip.data.registry.DatasetSpec`` (may be empty).
    """
