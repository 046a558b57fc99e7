"""Real-text evaluation sets: enforcement cases and blind-labelled corpus lines (see docs/labelling.md)."""
