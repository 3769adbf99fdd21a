//! Table definitions shared by both backends (types both support: text ids and JSON, BIGINT
//! millisecond timestamps).

diesel::table! {
    tasks (id) {
        id -> Text,
        name -> Text,
        task_type -> Text,
        config -> Text,
        status -> Text,
        priority -> Integer,
        progress -> Double,
        stage -> Nullable<Text>,
        message -> Nullable<Text>,
        eta_secs -> Nullable<Double>,
        checkpoint -> Nullable<Text>,
        result -> Nullable<Text>,
        error -> Nullable<Text>,
        attempt -> Integer,
        max_retries -> Integer,
        retry_delay_secs -> Double,
        retry_backoff -> Text,
        timeout_secs -> Nullable<Double>,
        mutex_key -> Nullable<Text>,
        mutex_policy -> Text,
        depends_on -> Text,
        run_at -> Nullable<BigInt>,
        tags -> Text,
        batch_id -> Nullable<Text>,
        schedule_id -> Nullable<Text>,
        unit_id -> Nullable<Text>,
        source -> Text,
        retry_of -> Nullable<Text>,
        created_by -> Nullable<Text>,
        callback_url -> Nullable<Text>,
        version -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
        started_at -> Nullable<BigInt>,
        finished_at -> Nullable<BigInt>,
        unit_labels -> Text,
        held -> Bool,
        not_before -> Nullable<BigInt>,
        active_secs -> Double,
        resources -> Nullable<Text>,
    }
}

diesel::table! {
    task_history (id) {
        id -> BigInt,
        task_id -> Text,
        attempt -> Integer,
        from_status -> Nullable<Text>,
        to_status -> Text,
        at -> BigInt,
        by_whom -> Text,
        reason -> Nullable<Text>,
    }
}

diesel::table! {
    task_logs (id) {
        id -> BigInt,
        task_id -> Text,
        attempt -> Integer,
        level -> Text,
        message -> Text,
        at -> BigInt,
    }
}

diesel::table! {
    events (seq) {
        seq -> BigInt,
        kind -> Text,
        task_id -> Nullable<Text>,
        batch_id -> Nullable<Text>,
        task_type -> Nullable<Text>,
        body -> Text,
        at -> BigInt,
    }
}

diesel::table! {
    webhooks (id) {
        id -> Text,
        url -> Text,
        events -> Text,
        tasks -> Text,
        batches -> Text,
        types -> Text,
        secret -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Text,
        webhook_id -> Nullable<Text>,
        task_id -> Nullable<Text>,
        url -> Text,
        event_seq -> BigInt,
        event_kind -> Text,
        body -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Nullable<BigInt>,
        last_code -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(tasks, task_history, task_logs);

diesel::table! {
    batches (id) {
        id -> Text,
        name -> Text,
        description -> Nullable<Text>,
        status -> Text,
        priority -> Integer,
        mode -> Text,
        max_parallel -> Nullable<Integer>,
        on_failure -> Text,
        depends_on -> Text,
        callback_url -> Nullable<Text>,
        tags -> Text,
        created_by -> Nullable<Text>,
        task_count -> Integer,
        paused -> Bool,
        cancelled -> Bool,
        version -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
        started_at -> Nullable<BigInt>,
        finished_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    settings (key) {
        key -> Text,
        value -> Text,
        updated_at -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(tasks, batches);

diesel::table! {
    alerts (id) {
        id -> Text,
        fingerprint -> Text,
        level -> Text,
        alert_type -> Text,
        title -> Text,
        message -> Text,
        details -> Text,
        count -> BigInt,
        acknowledged -> Bool,
        acknowledged_by -> Nullable<Text>,
        acknowledged_at -> Nullable<BigInt>,
        created_at -> BigInt,
        last_seen_at -> BigInt,
        notified_at -> BigInt,
    }
}

diesel::table! {
    schedules (id) {
        id -> Text,
        name -> Text,
        trigger_kind -> Text,
        enabled -> Bool,
        tags -> Text,
        spec -> Text,
        last_slot -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    schedule_runs (id) {
        id -> Text,
        schedule_id -> Text,
        slot_at -> BigInt,
        manual -> Bool,
        status -> Text,
        reason -> Nullable<Text>,
        task_id -> Nullable<Text>,
        batch_id -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(schedules, schedule_runs);
diesel::allow_tables_to_appear_in_same_query!(schedule_runs, tasks);
diesel::allow_tables_to_appear_in_same_query!(schedule_runs, batches);

diesel::table! {
    units (id) {
        id -> Text,
        kind -> Text,
        unit_type -> Text,
        unit_name -> Text,
        endpoint -> Nullable<Text>,
        config -> Text,
        task_types -> Text,
        labels -> Text,
        capacity -> BigInt,
        status -> Text,
        draining -> Bool,
        last_heartbeat -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    system_logs (id) {
        id -> BigInt,
        level -> Text,
        component -> Text,
        message -> Text,
        at -> BigInt,
    }
}
