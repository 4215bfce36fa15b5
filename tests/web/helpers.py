"""Helpers of the web tests: clients of a fresh app, CSRF tokens, signing in."""

from __future__ import annotations

import re
from dataclasses import replace

from fastapi.testclient import TestClient

from neurotriage.web.app import create_app
from neurotriage.web.settings import WebSettings

PASSWORD = "correct horse battery"


def make_client(settings: WebSettings, **overrides) -> TestClient:
    """A client of a fresh app over HTTPS (the session cookie is Secure)."""
    return TestClient(create_app(replace(settings, **overrides)), base_url="https://testserver")


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in(client: TestClient, username: str = "clin", password: str = PASSWORD):
    """Sign in through the form; returns the response after redirects."""
    token = csrf_of(client.get("/login").text)
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token})


def page_csrf(client: TestClient, path: str = "/patients") -> str:
    """The CSRF token of the signed-in session, read from a page."""
    return csrf_of(client.get(path).text)
