//! Class lists shared by every screen, so controls look and behave alike. Borders are
//! slate-500 (3.7:1 against the cards, WCAG 1.4.11 asks 3:1), placeholders slate-400 (5.6:1),
//! every control shows a focus outline, and on phones (below `sm`) every target is at least
//! 44 px square. Buttons are `relative`, so the screen-reader-only words inside them stay
//! inside their box (else they overlap the next target).

/// The keyboard focus outline.
pub const FOCUS: &str =
    "focus-visible:outline focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-sky-300";
/// Text inputs and selects.
pub const INPUT: &str = "w-full min-h-11 rounded-lg bg-slate-800 px-3 py-2 text-slate-100 ring-1 ring-slate-500 placeholder:text-slate-400 [color-scheme:dark] focus-visible:outline focus-visible:outline-2 focus-visible:outline-sky-400 aria-[invalid=true]:ring-2 aria-[invalid=true]:ring-rose-400";
/// The main action of a form.
pub const PRIMARY: &str = "inline-flex min-h-11 items-center justify-center rounded-lg bg-sky-500 px-4 py-2 font-medium text-slate-950 hover:bg-sky-400 focus-visible:outline focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-sky-300 disabled:opacity-60";
/// Other actions (buttons and links that look like them).
pub const SECONDARY: &str = "relative inline-flex min-h-8 items-center justify-center rounded-lg px-3 py-1.5 text-sm text-slate-200 ring-1 ring-slate-500 hover:bg-slate-800 hover:ring-slate-400 focus-visible:outline focus-visible:outline-2 focus-visible:outline-sky-400 disabled:opacity-60 max-sm:min-h-11 max-sm:min-w-11";
/// Destructive actions.
pub const DANGER: &str = "relative inline-flex min-h-8 items-center justify-center rounded-lg px-3 py-1.5 text-sm text-rose-200 ring-1 ring-rose-400/70 hover:bg-rose-950 focus-visible:outline focus-visible:outline-2 focus-visible:outline-rose-300 max-sm:min-h-11 max-sm:min-w-11";
/// Small pill buttons on cards (at least 24 px, WCAG 2.2's minimum; 44 px on phones).
pub const CHIP: &str = "relative inline-flex min-h-7 min-w-7 items-center justify-center gap-1 rounded-full px-2.5 py-1 text-xs text-slate-200 ring-1 ring-slate-500 hover:bg-slate-800 hover:ring-slate-400 focus-visible:outline focus-visible:outline-2 focus-visible:outline-sky-400 aria-pressed:bg-slate-700 max-sm:min-h-11 max-sm:min-w-11 max-sm:px-3";
/// A card on the page.
pub const CARD: &str = "rounded-2xl bg-slate-900/70 ring-1 ring-white/10";
/// A page's heading (the focus moves to it when the page changes).
pub const H1: &str = "text-xl font-semibold tracking-tight text-slate-50 outline-none";
