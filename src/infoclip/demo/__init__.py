"""``infoclip demo``: a local web page for interactive segmentation.

* ``page``: what the page does with one request (``DemoPage.run``), free of gradio and tested without it;
* ``app``: the gradio layer (``build_app``, ``launch``); importing it needs the ``demo`` extra
  (``pip install "infoclip[demo]"``);
* ``examples``: small example photos shipped with the package (``example_images``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: (file name, classes) of the shipped examples, see examples/SOURCES.md
EXAMPLES: tuple[tuple[str, str], ...] = (
    ("chelsea.jpg", "cat, wall, floor"),
    ("coffee.jpg", "cup, saucer, spoon, table"),
    ("astronaut.jpg", "person, flag, spacesuit, wall"),
)


def example_images() -> list[tuple[Path, str]]:
    """The shipped example photos as (path, classes) pairs."""
    folder = Path(str(resources.files("infoclip.demo").joinpath("examples")))
    return [(folder / name, classes) for name, classes in EXAMPLES]
