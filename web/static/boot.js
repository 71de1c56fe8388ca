// Starts the app. A file of its own rather than an inline script, so the dashboard's
// Content-Security-Policy can forbid inline scripts altogether.
//
// It first starts the requests the first screen needs, so they run while the browser
// fetches and compiles the app (about 100 ms) instead of after it: the session, and on the
// overview the tenants and then each tenant's fleet, on a tenant's page its series, agents and
// layout. The app takes each answer once, by its exact URL, within PREFETCH_MS (`prefetched`
// in src/api.rs); anything it asks later goes to the server.
import init from './microdash_web.js';

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
  // The app gets the tenants only once their fleets are asked for here, or it would ask
  // for them itself too.
  const tenants = prefetch('/api/v1/tenants').then(async (answer) => {
    if (answer.ok) {
      const list = await answer.clone().json().catch(() => []);
      list.forEach((tenant) => prefetch(`/api/v1/fleet${tenantQuery(tenant.slug)}`));
    }
    return answer;
  });
  tenants.catch(() => {});
  prefetched.set('/api/v1/tenants', tenants);
} else if (parts[0] === 't' && (parts.length === 2 || (parts.length === 4 && parts[2] === 'a'))) {
  for (const what of ['series', 'agents', 'layout']) prefetch(`/api/v1/${what}${tenantQuery(parts[1])}`);
}
window.__microdashPrefetched = prefetched;
setTimeout(() => prefetched.clear(), PREFETCH_MS);

init();
