"""Infrastructure every layer may import: error types, global IDs and settings. Imports nothing of ours."""
