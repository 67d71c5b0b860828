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
    }
}

diesel::joinable!(services -> sites (site_code));
diesel::joinable!(user_services -> users (user_id));
diesel::joinable!(user_services -> services (service_code));

diesel::allow_tables_to_appear_in_same_query!(sites, services, users, user_services, audit_log);
