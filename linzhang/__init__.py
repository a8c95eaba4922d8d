"""The linzhang command line: the composition root's front door."""
