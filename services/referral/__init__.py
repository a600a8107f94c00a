"""Referral service (Integrationslotse): cases, caseworker assignment, routing rules, closed-loop referrals."""
