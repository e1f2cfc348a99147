// The tables of migrations/{postgres,sqlite}; the column types are the ones
// both backends share, so one schema serves both.

diesel::table! {
    rooms (name) {
        name -> Text,
        kind -> Text,
        visibility -> Text,
        max_users -> Nullable<Integer>,
        metadata -> Text,
        last_seq -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    messages (room, seq) {
        room -> Text,
        seq -> BigInt,
        message_id -> Text,
        user_id -> Text,
        content -> Text,
        thread_id -> Nullable<Text>,
        metadata -> Nullable<Text>,
        client_msg_id -> Nullable<Text>,
        created_at -> BigInt,
        edited_at -> Nullable<BigInt>,
        deleted_at -> Nullable<BigInt>,
        reply_to -> Nullable<Text>,
        kind -> Text,
        changed_at_seq -> Nullable<BigInt>,
    }
}

diesel::table! {
    room_members (id) {
        id -> BigInt,
        room -> Text,
        user_id -> Text,
        connection_id -> Text,
        node_id -> Text,
        joined_at -> BigInt,
        left_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    presence (user_id) {
        user_id -> Text,
        status -> Text,
        custom_status -> Nullable<Text>,
        node_id -> Text,
        last_seen -> BigInt,
    }
}

diesel::table! {
    connections (connection_id) {
        connection_id -> Text,
        user_id -> Text,
        node_id -> Text,
        remote_addr -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        connected_at -> BigInt,
        disconnected_at -> Nullable<BigInt>,
        last_activity -> BigInt,
        close_code -> Nullable<Integer>,
    }
}

diesel::table! {
    audit_events (id) {
        id -> BigInt,
        kind -> Text,
        user_id -> Nullable<Text>,
        connection_id -> Nullable<Text>,
        node_id -> Text,
        detail -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    notifications (notification_id) {
        notification_id -> Text,
        user_id -> Text,
        kind -> Text,
        title -> Text,
        body -> Text,
        data -> Text,
        created_at -> BigInt,
        delivered_at -> Nullable<BigInt>,
        read_at -> Nullable<BigInt>,
        priority -> Text,
        action_url -> Nullable<Text>,
        action_text -> Nullable<Text>,
        expires_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    revocations (revocation_id) {
        revocation_id -> Text,
        user_id -> Nullable<Text>,
        jti -> Nullable<Text>,
        issued_before -> Nullable<BigInt>,
        ban_until -> Nullable<BigInt>,
        expires_at -> BigInt,
        reason -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    managed_rooms (name) {
        name -> Text,
        kind -> Text,
        visibility -> Text,
        title -> Nullable<Text>,
        max_users -> Nullable<Integer>,
        rate_limit -> Nullable<Integer>,
        metadata -> Text,
        created_by -> Text,
        created_at -> BigInt,
        member_count -> Integer,
    }
}

diesel::table! {
    room_memberships (room, user_id) {
        room -> Text,
        user_id -> Text,
        role -> Text,
        muted -> Bool,
        joined_at -> BigInt,
        last_read_seq -> BigInt,
    }
}

diesel::table! {
    read_positions (room, user_id) {
        room -> Text,
        user_id -> Text,
        last_read_seq -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    announcements (announcement_id) {
        announcement_id -> Text,
        title -> Text,
        message -> Text,
        kind -> Text,
        target_roles -> Text,
        starts_at -> Nullable<BigInt>,
        ends_at -> Nullable<BigInt>,
        created_at -> BigInt,
        ended_at -> Nullable<BigInt>,
    }
}

diesel::joinable!(room_memberships -> managed_rooms (room));

diesel::allow_tables_to_appear_in_same_query!(
    rooms,
    messages,
    room_members,
    presence,
    connections,
    audit_events,
    notifications,
    revocations,
    managed_rooms,
    room_memberships,
    read_positions,
    announcements,
);
