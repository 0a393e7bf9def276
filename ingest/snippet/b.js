/*! beacongate b.js. Stub, for calls before load (replayed in order):
 * window.beacongate=window.beacongate||{q:[]}; beacongate.q.push(['track','buy',{price:1}]) */
(() => { try {
  const VERSION = '1.0.0', w = window, d = document, nav = navigator;
  const stub = w.beacongate;
  if (stub && stub.version) return; // loaded twice
  const tag = d.currentScript; // null once this first run is over
  const data = (tag && tag.dataset) || {}, conf = w.beacongateConfig || {};
  const opt = k => (k in data ? data : conf)[k];
  const on = k => String(opt(k)) === 'true';
  const safe = f => (...a) => { try { f(...a); } catch (e) {} }; // never throw into the page
  const endpoint = String(opt('endpoint') || (tag && tag.src ? new URL(tag.src).origin : '')).replace(/\/+$/, '');
  const store = opt('storage');
  const dnt = on('respectDnt') && nav.doNotTrack === '1';
  const gpc = on('respectGpc') && nav.globalPrivacyControl === true;

  // UUID v4 (randomUUID needs https)
  const uuid = () => crypto.randomUUID ? crypto.randomUUID() : '10000000-1000-4000-8000-100000000000'
    .replace(/[018]/g, c => (c ^ crypto.getRandomValues(new Uint8Array(1))[0] & 15 >> c / 4).toString(16));

  let aid, uid, queue = [], timer = 0;
  if (!dnt && !gpc && store !== 'none') {
    const local = store === 'local', dom = opt('cookieDomain');
    aid = uuid(); // this page only if storage is blocked
    try {
      const m = (local ? 'bg_aid=' + localStorage.getItem('bg_aid') : d.cookie).match(/(^|;\s*)bg_aid=([\da-f-]{36})/);
      if (m) aid = m[2];
      if (local) localStorage.setItem('bg_aid', aid);
      else d.cookie = 'bg_aid=' + aid + '; Path=/; Max-Age=63072000; SameSite=Lax' + // renewed each load
        (dom ? '; Domain=' + dom : '') + (location.protocol === 'https:' ? '; Secure' : '');
    } catch (e) {}
  }

  // One GET per event; params that would take the query past ~7 KB are left out
  const pixel = s => {
    const e = JSON.parse(s), p = new URLSearchParams();
    const add = (k, v) => {
      if (v == null) return;
      p.append(k, typeof v === 'object' ? JSON.stringify(v) : v);
      if (p.toString().length > 6990) p.delete(k);
    };
    add('ev', e.event);
    add('uid', e.user_id || e.anonymous_id);
    add('aid', e.anonymous_id);
    for (const k in e) if (!/^(event|props|user_id|anonymous_id)$/.test(k)) add(k, e[k]);
    for (const k in e.props) add('p.' + k, e.props[k]);
    new Image().src = endpoint + '/i?' + p;
  };

  const flush = () => {
    clearTimeout(timer);
    timer = 0;
    if (!queue.length) return;
    const batch = queue.splice(0), url = endpoint + '/batch', body = new Blob(['[' + batch + ']'], { type: 'text/plain' });
    try { if (nav.sendBeacon(url, body)) return; } catch (e) {}
    try {
      return void w.fetch(url, {
        method: 'POST', body, keepalive: true, mode: 'no-cors', // the answer is never read
        credentials: on('credentials') ? 'include' : 'omit'
      }).catch(() => {});
    } catch (e) {}
    batch.forEach(pixel);
  };

  const track = (name, props) => {
    if (dnt || !name) return;
    queue.push(JSON.stringify({ // now: later changes to props don't leak in
      event: String(name), props: props && typeof props === 'object' ? props : undefined,
      ts: Date.now(), url: location.href, ref: d.referrer || undefined, title: d.title || undefined,
      sw: screen.width, sh: screen.height, lang: nav.language, sid: opt('site') || undefined,
      anonymous_id: aid, user_id: uid, gpc: gpc || undefined, v: VERSION
    }));
    if (queue.length > 9) flush();
    else timer = timer || setTimeout(api.flush, 5000);
  };

  const api = w.beacongate = {
    track: safe(track), flush: safe(flush), version: VERSION,
    identify: safe(id => { uid = id && !gpc ? String(id) : undefined; })
  };
  const run = safe(([m, ...a]) => api[m](...a));
  api.q = { push: (...c) => c.forEach(run) }; // works after load too
  [].forEach.call(stub && stub.q || [], run);
  if (String(opt('auto')) !== 'false') api.track('page_view');
  d.addEventListener('visibilitychange', () => d.visibilityState === 'hidden' && api.flush());
  w.addEventListener('pagehide', api.flush);
} catch (e) {} })();
