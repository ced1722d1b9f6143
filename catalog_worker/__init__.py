"""A catalog replica: serves stock lookups from its copy of the stocks, derived from the order stream."""
