"""SELLER_CREDENTIALS_KEY: required in production, validated, never echoed."""

from __future__ import annotations

from cryptography.fernet import Fernet

from tests.buyer.test_settings import start_up

PRODUCTION = {"ENVIRONMENT": "production", "SECRET_KEY": "x", "API_KEY": "x"}


def test_production_without_seller_credentials_key_refuses_to_start_naming_it():
    result = start_up(**PRODUCTION, SELLER_CREDENTIALS_KEY="")
    assert result.returncode != 0
    assert "SELLER_CREDENTIALS_KEY must be set" in result.stderr


def test_production_with_a_seller_credentials_key_gets_past_that_check():
    keys = f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}"
    result = start_up(**PRODUCTION, SELLER_CREDENTIALS_KEY=keys)
    assert result.returncode == 0, result.stderr


def test_a_malformed_key_is_named_by_position_and_never_echoed():
    good = Fernet.generate_key().decode()
    result = start_up(SELLER_CREDENTIALS_KEY=f"{good},not-a-fernet-key-s3cr3t")
    assert result.returncode != 0
    assert "Invalid value for SELLER_CREDENTIALS_KEY: key 2" in result.stderr
    assert "s3cr3t" not in result.stderr and good not in result.stderr


def test_breaker_settings_are_validated_naming_the_variable():
    result = start_up(SELLER_BREAKER_FAILURES="0")
    assert result.returncode != 0 and "SELLER_BREAKER_FAILURES" in result.stderr
