"""Command-line interface: thin click wrappers that parse, call one library function, print."""
