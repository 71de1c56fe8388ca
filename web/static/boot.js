// Starts the app. A file of its own rather than an inline script, so the dashboard's
// Content-Security-Policy can forbid inline scripts altogether. What the overview shows first
// is already being asked for (prefetch.js).
//
// The app's wasm is compiled at once (off the main thread) while the chart scripts after this
// one load and run, and the app starts once the page is parsed: every deferred script, uPlot
// and the chart bridge included, has run by then, so a chart never looks for them too early.
import init from './microdash_web.js';

const wasm = new URL('./microdash_web_bg.wasm', import.meta.url);
// A server that does not say `application/wasm` gets the plain path (init fetches it itself).
const compiled = WebAssembly.compileStreaming(fetch(wasm)).catch(() => wasm);
const parsed =
  document.readyState === 'loading'
    ? new Promise((resolve) => document.addEventListener('DOMContentLoaded', resolve, { once: true }))
    : Promise.resolve();
parsed.then(() => init({ module_or_path: compiled }));
