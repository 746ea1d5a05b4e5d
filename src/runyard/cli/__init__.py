"""The `runyard` command line: thin Typer commands over the public API."""
