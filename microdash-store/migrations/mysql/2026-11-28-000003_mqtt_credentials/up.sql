-- Mosquitto password-file hash of ingest tokens (computed when the token is created, the only
-- time its secret is known), so the broker can authenticate agents with their token.
ALTER TABLE api_tokens ADD COLUMN mqtt_password_hash VARCHAR(160) CHARACTER SET ascii COLLATE ascii_bin NULL;
