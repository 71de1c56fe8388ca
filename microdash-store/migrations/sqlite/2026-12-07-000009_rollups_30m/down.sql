DROP TABLE rollups_30m;
