"""XMP sidecars: keywords written where photo managers read them (``keywords``), by byte-exact edits
of the packet (``packet``). Standard library only."""
