"""The providers' hash formulas against fixed vectors computed with the seeds' own PHP
(`hash('sha256', …)`, `hash_hmac('sha512', …)`, `base64_encode`)."""

from __future__ import annotations

from watcher.providers.acidpanel import callback_hash, request_hash, split_name
from watcher.providers.kazawallet import webhook_secret

API_KEY, SECRET_KEY, CREDENTIAL_KEY, TIMESTAMP = (
    "ak_test_7f3c",
    "sk_test_91ab",
    "site-cred-42",
    1733275900,
)


def test_acidpanel_request_hash_is_the_seeds_php() -> None:
    # hash('sha256', $apiKey . $secretKey . $timestamp)
    assert request_hash(API_KEY, SECRET_KEY, TIMESTAMP) == (
        "6cd28cdc69f94540b30535fab443d2a3e62b387d29c291f0d5af4fcd11e04647"
    )
    # hash('sha256', $apiKey . $secretKey . $key . $timestamp)
    assert request_hash(API_KEY, SECRET_KEY, TIMESTAMP, CREDENTIAL_KEY) == (
        "395b25bef72022b26dcb33bdd46b146126df08ded9d1fd2022c227364828ba52"
    )


def test_acidpanel_callback_hash_puts_tracking_code_and_status_before_the_timestamp() -> None:
    # hash('sha256', $apiKey . $secretKey . $payload['tracking_code'] . $payload['status']
    #      . $timestamp), with the seed's example callback
    assert (
        callback_hash(API_KEY, SECRET_KEY, "MAN-ABCD1234-1733275800", "completed", str(TIMESTAMP))
        == "e6fa2111b93ad0bf0c7b5d03408200a74d48b9516b2af281daea6dd8df223423"
    )


def test_full_names_split_at_the_last_word() -> None:
    assert split_name("Ahmet Yılmaz") == ("Ahmet", "Yılmaz")
    assert split_name("  Mehmet Ali   Yılmaz ") == ("Mehmet Ali", "Yılmaz")
    assert split_name("Tarkan") == ("Tarkan", "Tarkan")


def test_kazawallet_webhook_secret_is_the_seeds_php() -> None:
    # base64_encode(hash_hmac('sha512', hash('sha256', "$amount:::$order_id:::$apiKey", true),
    #                         $apiSecret, true))
    assert webhook_secret("10.5", "pl_9f8e7d", "kz_key_1", "kz_secret_1") == (
        "iSlOZ/YOaVinWD0RbYwBaFui93uHirJ/NTtJ4K+nN6RKN2cQ5Vpr4d8LjUDUQIc59KkwDb8CAlkuXBNEGcSg5Q=="
    )
