"""kasa-watcher's merchant client: create payments, read their status and events, verify the
signed callbacks. Depends on httpx only.

    from kasa_watcher_client import Client, verify_webhook
"""

from kasa_watcher_client.client import Client, WatcherClient
from kasa_watcher_client.errors import WatcherAPIError, WebhookVerificationError
from kasa_watcher_client.signing import canonical_amount, sign, sign_body, signature_string
from kasa_watcher_client.webhooks import DEFAULT_TOLERANCE_S, verify_webhook

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "Client",
    "WatcherAPIError",
    "WatcherClient",
    "WebhookVerificationError",
    "canonical_amount",
    "sign",
    "sign_body",
    "signature_string",
    "verify_webhook",
]
__version__ = "0.1.0"
