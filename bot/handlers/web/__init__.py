"""The built-in web chat: a browser's messages in as `Inbound`, outbox rows out as chat lines."""
