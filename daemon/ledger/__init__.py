"""posd."""
