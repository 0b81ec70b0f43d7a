"""Wire frames, stored items and errors."""
