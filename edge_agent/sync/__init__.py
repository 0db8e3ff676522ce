"""The client side of the sync: identity, hub client, push loop, signed bundles."""
