"""Hook specifications of infoclip's plugin system (pluggy project name ``infoclip``).

This module sits below every domain module and imports only pluggy (datasette's layout), so that plugins for
any concern (adapters, datasets) never create import circles. Plugins implement the hooks with
``@infoclip.hookimpl``. Specs only ever gain arguments; an implementation may accept fewer arguments than its
spec.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("infoclip")
hookimpl = pluggy.HookimplMarker("infoclip")


@hookspec
def infoclip_register_adapters() -> list:  # list[infoclip.adapters.Adapter]
    """Contribute OVSS frameworks.

    Called once when the plugin manager is first used. Each returned ``Adapter`` names a framework,
    its shipped configs, how to build its student model and its frozen teacher, and optional
    checkpoint importers for ``infoclip convert``.

    :return: a list of ``infoclip.adapters.Adapter`` (may be empty).
    """


@hookspec
def infoclip_register_datasets() -> list:  # list[infoclip.data.DatasetSpec]
    """Contribute named datasets (layout, vocabulary, ignore value) to ``infoclip eval`` and ``train``.

    Called once when the dataset registry is first used.

    :return: a list of ``infoclip.data.DatasetSpec`` (may be empty).
    """
