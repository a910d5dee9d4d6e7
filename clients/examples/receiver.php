<?php
// A kasa-watcher callback receiver in plain PHP (7.4+), checking both signatures.
// Serve it at your callbackUrl; set KASA_WEBHOOK_SECRET (and KASA_TEST_WEBHOOK_SECRET on a
// staging receiver only).

const TOLERANCE_S = 300;

function kasa_amount($amount): string
{
    // The amount as JavaScript prints the JSON number: 1000, 281.6. Whole amounts arrive as
    // JSON integers; json_encode prints a float the shortest way that reads back the same
    // (with PHP's default serialize_precision = -1).
    return is_int($amount) ? (string) $amount : json_encode($amount);
}

function kasa_verify(string $raw, array $headers, string $live, string $test): array
{
    $p = json_decode($raw, true, 512, JSON_THROW_ON_ERROR);
    $ts = $headers['x-timestamp'] ?? '';
    if ($ts === '' || ($p['timestamp'] ?? null) !== $ts) {
        throw new RuntimeException('X-Timestamp does not match the payload');
    }
    $data = implode(':', [$p['transactionId'], $p['externalRef'], $p['status'],
                          kasa_amount($p['amount']), $ts]);
    $given = strtolower(trim($headers['x-signature'] ?? ''));
    $secret = null;
    foreach ([$live, $test] as $candidate) {
        if ($candidate !== '' && hash_equals(hash_hmac('sha256', $data, $candidate), $given)) {
            $secret = $candidate;
            break;
        }
    }
    if ($secret === null) {
        throw new RuntimeException('X-Signature does not match');
    }
    $body = strtolower(trim($headers['x-body-signature'] ?? ''));
    if (!hash_equals(hash_hmac('sha256', $ts . '.' . $raw, $secret), $body)) {
        throw new RuntimeException('X-Body-Signature does not match: the body was altered');
    }
    if (abs(time() - strtotime($ts)) > TOLERANCE_S) {
        throw new RuntimeException('stale X-Timestamp');
    }
    $livemode = $secret === $live;
    if (($p['livemode'] ?? $livemode) !== $livemode) {
        throw new RuntimeException('livemode does not match the secret that signed it');
    }
    $p['livemode'] = $livemode;
    return $p;
}

$headers = array_change_key_case(function_exists('getallheaders') ? getallheaders() : [], CASE_LOWER);
header('Content-Type: application/json');
try {
    $event = kasa_verify(file_get_contents('php://input'), $headers,
                         getenv('KASA_WEBHOOK_SECRET') ?: '', getenv('KASA_TEST_WEBHOOK_SECRET') ?: '');
} catch (Throwable $e) {
    http_response_code(401);
    echo json_encode(['received' => false, 'error' => $e->getMessage()]);
    exit;
}
// Dedupe on $event['eventId'] in your database, then act on $event['event'].
error_log(($event['livemode'] ? 'live ' : 'test ') . $event['event'] . ' ' . $event['externalRef']);
echo json_encode(['received' => true]); // anything else is retried
