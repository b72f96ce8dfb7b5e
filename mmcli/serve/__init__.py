"""`mmcli serve` and its clients: the HTTP app, the search page and thumbnails, the guards, the wire
format, the client that finds a running server, and the choice of engine for a command."""
