"""Car-park occupancy at the edge: entries and exits counted, spots sensed, drift corrected."""
