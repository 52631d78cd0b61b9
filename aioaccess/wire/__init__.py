"""Sans-IO framing and compact message building, shared by servers and clients."""
