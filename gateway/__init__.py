"""API gateway: one entry for partners and caseworkers (routing now; sign-in, roles and the UI follow)."""
