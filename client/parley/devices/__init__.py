"""Linked devices: one primary device per account and up to four companions.

- `lists`: the signed device list (which devices the account's primary vouches
  for), signed, parsed and verified byte for byte;
- `adv`: the signatures and HMAC that link a companion, and the link code;
- `linking`: both sides of linking (`parley.link` on the new device,
  `Client.link_device` on the primary);
- `calls`: the device calls of `parley.Client`;
- `history`: the history a primary hands to a new companion.

This package's `__init__` imports nothing: the conversations slice verifies
lists (`parley.devices.lists`) without pulling in the facade's calls.
"""
