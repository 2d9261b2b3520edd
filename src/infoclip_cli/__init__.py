"""The ``infoclip`` command line (Typer). Imports ``infoclip``; the library never imports this package."""
