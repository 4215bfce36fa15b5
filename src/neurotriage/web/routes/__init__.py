"""Routers by resource: sign-in, patients, jobs, reports, and the JSON API."""
