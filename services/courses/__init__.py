"""Courses service (VHS): catalogue, fair enrolment and waiting lists, attendance, the education pass (Bildungspass)."""
