// The requests the first screen needs, started as the page is parsed, so they run while the
// browser fetches and compiles the app (about 100 ms) instead of after it: the session, and on
// the overview the tenants and the user's own fleet, on a tenant's page its series, agents and
// layout. The app takes each answer once, by its exact URL, within PREFETCH_MS
// (`prefetched` in src/api.rs); anything it asks later goes to the server.
//
// A classic script that index.html runs before anything else, rather than part of boot.js: a
// module runs only once the page is parsed and its imports are loaded.
'use strict';

(() => {
  const PREFETCH_MS = 10_000;
  const prefetched = new Map();
  const prefetch = (url) => {
    const answer = fetch(url, { credentials: 'same-origin' });
    // Taken or not, a failure here is the app's to report when it asks.
    answer.catch(() => {});
    prefetched.set(url, answer);
    return answer;
  };
  const tenantQuery = (slug) => `?tenant=${encodeURIComponent(slug)}`;

  prefetch('/api/v1/session');
  const [path] = location.hash.replace(/^#/, '').split('?');
  const parts = path.split('/').filter(Boolean);
  if (parts.length === 0) {
    // A tenant's user sees one tenant, whose fleet needs no name, so it is asked for at once;
    // an admin's is refused (admins name the tenant), and the app asks per tenant.
    prefetch('/api/v1/tenants');
    prefetch('/api/v1/fleet');
  } else if (parts[0] === 't' && (parts.length === 2 || (parts.length === 4 && parts[2] === 'a'))) {
    for (const what of ['series', 'agents', 'layout']) prefetch(`/api/v1/${what}${tenantQuery(parts[1])}`);
  }
  window.__microdashPrefetched = prefetched;
  setTimeout(() => prefetched.clear(), PREFETCH_MS);
})();
