"""Partner network service: directory, capacity, API clients, signed webhooks."""
