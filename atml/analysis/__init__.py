"""Numbers computed from models' outputs: metrics and the helpers that produce them."""
