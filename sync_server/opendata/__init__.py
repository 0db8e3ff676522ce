"""Open data: what a territory publishes without a token, dataset by dataset, once an
operator opted it in (docs/open-data.md)."""
