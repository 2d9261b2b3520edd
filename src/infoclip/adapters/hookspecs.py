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
    from infoclip.named_weights import NamedWeights

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


@hookspec
def infoclip_register_weights() -> list[NamedWeights]:
    """Contribute named weights: what ``--weights NAME`` downloads from the Hugging Face Hub.

    Called once per use of the weights registry. Each ``NamedWeights`` names a file in a Hub repository
    (model, Space or dataset repository; branch, tag or commit), its format (``official``: converted by the
    named adapter's importer on first use, the result cached; ``infoclip``: a weights file used as is), the
    adapter that builds the model, and what ``infoclip weights list`` shows (summary, size, license,
    published mIoU). A name whose adapter is not installed is listed but refused when used.

    :return: a list of ``infoclip.named_weights.NamedWeights`` (may be empty).
    """
