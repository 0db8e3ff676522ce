"""The Ponton sync hub: enrollment, idempotent ingest, signed bundles, operator queries."""
