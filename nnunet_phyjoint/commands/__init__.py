"""One module per `phyjoint` sub-command; each defines ``register(subparsers)``.

``register`` adds its parser and sets ``func`` (called with the parsed args) as default.
Modules are discovered, so adding a command never touches cli.py.
"""
