// The requests the overview's rows wait for (the tenants and the user's own fleet), started as
// the page is parsed, so they run while the browser fetches and compiles the app (about
// 100 ms) instead of after it. The app takes each answer once, by its exact URL, within
// PREFETCH_MS (`prefetched` in src/api.rs); anything it asks later goes to the server.
//
// A classic script that index.html runs before anything else, rather than part of boot.js: a
// module runs only once the page is parsed and its imports are loaded.
'use strict';

(() => {
  const PREFETCH_MS = 10_000;
  const prefetched = new Map();
  // When each answer arrived (ms since the epoch): an answer that waited for the app is as
  // old as that, which matters to one carrying the server's clock (the fleet's).
  const arrived = new Map();
  const prefetch = (url) => {
    const answer = fetch(url, { credentials: 'same-origin' }).then((response) => {
      arrived.set(url, Date.now());
      return response;
    });
    // Taken or not, a failure here is the app's to report when it asks.
    answer.catch(() => {});
    prefetched.set(url, answer);
    return answer;
  };

  // Only the overview's: its rows wait on two answers in a row (the tenants, then each
  // tenant's fleet). A tenant page's first answers come as soon as the app asks; asked
  // earlier they only took connections the app's own files were waiting for (a browser
  // opens six per server), and its first chart came later.
  const [path] = location.hash.replace(/^#/, '').split('?');
  if (path.split('/').filter(Boolean).length === 0) {
    // A tenant's user sees one tenant, whose fleet needs no name, so it is asked for at once;
    // an admin's is refused (admins name the tenant), and the app asks per tenant.
    prefetch('/api/v1/tenants');
    prefetch('/api/v1/fleet');
  }
  window.__microdashPrefetched = prefetched;
  window.__microdashPrefetchedAt = arrived;
  setTimeout(() => prefetched.clear(), PREFETCH_MS);
})();
