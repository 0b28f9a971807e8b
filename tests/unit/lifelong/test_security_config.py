from __future__ import annotations

import pytest

from lifelong.config import ConfigError, Settings


def test_plain_text_kafka_needs_no_options():
    assert Settings.from_env({}).kafka_client_config() == {}


def test_sasl_ssl_with_a_private_ca(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = Settings.from_env({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                                  "KAFKA_SASL_MECHANISM": "scram-sha-256",
                                  "KAFKA_SASL_USERNAME": "reco", "KAFKA_SASL_PASSWORD": "s3cret",
                                  "KAFKA_SSL_CAFILE": str(ca)})
    assert settings.kafka_client_config() == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "reco", "sasl_plain_password": "s3cret", "ssl_cafile": str(ca)}
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(("env", "named"), [
    ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL='TLS': expected one of"),
    ({"KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM='GSSAPI'"),
    ({"KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"}, "KAFKA_SSL_CAFILE='/nonexistent/ca.pem'"),
])
def test_bad_values_name_the_variable(env, named):
    with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace("'", ".")):
        Settings.from_env(env)


def test_inconsistent_sasl_settings_are_refused():
    with pytest.raises(ConfigError, match="needs KAFKA_SASL_USERNAME"):
        Settings.from_env({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}).kafka_client_config()
    with pytest.raises(ConfigError, match="use SASL_SSL"):
        Settings.from_env({"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}
                          ).kafka_client_config()


def test_redis_credentials_apart_from_the_url():
    settings = Settings.from_env({"REDIS_URL": "redis://10.0.0.5:6379/0",
                                  "REDIS_USERNAME": "reco", "REDIS_PASSWORD": "pw"})
    assert settings.redis_options() == {"username": "reco", "password": "pw"}
    assert "pw" not in repr(settings).replace("password", "")
