//! One diesel schema for every backend: only BigInt, Double, Integer and Text columns, which
//! map the same way on SQLite and MariaDB.

diesel::table! {
    tenants (id) {
        id -> BigInt,
        slug -> Text,
        name -> Text,
        created_at_ms -> BigInt,
        retention_raw_hours -> Nullable<Integer>,
        retention_1m_days -> Nullable<Integer>,
        retention_5m_days -> Nullable<Integer>,
        max_ingest_metrics_per_s -> Nullable<BigInt>,
        max_series -> Nullable<BigInt>,
        raw_expired_before_ms -> Nullable<BigInt>,
        rollup_1m_expired_before_ms -> Nullable<BigInt>,
        rollup_5m_expired_before_ms -> Nullable<BigInt>,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> BigInt,
        tenant_id -> Nullable<BigInt>,
        name -> Text,
        prefix -> Text,
        token_hash -> Text,
        scopes -> Text,
        created_at_ms -> BigInt,
        last_used_at_ms -> Nullable<BigInt>,
        revoked_at_ms -> Nullable<BigInt>,
        mqtt_password_hash -> Nullable<Text>,
    }
}

diesel::table! {
    agents (tenant_id, agent_id) {
        tenant_id -> BigInt,
        agent_id -> Text,
        last_seen_ms -> BigInt,
    }
}

diesel::table! {
    series (id) {
        id -> BigInt,
        tenant_id -> BigInt,
        metric_name -> Text,
        agent_id -> Text,
        tags -> Text,
        series_hash -> Text,
    }
}

diesel::table! {
    points (id) {
        id -> BigInt,
        tenant_id -> BigInt,
        series_id -> BigInt,
        ts_ms -> BigInt,
        value -> Double,
        dedupe_id -> Nullable<Text>,
    }
}

diesel::table! {
    rollups_1m (series_id, bucket_ms) {
        series_id -> BigInt,
        bucket_ms -> BigInt,
        tenant_id -> BigInt,
        value_count -> BigInt,
        value_sum -> Double,
        value_min -> Double,
        value_max -> Double,
        last_ms -> BigInt,
        last_value -> Double,
    }
}

diesel::table! {
    rollups_5m (series_id, bucket_ms) {
        series_id -> BigInt,
        bucket_ms -> BigInt,
        tenant_id -> BigInt,
        value_count -> BigInt,
        value_sum -> Double,
        value_min -> Double,
        value_max -> Double,
        last_ms -> BigInt,
        last_value -> Double,
    }
}

diesel::table! {
    rollups_30m (series_id, bucket_ms) {
        series_id -> BigInt,
        bucket_ms -> BigInt,
        tenant_id -> BigInt,
        value_count -> BigInt,
        value_sum -> Double,
        value_min -> Double,
        value_max -> Double,
        last_ms -> BigInt,
        last_value -> Double,
    }
}

diesel::table! {
    dead_letters (id) {
        id -> BigInt,
        tenant_id -> BigInt,
        payload -> Text,
        error -> Text,
        attempts -> Integer,
        created_at_ms -> BigInt,
    }
}

diesel::table! {
    users (id) {
        id -> BigInt,
        username -> Text,
        password_hash -> Text,
        tenant_id -> Nullable<BigInt>,
        created_at_ms -> BigInt,
    }
}

diesel::table! {
    sessions (id) {
        id -> BigInt,
        token_hash -> Text,
        user_id -> BigInt,
        created_at_ms -> BigInt,
        expires_at_ms -> BigInt,
    }
}

diesel::table! {
    alert_rules (id) {
        id -> BigInt,
        tenant_id -> BigInt,
        name -> Text,
        definition -> Text,
        enabled -> Integer,
        created_at_ms -> BigInt,
        updated_at_ms -> BigInt,
    }
}

diesel::table! {
    alert_channels (id) {
        id -> BigInt,
        tenant_id -> BigInt,
        name -> Text,
        kind -> Text,
        definition -> Text,
        created_at_ms -> BigInt,
        updated_at_ms -> BigInt,
    }
}

diesel::table! {
    alert_instances (rule_id, instance_key) {
        rule_id -> BigInt,
        instance_key -> Text,
        tenant_id -> BigInt,
        agent_id -> Nullable<Text>,
        tags -> Text,
        state -> Text,
        severity -> Nullable<Text>,
        since_ms -> BigInt,
        value -> Nullable<Double>,
        state_json -> Text,
    }
}

diesel::table! {
    alert_events (id) {
        id -> BigInt,
        tenant_id -> BigInt,
        rule_id -> BigInt,
        rule_name -> Text,
        agent_id -> Nullable<Text>,
        tags -> Text,
        from_state -> Text,
        to_state -> Text,
        severity -> Nullable<Text>,
        value -> Nullable<Double>,
        at_ms -> BigInt,
    }
}

diesel::table! {
    alert_notifications (id) {
        id -> BigInt,
        tenant_id -> BigInt,
        channel_id -> BigInt,
        rule_id -> Nullable<BigInt>,
        agent_id -> Nullable<Text>,
        kind -> Text,
        payload -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_ms -> BigInt,
        last_error -> Nullable<Text>,
        http_status -> Nullable<Integer>,
        created_at_ms -> BigInt,
        sent_at_ms -> Nullable<BigInt>,
    }
}

diesel::table! {
    alert_rules_revision (id) {
        id -> Integer,
        revision -> BigInt,
    }
}

diesel::table! {
    leases (name) {
        name -> Text,
        holder -> Text,
        expires_at_ms -> BigInt,
    }
}

diesel::table! {
    sign_in_attempts (kind, subject) {
        kind -> Text,
        subject -> Text,
        window_start_ms -> BigInt,
        attempts -> Integer,
    }
}

diesel::table! {
    dashboard_layouts (tenant_id) {
        tenant_id -> BigInt,
        layout -> Text,
        updated_at_ms -> BigInt,
    }
}

diesel::joinable!(points -> series (series_id));
diesel::joinable!(rollups_1m -> series (series_id));
diesel::joinable!(rollups_5m -> series (series_id));
diesel::joinable!(rollups_30m -> series (series_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(alert_instances -> alert_rules (rule_id));
diesel::joinable!(alert_notifications -> alert_channels (channel_id));
diesel::allow_tables_to_appear_in_same_query!(
    tenants,
    api_tokens,
    agents,
    series,
    points,
    rollups_1m,
    rollups_5m,
    rollups_30m,
    dead_letters,
    users,
    sessions,
    alert_rules,
    alert_channels,
    alert_instances,
    alert_events,
    alert_notifications,
    alert_rules_revision,
    leases,
    dashboard_layouts
);
