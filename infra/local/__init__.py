"""The embedded local stack: records, SeaweedFS, the cluster, the Chalice app and their helpers,
no Docker."""
