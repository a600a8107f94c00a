"""Event and API contracts: the only code services share with each other (data shapes only)."""
