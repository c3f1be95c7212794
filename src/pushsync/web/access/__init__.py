"""Who may post to the public listener: address ranges, proxies, and the callback secret.

- `networks`: sets of IP networks with fast, IPv4-mapped-aware membership tests;
- `ipranges`: Microsoft 365's published Exchange ranges (packaged snapshot, `ipranges refresh`);
- `address_filter`: the allowed sources of one listener (Microsoft ranges + operator networks);
- `client_address`: the client behind trusted reverse proxies;
- `callback_token`: the per-installation secret carried in the callback URL.
"""
