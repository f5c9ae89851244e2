"""The `e3eval` commands, grouped by what they work on; `e3eval/cli.py` assembles them into one typer app.

Each command parses its flags, builds a config, calls one library function and prints what it returns. No command
holds logic of its own: what a number means is decided in the library.
"""
