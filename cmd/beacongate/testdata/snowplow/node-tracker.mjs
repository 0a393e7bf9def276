// Drives Snowplow's own @snowplow/node-tracker against a gateway, for
// cmd/beacongate/snowplow_test.go: node node-tracker.mjs HOST:PORT SCENARIO.
// Prints {"sent":[{"via","payload"}],"failures":[...],"successes":N} on
// stdout: every event as the tracker built it (track()'s return value),
// the failed requests, and how many events went in 2xx requests.
import {
  newTracker, buildPageView, buildStructEvent, buildSelfDescribingEvent,
} from '@snowplow/node-tracker';

const [, , addr, scenario = 'events'] = process.argv;
const i = addr.lastIndexOf(':');
const host = addr.slice(0, i);
const port = Number(addr.slice(i + 1));

const failures = [];
let successes = 0;
function emitter(eventMethod, extra = {}) {
  return {
    endpoint: host, port, protocol: 'http', eventMethod,
    bufferSize: eventMethod === 'post' ? 5 : 1,
    onRequestSuccess: (events) => { successes += events.length; },
    onRequestFailure: (f, resp) => {
      failures.push({ status: resp ? resp.status : 0, willRetry: f.willRetry, events: f.events.length, message: f.message || '' });
    },
    ...extra,
  };
}

const sent = [];
const context = [{ schema: 'iglu:com.acme/user/jsonschema/1-0-0', data: { type: 'tester', tag: 'é €' } }];

if (scenario === 'events') {
  // Base64 on one tracker (ue_px, cx), plain JSON on the other (ue_pr, co).
  const post = newTracker({ namespace: 'srv-post', appId: 'shop', encodeBase64: true }, emitter('post'));
  const get = newTracker({ namespace: 'srv-get', appId: 'shop-get', encodeBase64: false }, emitter('get'));
  const users = ['alice', 'bob', 'carol'];
  for (const [via, t] of [['post', post], ['get', get]]) {
    for (const u of users) {
      t.setUserId(u);
      sent.push({ via, payload: t.track(buildPageView({ pageUrl: `https://shop.example/${u}?a=1&b=2`, pageTitle: 'Shop é', referrer: 'https://ref.example/' }), context) });
      for (let n = 0; n < 10; n++) {
        sent.push({ via, payload: t.track(buildStructEvent({ category: 'shop', action: 'view', label: `item-${n}`, property: u, value: n })) });
      }
      sent.push({ via, payload: t.track(buildSelfDescribingEvent({ event: { schema: 'iglu:com.acme/viewed_product/jsonschema/1-0-0', data: { price: 20, user: u, note: 'a "quoted" ✓' } } }), context) });
    }
    // A user known only by the domain user id.
    t.setUserId(null);
    t.setDomainUserId(`d-${via}`);
    for (let n = 0; n < 3; n++) {
      sent.push({ via, payload: t.track(buildStructEvent({ category: 'anon', action: 'tap', value: n })) });
    }
  }
  await post.flush();
  await get.flush();
} else if (scenario === 'bad') {
  // One POST of two events, the second without a tracker version (an
  // empty payload pair drops tv): the gateway records the good one and
  // answers 400, which the tracker must not retry.
  const post = newTracker({ namespace: 'bad', appId: 'shop', encodeBase64: false }, emitter('post', { bufferSize: 2 }));
  post.setUserId('mallory');
  sent.push({ via: 'post', payload: post.track(buildStructEvent({ category: 'bad', action: 'good' })) });
  post.addPayloadPair('tv', '');
  sent.push({ via: 'post', payload: post.track(buildStructEvent({ category: 'bad', action: 'no-tv' })) });
  await post.flush();
  await new Promise((r) => setTimeout(r, 300));
  await post.flush(); // a retry, if the tracker wanted one, would go now
}
// The emitter calls onRequestSuccess and onRequestFailure from timers,
// some after flush() resolves: wait (bounded) until every event has had
// its answer.
const failed = () => failures.reduce((n, f) => n + f.events, 0);
for (let waited = 0; successes + failed() < sent.length && waited < 20000; waited += 20) {
  await new Promise((r) => setTimeout(r, 20));
}
process.stdout.write(JSON.stringify({ sent, failures, successes }));
