"""The `finsent` command group: main (the group and its smaller commands), classify (texts, lines,
files, --ray), common (the one-line user error, the model file choice)."""
