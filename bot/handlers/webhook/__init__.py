"""Client systems' status webhooks: outbox rows POSTed, signed, to the URL a hook names."""
