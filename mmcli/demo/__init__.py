"""`mmcli demo`: a corpus of shapes drawn on the spot, indexed, classified and searched."""
