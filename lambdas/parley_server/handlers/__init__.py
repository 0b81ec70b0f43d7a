"""Lambda entry points: one module per function. Wiring only: parse, call logic, shape."""
