//! Table definitions shared by both backends. Portable types only: TEXT ids, UTC `Timestamp`s,
//! `Integer`/`BigInt`, `Bool`; no `Uuid`, no `Timestamptz` (see docs/database.md).

diesel::table! {
    sites (code) {
        code -> Text,
        name -> Text,
        kind -> Text,
        operating_rooms -> Integer,
        status -> Text,
        programme -> Nullable<Text>,
        reopened_at -> Nullable<Timestamp>,
        reopening_rank -> Nullable<Integer>,
        created_at -> Timestamp,
        operating_rooms_open -> Nullable<Integer>,
        session_minutes -> Integer,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    site_capacity_days (site_code, day) {
        site_code -> Text,
        day -> Date,
        rooms_open -> Integer,
        session_minutes -> Integer,
    }
}

diesel::table! {
    operation_durations (service_code, label) {
        service_code -> Text,
        label -> Text,
        minutes -> Integer,
    }
}

diesel::table! {
    services (code) {
        code -> Text,
        name -> Text,
        site_code -> Text,
        secretariat_email -> Nullable<Text>,
        secretariat_phone -> Nullable<Text>,
        created_at -> Timestamp,
        consultation_slots -> Integer,
        operation_minutes -> Integer,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        name -> Text,
        role -> Text,
        token_hash -> Nullable<Text>,
        created_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
        expires_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        extension -> Nullable<Text>,
    }
}

diesel::table! {
    pbx_tokens (id) {
        id -> Text,
        name -> Text,
        token_hash -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    phone_calls (id) {
        id -> Text,
        pbx_id -> Text,
        pbx_call_id -> Text,
        direction -> Text,
        from_number -> Text,
        to_number -> Text,
        queue -> Nullable<Text>,
        started_at -> Timestamp,
        answered_at -> Nullable<Timestamp>,
        ended_at -> Nullable<Timestamp>,
        cause -> Nullable<Text>,
        answered_by -> Nullable<Text>,
        answering_number -> Nullable<Text>,
        call_id -> Nullable<Text>,
        callback_id -> Nullable<Text>,
        answerers -> Text,
    }
}

diesel::table! {
    callbacks (id) {
        id -> Text,
        phone -> Text,
        patient_id -> Nullable<Text>,
        source -> Text,
        due_at -> Timestamp,
        created_at -> Timestamp,
        claimed_by -> Nullable<Text>,
        claimed_at -> Nullable<Timestamp>,
        attempts -> Integer,
        status -> Text,
        done_at -> Nullable<Timestamp>,
        reached_at -> Nullable<Timestamp>,
        missed_at -> Nullable<Timestamp>,
        call_id -> Nullable<Text>,
    }
}

diesel::table! {
    callback_attempts (id) {
        id -> Text,
        callback_id -> Text,
        agent -> Nullable<Text>,
        outcome -> Text,
        note -> Nullable<Text>,
        at -> Timestamp,
    }
}

diesel::table! {
    web_sessions (id) {
        id -> Text,
        user_id -> Text,
        csrf -> Text,
        language -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        last_seen_at -> Timestamp,
    }
}

diesel::table! {
    user_services (user_id, service_code) {
        user_id -> Text,
        service_code -> Text,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        at -> Timestamp,
        actor_id -> Nullable<Text>,
        actor_name -> Nullable<Text>,
        action -> Text,
        target -> Nullable<Text>,
        details -> Text,
        request_id -> Nullable<Text>,
        address -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        occurrences -> Integer,
        aggregate_key -> Nullable<Text>,
    }
}

diesel::table! {
    patients (id) {
        id -> Text,
        national_number -> Nullable<Text>,
        last_name -> Text,
        first_name -> Text,
        birth_date -> Date,
        phone -> Nullable<Text>,
        email -> Nullable<Text>,
        language -> Text,
        email_consent -> Bool,
        last_name_key -> Text,
        first_name_key -> Text,
        import_id -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    incidents (id) {
        id -> Text,
        title -> Text,
        started_at -> Timestamp,
        postpone_until -> Timestamp,
        created_at -> Timestamp,
        created_by -> Nullable<Text>,
    }
}

diesel::table! {
    incident_sites (incident_id, site_code) {
        incident_id -> Text,
        site_code -> Text,
    }
}

diesel::table! {
    appointments (id) {
        id -> Text,
        patient_id -> Text,
        site_code -> Text,
        service_code -> Text,
        kind -> Text,
        label -> Text,
        original_scheduled_at -> Timestamp,
        scheduled_at -> Timestamp,
        priority -> Integer,
        urgent -> Bool,
        essential -> Bool,
        status -> Text,
        incident_id -> Nullable<Text>,
        postponed_at -> Nullable<Timestamp>,
        import_id -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        reached_at -> Nullable<Timestamp>,
        attempts -> Integer,
        last_outcome -> Nullable<Text>,
        last_attempt_at -> Nullable<Timestamp>,
        proposed_at -> Nullable<Date>,
        patient_request -> Nullable<Text>,
    }
}

diesel::table! {
    appointment_events (id) {
        id -> BigInt,
        appointment_id -> Text,
        at -> Timestamp,
        from_status -> Text,
        to_status -> Text,
        scheduled_at -> Nullable<Timestamp>,
        reason -> Nullable<Text>,
        note -> Nullable<Text>,
        actor_id -> Nullable<Text>,
    }
}

diesel::table! {
    calls (id) {
        id -> Text,
        received_at -> Timestamp,
        caller_phone -> Nullable<Text>,
        patient_id -> Nullable<Text>,
        appointment_id -> Nullable<Text>,
        reason -> Text,
        outcome -> Text,
        duration_seconds -> Nullable<Integer>,
        notes -> Nullable<Text>,
        callback_requested -> Bool,
        agent_id -> Nullable<Text>,
        idempotency_key -> Nullable<Text>,
        request_hash -> Nullable<Text>,
        import_id -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    contact_attempts (id) {
        id -> Text,
        appointment_id -> Text,
        at -> Timestamp,
        channel -> Text,
        outcome -> Text,
        note -> Nullable<Text>,
        actor_id -> Nullable<Text>,
        answer -> Nullable<Text>,
    }
}

diesel::table! {
    answer_links (id) {
        id -> Text,
        notification_id -> Text,
        appointment_id -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        proposed_for -> Nullable<Timestamp>,
        used_at -> Nullable<Timestamp>,
        answer -> Nullable<Text>,
        token_hash -> Nullable<Text>,
    }
}

diesel::table! {
    notifications (id) {
        id -> Text,
        patient_id -> Text,
        appointment_id -> Nullable<Text>,
        template -> Text,
        language -> Text,
        to_address -> Text,
        status -> Text,
        attempts -> Integer,
        last_error -> Nullable<Text>,
        next_attempt_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        dedup_key -> Text,
        site_code -> Nullable<Text>,
        scheduled_for -> Nullable<Timestamp>,
        claimed_by -> Nullable<Text>,
        claimed_until -> Nullable<Timestamp>,
    }
}

diesel::table! {
    call_hours (hour, reason, outcome) {
        hour -> Timestamp,
        reason -> Text,
        outcome -> Text,
        calls -> BigInt,
        duration_sum -> BigInt,
        durations -> BigInt,
    }
}

diesel::table! {
    call_centre (id) {
        id -> Integer,
        status -> Text,
        changed_at -> Timestamp,
        changed_by -> Nullable<Text>,
    }
}

diesel::joinable!(services -> sites (site_code));
diesel::joinable!(phone_calls -> pbx_tokens (pbx_id));
diesel::joinable!(callback_attempts -> callbacks (callback_id));
diesel::joinable!(notifications -> patients (patient_id));
diesel::joinable!(calls -> patients (patient_id));
diesel::joinable!(contact_attempts -> appointments (appointment_id));
diesel::table! {
    disclosures (account_id, hour, patient_id) {
        account_id -> Text,
        hour -> Timestamp,
        patient_id -> Text,
    }
}

diesel::table! {
    disclosure_counts (account_id, hour) {
        account_id -> Text,
        hour -> Timestamp,
        shown -> Integer,
    }
}

diesel::table! {
    fhir_exports (id) {
        id -> Text,
        owner_id -> Text,
        types -> Text,
        since -> Nullable<Timestamp>,
        request -> Text,
        status -> Text,
        created_at -> Timestamp,
        heartbeat_at -> Timestamp,
        progress -> Text,
        transaction_time -> Nullable<Timestamp>,
        finished_at -> Nullable<Timestamp>,
        expires_at -> Timestamp,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    fhir_export_files (export_id, seq) {
        export_id -> Text,
        seq -> Integer,
        resource_type -> Text,
        resources -> Integer,
        body_lz4 -> Binary,
    }
}

diesel::table! {
    fhir_identifiers (resource_type, system, value) {
        resource_type -> Text,
        system -> Text,
        value -> Text,
        resource_id -> Text,
    }
}

diesel::joinable!(fhir_export_files -> fhir_exports (export_id));
diesel::joinable!(answer_links -> appointments (appointment_id));
diesel::joinable!(answer_links -> notifications (notification_id));
diesel::joinable!(calls -> appointments (appointment_id));
diesel::joinable!(appointments -> patients (patient_id));
diesel::joinable!(appointments -> sites (site_code));
diesel::joinable!(appointments -> services (service_code));
diesel::joinable!(appointments -> incidents (incident_id));
diesel::joinable!(appointment_events -> appointments (appointment_id));
diesel::joinable!(incident_sites -> incidents (incident_id));
diesel::joinable!(incident_sites -> sites (site_code));
diesel::joinable!(user_services -> users (user_id));
diesel::joinable!(web_sessions -> users (user_id));
diesel::joinable!(operation_durations -> services (service_code));
diesel::joinable!(site_capacity_days -> sites (site_code));
diesel::joinable!(user_services -> services (service_code));

diesel::allow_tables_to_appear_in_same_query!(
    sites,
    services,
    users,
    user_services,
    web_sessions,
    site_capacity_days,
    operation_durations,
    audit_log,
    patients,
    incidents,
    incident_sites,
    appointments,
    appointment_events,
    calls,
    call_hours,
    contact_attempts,
    notifications,
    call_centre,
    answer_links,
    disclosures,
    disclosure_counts,
    pbx_tokens,
    phone_calls,
    callbacks,
    callback_attempts,
    fhir_exports,
    fhir_export_files,
    fhir_identifiers,
);
