DROP TABLE dead_letters;
DROP TABLE points;
DROP TABLE series;
DROP TABLE agents;
DROP TABLE api_tokens;
DROP TABLE tenants;
