"""Foundation: errors, atomic file writes and hashing, the project layout, locks, progress."""
