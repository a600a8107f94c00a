"""The microservice chassis: plumbing every service shares, with no domain knowledge."""
