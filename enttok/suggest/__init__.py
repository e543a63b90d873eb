"""Daily-note suggestions: what you did and what is still open."""
