// Behaviour of b.js in a fake browser: node's built-in test runner, no
// packages. Run with `node --test snippet/b.test.mjs` (TestSnippetBehaviour
// in snippet_test.go does).
//
// Each test loads the unmodified b.js source into a fresh vm context whose
// global object is a fake window: document (currentScript, cookie, events),
// navigator (sendBeacon, doNotTrack, globalPrivacyControl), location,
// screen, Image, Blob, fetch, crypto, localStorage and manual timers. Every
// request the snippet makes is recorded, never sent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { webcrypto } from 'node:crypto';
import vm from 'node:vm';

const SOURCE = readFileSync(new URL('./b.js', import.meta.url), 'utf8');
const UUID4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const BATCH = 'https://collect.example.com/batch';

// browser builds a fake window, runs b.js in it and returns the window and
// what it recorded. Options:
//   dataset: data-* attributes of the script tag (camelCase keys)
//   config: window.beacongateConfig; stub: window.beacongate before load
//   navigator: members replacing the defaults (sendBeacon: undefined removes it)
//   fetch: replaces fetch (undefined removes it); crypto, localStorage, cookies
//   protocol: 'http:' or 'https:'; currentScript: null for none
function browser(opts = {}) {
  const rec = { beacons: [], fetches: [], images: [], cookieWrites: [], timers: [] };
  const listeners = { document: {}, window: {} };
  const on = where => (type, fn) => { (listeners[where][type] ||= []).push(fn); };

  const cookies = new Map(Object.entries(opts.cookies || {}));
  const document = {
    currentScript: opts.currentScript === null ? null
      : { src: 'https://collect.example.com/b.js', dataset: { ...opts.dataset } },
    referrer: 'https://search.example/?q=shoes',
    title: 'Shoes – Shop',
    visibilityState: 'visible',
    get cookie() { return [...cookies].map(([k, v]) => `${k}=${v}`).join('; '); },
    set cookie(s) {
      rec.cookieWrites.push(s);
      const kv = s.split(';')[0], i = kv.indexOf('=');
      cookies.set(kv.slice(0, i).trim(), kv.slice(i + 1));
    },
    addEventListener: on('document'),
  };

  class Blob {
    constructor(parts, o) { this.parts = parts; this.type = (o && o.type) || ''; }
    text() { return this.parts.join(''); }
  }
  class Image {
    set src(v) { rec.images.push(new URL(String(v))); }
  }

  const store = new Map(Object.entries(opts.local || {}));
  const localStorage = opts.localStorage || {
    getItem: k => (store.has(k) ? store.get(k) : null),
    setItem: (k, v) => { store.set(k, String(v)); },
  };

  const navigator = {
    language: 'de-CH',
    sendBeacon(url, body) {
      rec.beacons.push({ url, type: body.type, body: body.text() });
      return true;
    },
    ...opts.navigator,
  };

  const win = {
    document,
    navigator,
    location: {
      href: 'https://shop.example/shoes?id=7#top',
      protocol: opts.protocol || 'https:',
    },
    screen: { width: 1440, height: 900 },
    Blob,
    Image,
    URL,
    URLSearchParams,
    crypto: 'crypto' in opts ? opts.crypto : webcrypto,
    fetch: 'fetch' in opts ? opts.fetch : (url, init) => {
      rec.fetches.push({ url, init, body: init.body.text(), type: init.body.type });
      return Promise.resolve({ status: 0 });
    },
    setTimeout: (fn, ms) => rec.timers.push({ fn, ms, live: true }),
    clearTimeout: id => { if (rec.timers[id - 1]) rec.timers[id - 1].live = false; },
    addEventListener: on('window'),
  };
  // Like a browser where storage is disabled: touching localStorage throws.
  Object.defineProperty(win, 'localStorage', {
    get() { if (opts.localStorageThrows) throw new Error('SecurityError'); return localStorage; },
  });
  if (opts.config) win.beacongateConfig = opts.config;
  if (opts.stub) win.beacongate = opts.stub;
  win.window = win;
  vm.createContext(win);

  const b = {
    win,
    rec,
    cookies,
    store,
    load() { vm.runInContext(SOURCE, win); return b; },
    get api() { return win.beacongate; },
    // hide: the tab goes to the background (visibilitychange to hidden).
    hide() {
      document.visibilityState = 'hidden';
      for (const fn of listeners.document.visibilitychange || []) fn({ type: 'visibilitychange' });
    },
    show() {
      document.visibilityState = 'visible';
      for (const fn of listeners.document.visibilitychange || []) fn({ type: 'visibilitychange' });
    },
    pagehide() { for (const fn of listeners.window.pagehide || []) fn({ type: 'pagehide' }); },
    // runTimers fires every live timer once.
    runTimers() {
      for (const t of rec.timers.splice(0)) if (t.live) t.fn();
    },
    liveTimers() { return rec.timers.filter(t => t.live); },
    // events: every event sent by sendBeacon, in order.
    events() { return rec.beacons.flatMap(r => JSON.parse(r.body)); },
  };
  return opts.noLoad ? b : b.load();
}

test('version and API are on window.beacongate', () => {
  const b = browser();
  assert.equal(b.api.version, '1.0.0');
  for (const m of ['track', 'identify', 'flush']) assert.equal(typeof b.api[m], 'function');
});

test('a page view is queued on load and sent as one batch when the page is hidden', () => {
  const b = browser({ dataset: { site: 'site-1' } });
  assert.equal(b.rec.beacons.length, 0, 'nothing is sent before a flush');
  b.hide();
  assert.equal(b.rec.beacons.length, 1);
  const [req] = b.rec.beacons;
  assert.equal(req.url, BATCH);
  assert.equal(req.type, 'text/plain');
  const events = JSON.parse(req.body);
  assert.ok(Array.isArray(events));
  assert.equal(events.length, 1);
  const [e] = events;
  assert.match(e.anonymous_id, UUID4);
  assert.ok(Number.isInteger(e.ts) && Math.abs(e.ts - Date.now()) < 60000, 'ts is Date.now()');
  assert.deepEqual(e, {
    event: 'page_view',
    ts: e.ts,
    url: 'https://shop.example/shoes?id=7#top',
    ref: 'https://search.example/?q=shoes',
    title: 'Shoes – Shop',
    sw: 1440,
    sh: 900,
    lang: 'de-CH',
    sid: 'site-1',
    anonymous_id: e.anonymous_id,
    v: '1.0.0',
  });
  assert.deepEqual(Object.keys(e), ['event', 'ts', 'url', 'ref', 'title', 'sw', 'sh', 'lang', 'sid', 'anonymous_id', 'v'],
    'absent fields (props, user_id, gpc) are left out');
});

test('becoming visible does not flush; hidden with nothing queued sends nothing', () => {
  const b = browser();
  b.show();
  assert.equal(b.rec.beacons.length, 0);
  b.hide();
  b.hide();
  assert.equal(b.rec.beacons.length, 1, 'an empty queue sends no request');
});

test('empty fields are left out: no referrer, no title, no site', () => {
  const b = browser({ noLoad: true });
  b.win.document.referrer = '';
  b.win.document.title = '';
  b.load().pagehide();
  const [e] = b.events();
  for (const k of ['ref', 'title', 'sid', 'props', 'user_id', 'gpc']) assert.ok(!(k in e), k);
});

test('track and identify, flushed on pagehide as one request', () => {
  const b = browser({ dataset: { site: 'demo' } });
  const props = { button: 'buy', price: 12.5, tags: ['a', 'b'] };
  b.api.track('click', props);
  props.price = 99; // changed after the call: not what was sent
  b.api.identify('user-42');
  b.api.track('checkout');
  b.api.identify(null); // logout
  b.api.track('after_logout', {});
  b.pagehide();
  assert.equal(b.rec.beacons.length, 1);
  const ev = b.events();
  assert.deepEqual(ev.map(e => e.event), ['page_view', 'click', 'checkout', 'after_logout']);
  assert.deepEqual(ev[1].props, { button: 'buy', price: 12.5, tags: ['a', 'b'] });
  assert.ok(!('user_id' in ev[1]));
  assert.equal(ev[2].user_id, 'user-42');
  assert.ok(!('user_id' in ev[3]));
  assert.deepEqual(ev[3].props, {});
  assert.equal(new Set(ev.map(e => e.anonymous_id)).size, 1, 'one anonymous id per browser');
  for (const e of ev) assert.equal(e.sid, 'demo');
});

test('props that are not an object are ignored; a track without a name is dropped', () => {
  const b = browser();
  b.api.track('a', 'not an object');
  b.api.track('b', null);
  b.api.track('');
  b.api.track();
  b.api.flush();
  const ev = b.events();
  assert.deepEqual(ev.map(e => e.event), ['page_view', 'a', 'b']);
  assert.ok(!('props' in ev[1]) && !('props' in ev[2]));
});

test('10 queued events are sent at once, in one request', () => {
  const b = browser();
  for (let i = 1; i <= 8; i++) b.api.track('e' + i);
  assert.equal(b.rec.beacons.length, 0, '9 events stay queued');
  b.api.track('e9');
  assert.equal(b.rec.beacons.length, 1);
  assert.equal(JSON.parse(b.rec.beacons[0].body).length, 10);
  assert.equal(b.liveTimers().length, 0, 'the flush cancels the timer');
  b.api.track('e10');
  assert.equal(b.rec.beacons.length, 1);
  b.pagehide();
  assert.equal(b.rec.beacons.length, 2);
  assert.deepEqual(JSON.parse(b.rec.beacons[1].body).map(e => e.event), ['e10']);
});

test('a timer flushes 5 s after the first queued event', () => {
  const b = browser();
  assert.equal(b.liveTimers().length, 1);
  assert.equal(b.liveTimers()[0].ms, 5000);
  b.api.track('x');
  b.api.track('y');
  assert.equal(b.rec.timers.length, 1, 'later events do not start another timer');
  b.runTimers();
  assert.equal(b.rec.beacons.length, 1);
  assert.deepEqual(b.events().map(e => e.event), ['page_view', 'x', 'y']);
  b.api.track('z');
  assert.equal(b.liveTimers().length, 1, 'the next event starts a new timer');
  b.runTimers();
  assert.equal(b.rec.beacons.length, 2);
});

test('data-auto="false" sends no page view', () => {
  const b = browser({ dataset: { auto: 'false' } });
  assert.equal(b.liveTimers().length, 0);
  b.pagehide();
  assert.equal(b.rec.beacons.length, 0);
  b.api.track('manual');
  b.api.flush();
  assert.deepEqual(b.events().map(e => e.event), ['manual']);
});

test('window.beacongateConfig configures; data attributes win over it', () => {
  const b = browser({
    config: { endpoint: 'https://cfg.example/collect/', site: 'from-config', auto: false },
    dataset: { site: 'from-tag' },
  });
  b.api.track('x');
  b.api.flush();
  assert.equal(b.rec.beacons[0].url, 'https://cfg.example/collect/batch', 'endpoint, trailing slash dropped');
  assert.deepEqual(b.events().map(e => [e.event, e.sid]), [['x', 'from-tag']]);
});

test('data-endpoint overrides the origin b.js came from', () => {
  const b = browser({ dataset: { endpoint: 'https://events.example.org' } });
  b.pagehide();
  assert.equal(b.rec.beacons[0].url, 'https://events.example.org/batch');
});

test('without currentScript (nor endpoint) events go to the page origin', () => {
  const b = browser({ currentScript: null });
  b.pagehide();
  assert.equal(b.rec.beacons[0].url, '/batch');
});

test('sendBeacon returning false falls back to a keepalive fetch', () => {
  const b = browser({ navigator: { sendBeacon: () => false } });
  b.api.track('x', { k: 'v' });
  b.pagehide();
  assert.equal(b.rec.fetches.length, 1);
  const [f] = b.rec.fetches;
  assert.equal(f.url, BATCH);
  assert.equal(f.init.method, 'POST');
  assert.equal(f.init.keepalive, true);
  assert.equal(f.init.mode, 'no-cors');
  assert.equal(f.init.credentials, 'omit');
  assert.equal(f.type, 'text/plain', 'the body is a text/plain Blob: no preflight');
  assert.deepEqual(JSON.parse(f.body).map(e => e.event), ['page_view', 'x']);
  assert.equal(b.rec.images.length, 0);
});

test('data-credentials="true" makes the fetch credentialed', () => {
  const b = browser({ navigator: { sendBeacon: undefined }, dataset: { credentials: 'true' } });
  b.pagehide();
  assert.equal(b.rec.fetches[0].init.credentials, 'include');
});

test('a rejected fetch is swallowed (no unhandled rejection)', async () => {
  let unhandled = 0;
  const count = () => { unhandled++; };
  process.on('unhandledRejection', count);
  try {
    const b = browser({ navigator: { sendBeacon: undefined }, fetch: () => Promise.reject(new TypeError('Failed to fetch')) });
    b.pagehide();
    await new Promise(r => setTimeout(r, 20));
  } finally {
    process.off('unhandledRejection', count);
  }
  assert.equal(unhandled, 0);
});

// pixels: the query of each image request, as [name, value] pairs.
const pixels = b => b.rec.images.map(u => {
  assert.equal(u.origin + u.pathname, 'https://collect.example.com/i');
  return [...u.searchParams];
});

test('no sendBeacon and no fetch: one image pixel per event', () => {
  const b = browser({ navigator: { sendBeacon: undefined }, fetch: undefined, dataset: { site: 's1' } });
  b.api.track('click', { button: 'buy', price: 12.5, meta: { a: 1 } });
  b.api.identify('u-7');
  b.api.track('after');
  b.pagehide();
  assert.equal(b.rec.beacons.length + b.rec.fetches.length, 0);
  const [pv, click, after] = pixels(b);
  assert.equal(b.rec.images.length, 3);
  const aid = Object.fromEntries(pv).aid;
  assert.match(aid, UUID4);
  const q = Object.fromEntries(pv);
  assert.deepEqual(pv.map(([k]) => k), ['ev', 'uid', 'aid', 'ts', 'url', 'ref', 'title', 'sw', 'sh', 'lang', 'sid', 'v']);
  assert.deepEqual(q, {
    ev: 'page_view', uid: aid, aid, ts: q.ts, url: 'https://shop.example/shoes?id=7#top',
    ref: 'https://search.example/?q=shoes', title: 'Shoes – Shop', sw: '1440', sh: '900', lang: 'de-CH',
    sid: 's1', v: '1.0.0',
  });
  assert.match(q.ts, /^\d{13}$/);
  const c = Object.fromEntries(click);
  assert.equal(c.ev, 'click');
  assert.equal(c.uid, aid, 'uid is the anonymous id before identify');
  assert.equal(c['p.button'], 'buy');
  assert.equal(c['p.price'], '12.5');
  assert.equal(c['p.meta'], '{"a":1}', 'nested props are JSON');
  const a = Object.fromEntries(after);
  assert.equal(a.uid, 'u-7', 'uid is the user id once identified');
  assert.equal(a.aid, aid);
});

test('fetch throwing synchronously falls back to pixels', () => {
  const b = browser({ navigator: { sendBeacon: () => false }, fetch: () => { throw new TypeError('blocked'); } });
  b.pagehide();
  assert.deepEqual(pixels(b).map(p => Object.fromEntries(p).ev), ['page_view']);
});

test('pixel queries stay under ~7 KB: parameters that do not fit are left out', () => {
  const b = browser({ navigator: { sendBeacon: undefined }, fetch: undefined });
  b.api.track('big', { small: 'kept', huge: 'x'.repeat(8000), after: 'kept too', wide: 'é'.repeat(2000) });
  b.pagehide();
  assert.equal(b.rec.images.length, 2);
  for (const u of b.rec.images) assert.ok(u.search.length - 1 <= 6990, `query of ${u.search.length - 1} chars`);
  const q = Object.fromEntries(pixels(b)[1]);
  assert.equal(q.ev, 'big');
  assert.equal(q['p.small'], 'kept');
  assert.equal(q['p.after'], 'kept too');
  assert.ok(!('p.huge' in q), 'the huge prop is dropped');
  assert.ok(!('p.wide' in q), '2000 é are 12000 chars encoded: dropped');
  assert.ok(q.uid && q.url && q.title, 'the core fields are kept');
});

test('cookie storage (default): bg_aid is set with its attributes and reused', () => {
  const b = browser({ dataset: { cookieDomain: 'example.com' } });
  b.pagehide();
  const aid = b.events()[0].anonymous_id;
  assert.match(aid, UUID4);
  assert.deepEqual(b.rec.cookieWrites,
    [`bg_aid=${aid}; Path=/; Max-Age=63072000; SameSite=Lax; Domain=example.com; Secure`]);

  // The next page of the same browser: same id, cookie renewed.
  const next = browser({ cookies: { other: '1', bg_aid: aid } });
  next.pagehide();
  assert.equal(next.events()[0].anonymous_id, aid);
  assert.deepEqual(next.rec.cookieWrites, [`bg_aid=${aid}; Path=/; Max-Age=63072000; SameSite=Lax; Secure`]);
  assert.equal(next.store.size, 0, 'nothing in localStorage');
});

test('cookie on http: no Secure attribute; a malformed cookie is replaced', () => {
  const b = browser({ protocol: 'http:', cookies: { bg_aid: 'garbage' } });
  b.pagehide();
  const aid = b.events()[0].anonymous_id;
  assert.match(aid, UUID4);
  assert.deepEqual(b.rec.cookieWrites, [`bg_aid=${aid}; Path=/; Max-Age=63072000; SameSite=Lax`]);
});

test('crypto.randomUUID missing (http page): a v4 UUID from getRandomValues', () => {
  const b = browser({ crypto: { getRandomValues: a => webcrypto.getRandomValues(a) } });
  b.pagehide();
  assert.match(b.events()[0].anonymous_id, UUID4);
});

test('data-storage="local": bg_aid in localStorage, reused, no cookie', () => {
  const b = browser({ dataset: { storage: 'local' } });
  b.pagehide();
  const aid = b.events()[0].anonymous_id;
  assert.match(aid, UUID4);
  assert.equal(b.store.get('bg_aid'), aid);
  assert.equal(b.rec.cookieWrites.length, 0);
  const next = browser({ dataset: { storage: 'local' }, local: { bg_aid: aid } });
  next.pagehide();
  assert.equal(next.events()[0].anonymous_id, aid);
});

test('storage that throws: an anonymous id for this page only, no error', () => {
  const b = browser({ dataset: { storage: 'local' }, localStorageThrows: true });
  b.pagehide();
  assert.match(b.events()[0].anonymous_id, UUID4);
});

test('data-storage="none": no anonymous id, nothing stored', () => {
  const b = browser({ dataset: { storage: 'none' } });
  b.api.identify('u1'); // a user id is still sent: the site knows it anyway
  b.api.track('x');
  b.pagehide();
  const ev = b.events();
  assert.equal(ev.length, 2);
  for (const e of ev) assert.ok(!('anonymous_id' in e));
  assert.equal(ev[1].user_id, 'u1');
  assert.equal(b.rec.cookieWrites.length + b.store.size, 0);
});

test('respect-dnt with doNotTrack "1": nothing is sent or stored at all', () => {
  const b = browser({
    dataset: { respectDnt: 'true' }, navigator: { doNotTrack: '1' },
    stub: { q: [['track', 'queued']] },
  });
  b.api.identify('u1');
  b.api.track('x', { a: 1 });
  b.api.flush();
  b.hide();
  b.pagehide();
  b.runTimers();
  assert.deepEqual([b.rec.beacons, b.rec.fetches, b.rec.images, b.rec.cookieWrites], [[], [], [], []]);
  assert.equal(b.api.version, '1.0.0', 'the API still exists');
});

test('doNotTrack is ignored unless data-respect-dnt="true"', () => {
  const b = browser({ navigator: { doNotTrack: '1' } });
  b.pagehide();
  assert.equal(b.events().length, 1);
  const c = browser({ dataset: { respectDnt: 'true' }, navigator: { doNotTrack: '0' } });
  c.pagehide();
  assert.equal(c.events().length, 1);
});

test('respect-gpc with globalPrivacyControl: no identifiers, gpc:true, nothing stored', () => {
  const b = browser({ config: { respectGpc: true }, navigator: { globalPrivacyControl: true } });
  b.api.identify('u1');
  b.api.track('x');
  b.pagehide();
  const ev = b.events();
  assert.equal(ev.length, 2);
  for (const e of ev) {
    assert.ok(!('anonymous_id' in e) && !('user_id' in e), JSON.stringify(e));
    assert.equal(e.gpc, true);
  }
  assert.equal(b.rec.cookieWrites.length, 0);

  const p = browser({ config: { respectGpc: true }, navigator: { globalPrivacyControl: true, sendBeacon: undefined }, fetch: undefined });
  p.api.identify('u1');
  p.pagehide();
  const q = Object.fromEntries(pixels(p)[0]);
  assert.ok(!('uid' in q) && !('aid' in q));
  assert.equal(q.gpc, 'true');
});

test('globalPrivacyControl is ignored unless respect-gpc', () => {
  const b = browser({ navigator: { globalPrivacyControl: true } });
  b.pagehide();
  const [e] = b.events();
  assert.match(e.anonymous_id, UUID4);
  assert.ok(!('gpc' in e));
});

test('the stub queue is replayed in order, before the page view', () => {
  const stub = { q: [['identify', 'u1'], ['track', 'signup', { plan: 'pro' }], ['nonsense', 1], 'garbage', ['flush']] };
  (function () { stub.q.push(arguments); })('track', 'from_arguments');
  const b = browser({ stub });
  assert.equal(b.rec.beacons.length, 1, 'the queued flush ran');
  assert.notEqual(b.api, stub);
  b.api.q.push(['track', 'pushed_after_load']); // the stub pattern keeps working
  b.pagehide();
  const ev = b.events();
  assert.deepEqual(ev.map(e => e.event), ['signup', 'from_arguments', 'page_view', 'pushed_after_load']);
  assert.deepEqual(ev[0].props, { plan: 'pro' });
  for (const e of ev) assert.equal(e.user_id, 'u1');
});

test('loaded twice: one snippet, one page view', () => {
  const b = browser();
  const api = b.api;
  b.load();
  assert.equal(b.api, api);
  b.pagehide();
  assert.equal(b.events().length, 1);
});

test('a throwing sendBeacon never throws into the caller; fetch takes over', () => {
  const b = browser({ navigator: { sendBeacon() { throw new TypeError('Illegal invocation'); } } });
  assert.doesNotThrow(() => b.api.flush());
  assert.equal(b.rec.fetches.length, 1);
  assert.doesNotThrow(() => b.pagehide());
});

test('nothing throws into the page, whatever the input or the browser', () => {
  const circular = {};
  circular.self = circular;
  const b = browser({
    navigator: { sendBeacon() { throw new Error('x'); } },
    fetch() { throw new Error('y'); },
  });
  b.win.Image = class { set src(v) { throw new Error('z'); } };
  assert.doesNotThrow(() => {
    b.api.track('circular', circular); // cannot be serialized: dropped
    b.api.track({ toString() { throw new Error('bad name'); } });
    b.api.identify({ toString() { throw new Error('bad id'); } });
    b.api.flush();
    b.api.q.push(null, [], ['track']);
  });
  // The snippet itself loads even in a hostile page.
  const hostile = browser({ noLoad: true, crypto: undefined, localStorageThrows: true });
  Object.defineProperty(hostile.win.document, 'cookie', { get() { throw new Error('no cookies'); }, set() { throw new Error('no'); } });
  assert.doesNotThrow(() => hostile.load());
});
