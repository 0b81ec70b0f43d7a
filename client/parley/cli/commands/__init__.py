"""The `parley` subcommands, by area; each takes the command's `Context`."""
