ALTER TABLE api_tokens DROP COLUMN mqtt_password_hash;
