"""The payer's language on the payer's pages (the checkout page, the card, bank and wallet
page, the sandbox page): Turkish or English.

Chosen by `?lang=tr|en` (the page's switch) or else by the browser's Accept-Language (q
weights honoured); a browser that asks for neither gets English. Messages are format strings
whose arguments are escaped unless they are already markup (the template passes spans that
the page's script updates). Numbers follow the language: `10.000,00` and `281,69` in Turkish
(tr-TR), `10,000.00` and `281.69` in English. What a button copies stays plain (`281.69`):
wallets parse that.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from markupsafe import Markup

LANGUAGES = ("tr", "en")
DEFAULT = "en"
LANGUAGE_NAMES = {"tr": "Türkçe", "en": "English"}

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "pending": "Awaiting payment",
        "confirming": "Confirming",
        "completed": "Paid",
        "expired": "Expired",
        "cancelled": "Cancelled",
        "failed": "Failed",
        "title": "Pay {merchant}",
        "not_found_title": "Payment not found",
        "not_found": "This payment link is not valid. Check the link the shop gave you, or "
        "start the payment again from the shop.",
        "test": "Test",
        "send_exactly": "Send exactly",
        "send_rest": "Partly paid: send the remaining",
        "copy_amount": "Copy amount",
        "copy_address": "Copy address",
        "copied": "Copied",
        "qr": "QR code of the deposit address",
        "to_address": "to this TRON (TRC20) address",
        "warn": "<strong>USDT on TRON (TRC20) only.</strong> Other coins, or USDT sent over "
        "another network (ERC20, BEP20, …), cannot be recovered. Send the exact amount shown; "
        "exchange withdrawal fees must not be deducted from it.",
        "seen": "Seen on the network",
        "seen_note": "The full amount has arrived and is waiting for confirmations. Nothing "
        "more to send; keep this page open.",
        "rate": "Rate",
        "total": "Total",
        "received": "Received",
        "time_left": "Time left",
        "time_up": "Time is up",
        "noscript": "Pay before {time}. Reload this page to see the status.",
        "paid_title": "Payment received",
        "paid": "{usdt} USDT received for {amount} TRY. Thank you!",
        "return": "Return to site",
        "back": "Back to site",
        "expired_title": "This payment has expired",
        "expired_text": "The time to pay has run out. Do not send funds to this address; start "
        "a new payment from the shop.",
        "kept": "<strong>{usdt} USDT</strong> of {total} USDT arrived before the deadline. "
        "{merchant} has been told and will settle it with you.",
        "late": "<strong>{usdt} USDT</strong> arrived after the deadline. {merchant} has been "
        "told and will settle it with you.",
        "cancelled_title": "This payment was cancelled",
        "cancelled_text": "Do not send funds to this address.",
        "cancelled_kept": "<strong>{usdt} USDT</strong> had arrived before it was cancelled. "
        "{merchant} has been told and will settle it with you.",
        "cancelled_late": "<strong>{usdt} USDT</strong> arrived after the payment was "
        "cancelled. {merchant} has been told and will settle it with you.",
        "failed_title": "This payment failed",
        "failed_text": "Start a new payment from the shop.",
        "footer": "Payment {id} · USDT-TRC20",
        "language": "Language",
        # card, bank and wallet payments (/pay/{id} of such a payment, /sandbox/pay/{id})
        "refunded": "Refunded",
        "sandbox_title": "Sandbox: pay {merchant}",
        "provider_footer": "Payment {id} · {provider}",
        "processing": "The provider is processing this payment.",
        "pay_card": "Pay by card",
        "pay_bank": "Pay by bank transfer",
        "pay_wallet": "Pay with your wallet",
        "pay_before": "Pay before {time}.",
        "bank_intro": "Send <strong>{amount} TRY</strong> by bank transfer (EFT or FAST) to this "
        "account, with the reference below as the description.",
        "bank_name": "Bank",
        "account_name": "Account holder",
        "iban": "IBAN",
        "reference": "Reference (description)",
        "copy_iban": "Copy IBAN",
        "copy_reference": "Copy reference",
        "bank_note": "Without the reference your transfer cannot be matched to this payment. "
        "Reload this page to see when the bank has reported it.",
        "provider_paid": "{amount} TRY paid. Thank you!",
        "provider_expired_text": "Start a new payment from the shop.",
        "nothing_charged": "Nothing was charged.",
        "refunded_title": "This payment was refunded",
        "refunded_text": "The money went back to you.",
        "reason_card_declined": "The card was declined.",
        "reason_insufficient_funds": "The card has insufficient funds.",
        "reason_authentication_failed": "The 3-D Secure check was refused.",
        "reason_sandbox_failed": "The payment failed (sandbox).",
        "reason_amount_mismatch": "The amount paid does not match this payment; "
        "the shop will settle it with you.",
        "reason_currency_mismatch": "The payment was made in another currency; "
        "the shop will settle it with you.",
        "reason_other": "The provider said: {reason}.",
        # the sandbox page
        "card_name": "Name on card",
        "card_number": "Card number",
        "card_expiry": "Expiry (MM/YY)",
        "card_cvc": "CVC",
        "pay_amount": "Pay {amount} TRY",
        "test_cards": "Sandbox test cards: <code>4242 4242 4242 4242</code> succeeds, "
        "<code>4000 0000 0000 0002</code> is declined, <code>4000 0000 0000 9995</code> has "
        "insufficient funds, <code>4000 0025 0000 3155</code> asks for 3-D Secure. Any future "
        "expiry, any 3-digit CVC.",
        "card_not_test": "This is the sandbox: use a test card, for example 4242 4242 4242 4242 "
        "(4000 0000 0000 0002 is declined, 4000 0000 0000 9995 has insufficient funds, "
        "4000 0025 0000 3155 asks for 3-D Secure).",
        "card_bad_expiry": "Enter the expiry as MM/YY, for example 12/34.",
        "card_expired": "The card has expired: any future expiry date works.",
        "card_bad_cvc": "The CVC is 3 digits: any 3 digits work.",
        "three_ds_title": "3-D Secure",
        "three_ds_text": "Your bank asks you to confirm this payment of {amount} TRY to "
        "{merchant}. (Sandbox: nothing is charged.)",
        "approve": "Approve",
        "refuse": "Refuse",
        "sandbox_card": "card",
        "sandbox_bank": "bank transfer",
        "sandbox_wallet": "wallet",
        "sandbox_actions": "Sandbox {method} payment: choose what the provider reports.",
        "complete": "Complete",
        "fail": "Fail",
        "expire": "Expire",
    },
    "tr": {
        "pending": "Ödeme bekleniyor",
        "confirming": "Onaylanıyor",
        "completed": "Ödendi",
        "expired": "Süresi doldu",
        "cancelled": "İptal edildi",
        "failed": "Başarısız",
        "title": "{merchant} ödemesi",
        "not_found_title": "Ödeme bulunamadı",
        "not_found": "Bu ödeme bağlantısı geçerli değil. Mağazanın verdiği bağlantıyı kontrol "
        "edin ya da ödemeyi mağazadan yeniden başlatın.",
        "test": "Test",
        "send_exactly": "Tam olarak gönderin",
        "send_rest": "Kısmen ödendi: kalan tutarı gönderin",
        "copy_amount": "Tutarı kopyala",
        "copy_address": "Adresi kopyala",
        "copied": "Kopyalandı",
        "qr": "Yatırma adresinin QR kodu",
        "to_address": "şu TRON (TRC20) adresine",
        "warn": "<strong>Yalnızca TRON (TRC20) ağında USDT gönderin.</strong> Başka coinler ya "
        "da başka bir ağdan (ERC20, BEP20, …) gönderilen USDT geri alınamaz. Gösterilen "
        "tutarın tamamını gönderin; borsanın çekim ücreti bu tutardan düşülmemelidir.",
        "seen": "Ağda görüldü",
        "seen_note": "Tutarın tamamı ulaştı ve onay bekliyor. Başka bir şey göndermeniz "
        "gerekmiyor; bu sayfayı açık tutun.",
        "rate": "Kur",
        "total": "Toplam",
        "received": "Alınan",
        "time_left": "Kalan süre",
        "time_up": "Süre doldu",
        "noscript": "{time} saatinden önce ödeyin. Durumu görmek için sayfayı yenileyin.",
        "paid_title": "Ödeme alındı",
        "paid": "{amount} TRY karşılığında {usdt} USDT alındı. Teşekkürler!",
        "return": "Siteye dön",
        "back": "Siteye geri dön",
        "expired_title": "Bu ödemenin süresi doldu",
        "expired_text": "Ödeme süresi sona erdi. Bu adrese para göndermeyin; mağazadan yeni "
        "bir ödeme başlatın.",
        "kept": "Süre dolmadan {total} USDT'nin <strong>{usdt} USDT</strong> kadarı ulaştı. "
        "{merchant} bilgilendirildi ve bu tutarı sizinle halledecek.",
        "late": "<strong>{usdt} USDT</strong> süre dolduktan sonra ulaştı. {merchant} "
        "bilgilendirildi ve bu tutarı sizinle halledecek.",
        "cancelled_title": "Bu ödeme iptal edildi",
        "cancelled_text": "Bu adrese para göndermeyin.",
        "cancelled_kept": "İptal edilmeden önce <strong>{usdt} USDT</strong> ulaşmıştı. "
        "{merchant} bilgilendirildi ve bu tutarı sizinle halledecek.",
        "cancelled_late": "<strong>{usdt} USDT</strong> ödeme iptal edildikten sonra ulaştı. "
        "{merchant} bilgilendirildi ve bu tutarı sizinle halledecek.",
        "failed_title": "Bu ödeme başarısız oldu",
        "failed_text": "Mağazadan yeni bir ödeme başlatın.",
        "footer": "Ödeme {id} · USDT-TRC20",
        "language": "Dil",
        "refunded": "İade edildi",
        "sandbox_title": "Sandbox: {merchant} ödemesi",
        "provider_footer": "Ödeme {id} · {provider}",
        "processing": "Sağlayıcı bu ödemeyi işliyor.",
        "pay_card": "Kartla öde",
        "pay_bank": "Havale/EFT ile öde",
        "pay_wallet": "Cüzdanınızla ödeyin",
        "pay_before": "{time} saatinden önce ödeyin.",
        "bank_intro": "<strong>{amount} TRY</strong> tutarını bu hesaba havale/EFT (veya FAST) "
        "ile gönderin; açıklamaya aşağıdaki referansı yazın.",
        "bank_name": "Banka",
        "account_name": "Alıcı adı",
        "iban": "IBAN",
        "reference": "Referans (açıklama)",
        "copy_iban": "IBAN'ı kopyala",
        "copy_reference": "Referansı kopyala",
        "bank_note": "Referans olmadan gönderiminiz bu ödemeyle eşleştirilemez. Bankanın "
        "bildirip bildirmediğini görmek için sayfayı yenileyin.",
        "provider_paid": "{amount} TRY ödendi. Teşekkürler!",
        "provider_expired_text": "Mağazadan yeni bir ödeme başlatın.",
        "nothing_charged": "Hiçbir ücret alınmadı.",
        "refunded_title": "Bu ödeme iade edildi",
        "refunded_text": "Para size geri gönderildi.",
        "reason_card_declined": "Kart reddedildi.",
        "reason_insufficient_funds": "Kartın bakiyesi yetersiz.",
        "reason_authentication_failed": "3-D Secure doğrulaması reddedildi.",
        "reason_sandbox_failed": "Ödeme başarısız oldu (sandbox).",
        "reason_amount_mismatch": "Ödenen tutar bu ödemeyle eşleşmiyor; "
        "mağaza sizinle hesaplaşacak.",
        "reason_currency_mismatch": "Ödeme başka bir para biriminde yapıldı; "
        "mağaza sizinle hesaplaşacak.",
        "reason_other": "Sağlayıcının yanıtı: {reason}.",
        "card_name": "Kart üzerindeki isim",
        "card_number": "Kart numarası",
        "card_expiry": "Son kullanma (AA/YY)",
        "card_cvc": "CVC",
        "pay_amount": "{amount} TRY öde",
        "test_cards": "Sandbox test kartları: <code>4242 4242 4242 4242</code> başarılı olur, "
        "<code>4000 0000 0000 0002</code> reddedilir, <code>4000 0000 0000 9995</code> "
        "yetersiz bakiye verir, <code>4000 0025 0000 3155</code> 3-D Secure ister. Gelecekteki "
        "herhangi bir son kullanma tarihi ve 3 haneli herhangi bir CVC olur.",
        "card_not_test": "Burası sandbox: bir test kartı kullanın, örneğin 4242 4242 4242 4242 "
        "(4000 0000 0000 0002 reddedilir, 4000 0000 0000 9995 yetersiz bakiye verir, "
        "4000 0025 0000 3155 3-D Secure ister).",
        "card_bad_expiry": "Son kullanma tarihini AA/YY olarak girin, örneğin 12/34.",
        "card_expired": "Kartın süresi dolmuş: gelecekteki herhangi bir tarih olur.",
        "card_bad_cvc": "CVC 3 hanelidir: herhangi 3 rakam olur.",
        "three_ds_title": "3-D Secure",
        "three_ds_text": "Bankanız {merchant} için {amount} TRY tutarındaki bu ödemeyi "
        "onaylamanızı istiyor. (Sandbox: hiçbir ücret alınmaz.)",
        "approve": "Onayla",
        "refuse": "Reddet",
        "sandbox_card": "kart",
        "sandbox_bank": "havale",
        "sandbox_wallet": "cüzdan",
        "sandbox_actions": "Sandbox {method} ödemesi: sağlayıcının ne bildireceğini seçin.",
        "complete": "Tamamla",
        "fail": "Başarısız yap",
        "expire": "Süresini doldur",
    },
}


def negotiate(query: str | None, accept_language: str | None) -> str:
    """`tr` or `en`: the explicit choice, else the best match of Accept-Language."""
    if query in LANGUAGES:
        return str(query)
    best, best_q = DEFAULT, Decimal(0)
    for item in (accept_language or "").split(",")[:20]:
        tag, _, params = item.strip().partition(";")
        language = tag.strip().lower().split("-")[0]
        if language not in LANGUAGES:
            continue
        q = _quality(params)
        if q > best_q:
            best, best_q = language, q
    return best


def _quality(params: str) -> Decimal:
    """The q parameter (RFC 9110: 0 to 1, up to three decimals); unreadable counts as 0."""
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip() == "q":
            try:
                q = Decimal(value)
            except InvalidOperation:
                return Decimal(0)
            return max(Decimal(0), min(Decimal(1), q)) if q.is_finite() else Decimal(0)
    return Decimal(1)


Translate = Callable[..., Markup]


def translator(lang: str) -> Translate:
    """`t("kept", usdt=…, merchant=…)`: the message in `lang`, arguments escaped."""
    messages = MESSAGES[lang]

    def t(key: str, **args: Any) -> Markup:
        return Markup(messages[key]).format(**args)

    return t


def grouped(amount: Decimal, lang: str) -> str:
    """TRY: two decimals, thousands grouped: `10,000.00` / `10.000,00`."""
    return _local(f"{amount:,.2f}", lang)


def plain(amount: Decimal, lang: str) -> str:
    """USDT as given (a pool tag may use 6 decimals): `14084.51` / `14.084,51`."""
    if lang == "en":
        return format(amount, "f")
    return _local(format(amount, ",f"), lang)


def _local(english: str, lang: str) -> str:
    if lang != "tr":
        return english
    return english.replace(",", "\0").replace(".", ",").replace("\0", ".")
