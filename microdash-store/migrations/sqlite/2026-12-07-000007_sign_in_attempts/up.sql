-- Sign-in attempts per username and per client address in the current window, counted
-- before the password is checked (so parallel guesses count too) and shared by every API
-- process. `kind` is 'user' or 'addr'; a row whose window has ended counts as zero.
CREATE TABLE sign_in_attempts (
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    window_start_ms BIGINT NOT NULL,
    attempts INTEGER NOT NULL,
    PRIMARY KEY (kind, subject)
);
CREATE INDEX sign_in_attempts_by_window ON sign_in_attempts (window_start_ms);
