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


@hookspec
def infoclip_register_weights() -> list:  # list[infoclip.named_weights.NamedWeights]
    """Contribute named weights: what ``--weights NAME`` downloads from the Hugging Face Hub.

    Called once per use of the weights registry. Each ``NamedWeights`` names a file in a Hub repository
    (model, Space or dataset repository; branch, tag or commit), its format (``official``: converted by the
    named adapter's importer on first use, the result cached; ``infoclip``: a weights file used as is), the
    adapter that builds the model, and what ``infoclip weights list`` shows (summary, size, license,
    published mIoU). A name whose adapter is not installed is listed but refused when used.

    :return: a list of ``infoclip.named_weights.NamedWeights`` (may be empty).
    """


@hookspec
def infoclip_register_vocabularies() -> list:  # list[infoclip.segmentation.classes.Vocabulary]
    """Contribute named class vocabularies (an adapter's own class lists, with synonyms) to ``--vocab``,
    ``infoclip eval --seen`` and the run config's ``data.train_classes``, beside the shipped ones.

    :return: a list of ``infoclip.segmentation.classes.Vocabulary`` (may be empty); names must not collide
        with a shipped vocabulary.
    """
