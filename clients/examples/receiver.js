// A kasa-watcher callback receiver in Node.js (no dependencies), checking both signatures.
//   KASA_WEBHOOK_SECRET=whsec_… PORT=3000 node receiver.js
// The first check is the seed's snippet; the body signature also covers event, eventId,
// sequence, livemode and metadata, which the seed's string leaves out.
const crypto = require('crypto');
const http = require('http');

const LIVE = process.env.KASA_WEBHOOK_SECRET || '';
const TEST = process.env.KASA_TEST_WEBHOOK_SECRET || ''; // only on a staging receiver
const TOLERANCE_MS = 5 * 60 * 1000;

const hmac = (secret, data) => crypto.createHmac('sha256', secret).update(data).digest('hex');
const same = (expected, given) => {
  const a = Buffer.from(expected);
  const b = Buffer.from(String(given || '').trim().toLowerCase());
  return a.length === b.length && crypto.timingSafeEqual(a, b);
};

function verify(raw, header) {
  const p = JSON.parse(raw.toString('utf8'));
  const ts = header('X-Timestamp');
  if (!ts || p.timestamp !== ts) throw new Error('X-Timestamp does not match the payload');
  const dataString = `${p.transactionId}:${p.externalRef}:${p.status}:${p.amount}:${ts}`;
  const secret = [LIVE, TEST].find((s) => s && same(hmac(s, dataString), header('X-Signature')));
  if (!secret) throw new Error('X-Signature does not match');
  const signedBody = Buffer.concat([Buffer.from(`${ts}.`), raw]);
  if (!same(hmac(secret, signedBody), header('X-Body-Signature'))) throw new Error('body altered');
  if (Math.abs(Date.now() - Date.parse(ts)) > TOLERANCE_MS) throw new Error('stale timestamp');
  const livemode = secret === LIVE;
  if ((p.livemode ?? livemode) !== livemode) throw new Error('livemode does not match the secret');
  return { ...p, livemode };
}

const seen = new Set(); // use your database: eventId is the same on every attempt

function answer(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    let event;
    try {
      event = verify(Buffer.concat(chunks), (name) => req.headers[name.toLowerCase()]);
    } catch (err) {
      return answer(res, 401, { received: false, error: err.message });
    }
    if (!seen.has(event.eventId)) {
      seen.add(event.eventId);
      console.log(event.livemode ? 'live' : 'test', event.event, event.externalRef, event.amount);
    }
    answer(res, 200, { received: true }); // anything else is retried
  });
}).listen(Number(process.env.PORT || 3000), '127.0.0.1');
