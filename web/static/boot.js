// Starts the app. A file of its own rather than an inline script, so the dashboard's
// Content-Security-Policy can forbid inline scripts altogether.
import init from './microdash_web.js';
init();
