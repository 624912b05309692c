"""Shared fixtures of the gateway client tests: where the gateways under
test listen (set by crates/guardway-gateway/tests/gateway/python_client.rs)."""

import os

import pytest


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(
            f"{name} is not set: run these tests through "
            "`cargo test -p guardway-gateway --test gateway python_client::`"
        )
    return value


@pytest.fixture(scope="session")
def routed_url() -> str:
    return _env("GATEWAY_ROUTED_URL")


@pytest.fixture(scope="session")
def unified_url() -> str:
    return _env("GATEWAY_UNIFIED_URL")


@pytest.fixture(scope="session")
def api_key() -> str:
    return _env("GATEWAY_API_KEY")
