"""The HTTP API: one router per resource, assembled in :mod:`hub.api.main`."""
