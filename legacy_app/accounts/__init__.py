"""Users' credentials and identity: password hashing, its lane, canonical emails."""
