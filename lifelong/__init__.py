"""lifelong."""
