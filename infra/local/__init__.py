"""The embedded local stack: moto, the Chalice app and their helpers, no Docker."""
