"""The command line: the app, its context, the exit-code table, the hints that name
commands, and the commands. Nothing imports it."""
