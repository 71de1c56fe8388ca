-- Sign-in attempts per username and per client address in the current window, counted
-- before the password is checked (so parallel guesses count too) and shared by every API
-- process. `kind` is 'user' or 'addr'; a row whose window has ended counts as zero.
CREATE TABLE sign_in_attempts (
    kind VARCHAR(8) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    subject VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    window_start_ms BIGINT NOT NULL,
    attempts INT NOT NULL,
    PRIMARY KEY (kind, subject),
    INDEX sign_in_attempts_by_window (window_start_ms)
) ENGINE = InnoDB;
