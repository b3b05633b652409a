"""Consumer groups: pure assignors and group state, and the LMDB-backed coordinator."""
