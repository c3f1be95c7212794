"""Address filter lookups with 10,000 prefixes: NetworkSet against a naive linear scan."""
