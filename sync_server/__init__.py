"""The Ponton sync hub: enrollment, idempotent ingest, signed bundles, operator queries."""

__version__ = "0.1.0"
