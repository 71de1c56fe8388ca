// Starts the app. A file of its own rather than an inline script, so the dashboard's
// Content-Security-Policy can forbid inline scripts altogether. What the first screen shows
// is already being asked for (prefetch.js).
import init from './microdash_web.js';

init();
