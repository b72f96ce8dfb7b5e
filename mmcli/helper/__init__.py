"""The resident helper: a warm engine behind a private Unix socket that answers `mmcli search` and
`mmcli classify` (``server``), and its client's side: where it listens and who it must be (``place``),
the protocol (``talk``), the engine that asks it (``engine``), `mmcli helper`'s listing (``admin``)."""
