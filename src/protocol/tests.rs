//! The decoder and the events against the contract, by example and by
//! property.

use super::*;

const LIMITS: DecodeLimits = DecodeLimits {
    max_message_chars: 10,
    max_metadata_bytes: 20,
};

fn ok(text: &str) -> Request {
    decode(text, &LIMITS).unwrap()
}
fn err(text: &str) -> Rejected {
    decode(text, &LIMITS).unwrap_err()
}

#[test]
fn decodes_every_command() {
    let r = ok(r#"{"type":"room:join","room":"a:b","since":4,"id":1}"#);
    assert_eq!(r.id, Some(CommandId::number(1)));
    assert_eq!(
        r.command,
        Command::Join {
            room: "a:b".into(),
            since: Some(4)
        }
    );
    assert!(matches!(
        ok(r#"{"type":"room:leave","room":"x"}"#).command,
        Command::Leave { .. }
    ));
    let r = ok(
        r#"{"type":"message:send","room":"x","content":"hi","metadata":{"a":1},"clientMsgId":"c1","threadId":"t","id":"s"}"#,
    );
    assert_eq!(r.id, Some(CommandId::Text("s".into())));
    match r.command {
        Command::Send {
            metadata,
            client_msg_id,
            thread_id,
            ..
        } => {
            assert_eq!(metadata.unwrap().get(), r#"{"a":1}"#);
            assert_eq!(client_msg_id.as_deref(), Some("c1"));
            assert_eq!(thread_id.as_deref(), Some("t"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        ok(r#"{"type":"typing:stop","room":"x"}"#).command,
        Command::Typing {
            room: "x".into(),
            thread_id: None,
            active: false
        }
    );
    let r = ok(
        r#"{"type":"presence:update","status":"away","customStatus":{"text":"lunch","emoji":"x"}}"#,
    );
    assert!(matches!(
        r.command,
        Command::PresenceUpdate {
            status: Status::Away,
            custom_status: Some(_)
        }
    ));
    assert_eq!(
        ok(r#"{"type":"presence:get","room":"x"}"#).command,
        Command::PresenceGet {
            room: "x".into(),
            after: None,
            limit: PRESENCE_DEFAULT_LIMIT
        }
    );
    assert_eq!(
        ok(r#"{"type":"presence:get","room":"x","after":"bob","limit":1000}"#).command,
        Command::PresenceGet {
            room: "x".into(),
            after: Some("bob".into()),
            limit: 1000
        }
    );
    for bad in [r#""limit":0"#, r#""limit":1001"#, r#""after":"""#] {
        let e = err(&format!(r#"{{"type":"presence:get","room":"x",{bad}}}"#));
        assert_eq!(e.error.code, ErrorCode::BadRequest, "{bad}");
    }
    assert_eq!(
        ok(r#"{"type":"history:get","room":"x","before":9}"#).command,
        Command::HistoryGet {
            room: "x".into(),
            before: Some(9),
            limit: HISTORY_DEFAULT_LIMIT,
            reply_to: None,
        }
    );
    assert!(matches!(
        ok(r#"{"type":"notification:read","notificationId":"n"}"#).command,
        Command::NotificationRead { .. }
    ));
    assert_eq!(
        ok(r#"{"type":"notification:read","notificationIds":["a","b"]}"#).command,
        Command::NotificationRead {
            read: NotificationsToRead::Some(vec!["a".into(), "b".into()])
        }
    );
    assert_eq!(
        ok(r#"{"type":"notification:read","all":true}"#).command,
        Command::NotificationRead {
            read: NotificationsToRead::All
        }
    );
    for bad in [
        r#"{"type":"notification:read"}"#,
        r#"{"type":"notification:read","all":false}"#,
        r#"{"type":"notification:read","notificationIds":[]}"#,
        r#"{"type":"notification:read","notificationId":"a","all":true}"#,
    ] {
        assert_eq!(err(bad).error.code, ErrorCode::BadRequest, "{bad}");
    }
    assert!(matches!(
        ok(r#"{"type":"auth:refresh","token":"t"}"#).command,
        Command::AuthRefresh { .. }
    ));
    assert_eq!(ok(r#"{"type":"ping"}"#).command, Command::Ping);
}

#[test]
fn ids_are_echoed_exactly_as_sent() {
    let exact = [
        "123456789012345678901234567890",
        "1e2",
        "-0.50",
        "7",
        r#""a\"b""#,
    ];
    for id in exact {
        let r = ok(&format!(r#"{{"type":"ping","id":{id}}}"#));
        assert_eq!(serde_json::to_string(&r.id).unwrap(), id);
        // also when the rest of the frame is refused
        let e = err(&format!(r#"{{"type":"room:join","room":5,"id":{id}}}"#));
        assert_eq!(serde_json::to_string(&e.id).unwrap(), id);
    }
    for bad in ["{}", "[1]", "true"] {
        let e = err(&format!(r#"{{"type":"ping","id":{bad}}}"#));
        assert_eq!(e.error.code, ErrorCode::BadRequest);
        assert!(e
            .error
            .message
            .contains("`id` must be a number or a string"));
    }
}

#[test]
fn errors_keep_the_id_and_name_the_problem() {
    let e = err("{not json");
    assert_eq!(e.error.code, ErrorCode::BadRequest);
    assert_eq!(e.id, None);
    let e = err(r#"{"id":7,"type":"room:join"}"#);
    assert_eq!(e.id, Some(CommandId::number(7)));
    assert_eq!(e.error.message, "missing field `room`");
    let e = err(r#"{"id":"q","type":"room:join","room":5}"#);
    assert_eq!(e.id, Some(CommandId::Text("q".into())));
    assert_eq!(e.error.code, ErrorCode::BadRequest);
    let e = err(r#"{"id":1,"type":"dance"}"#);
    assert_eq!(e.error.code, ErrorCode::UnknownType);
    assert_eq!(err(r#"{"room":"x"}"#).error.message, "missing field `type`");
    assert_eq!(
        err(r#"{"type":"presence:update","status":"dancing"}"#)
            .error
            .code,
        ErrorCode::BadRequest
    );
    assert_eq!(err(r#"[1,2]"#).error.code, ErrorCode::BadRequest);
    let nul = err(r#"{"type":"message:send","room":"x","content":"a\u0000b"}"#);
    assert_eq!(
        nul.error.message,
        "`content` must not contain NUL characters"
    );
    let array = r#"[null,"ping",null,null,null,null,null,null,null,null,null,null,null,null]"#;
    assert_eq!(err(array).error.message, "a frame must be one JSON object");
}

#[test]
fn limits_are_enforced() {
    let e = err(r#"{"type":"message:send","room":"x","content":"01234567890"}"#);
    assert_eq!(e.error.code, ErrorCode::TooLarge);
    // Characters, not bytes: ten two-byte characters fit.
    ok(r#"{"type":"message:send","room":"x","content":"éééééééééé"}"#);
    let e = err(
        r#"{"type":"message:send","room":"x","content":"a","metadata":{"k":"0123456789012345"}}"#,
    );
    assert_eq!(e.error.code, ErrorCode::TooLarge);
    let e = err(r#"{"type":"message:send","room":"x","content":"a","metadata":[1]}"#);
    assert_eq!(e.error.code, ErrorCode::BadRequest);
    assert_eq!(
        err(r#"{"type":"history:get","room":"x","limit":101}"#)
            .error
            .code,
        ErrorCode::BadRequest
    );
}

#[test]
fn deep_nesting_is_refused_before_parsing() {
    let deep = format!(
        r#"{{"type":"ping","x":{}{}}}"#,
        "[".repeat(40),
        "]".repeat(40)
    );
    assert_eq!(
        err(&deep).error.message,
        "JSON nested deeper than 32 levels"
    );
    let fine = format!(
        r#"{{"type":"ping","x":{}{}}}"#,
        "[".repeat(30),
        "]".repeat(30)
    );
    ok(&fine);
    // Brackets inside strings do not count.
    let quoted = format!(
        r#"{{"type":"message:send","room":"x","content":"{}"}}"#,
        "[\\\"".repeat(3)
    );
    ok(&quoted);
}

#[test]
fn room_names_are_checked() {
    for good in ["lobby", "team:42:general", "a.b-c_d@e", &"r".repeat(128)] {
        assert!(validate_room(good).is_ok(), "{good}");
    }
    for bad in ["", "team:*", "a b", "x?", "ü", &"r".repeat(129)] {
        assert!(validate_room(bad).is_err(), "{bad}");
    }
}

#[test]
fn events_serialise_to_the_contract() {
    let id = CommandId::number(3);
    let reply = encode(&Event::Reply {
        id: &id,
        ok: true,
        data: serde_json::json!({}),
    });
    assert_eq!(&*reply, r#"{"type":"reply","id":3,"ok":true,"data":{}}"#);
    let e = CommandError::rate_limited(250);
    let text = encode(&Event::Error {
        id: None,
        error: &e,
    });
    assert_eq!(
        &*text,
        r#"{"type":"error","code":"RATE_LIMITED","message":"rate limit exceeded, slow down","retryAfterMs":250}"#
    );
    let users: Vec<Arc<str>> = vec!["a".into()];
    let t = encode(&Event::Typing {
        room: "r",
        thread_id: None,
        users: &users,
    });
    assert_eq!(
        &*t,
        r#"{"type":"typing:event","room":"r","threadId":null,"users":["a"]}"#
    );
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    const LIMITS: DecodeLimits = DecodeLimits {
        max_message_chars: 100,
        max_metadata_bytes: 200,
    };

    proptest! {
        /// Whatever arrives, decoding answers (a command or an error) and
        /// never panics.
        #[test]
        fn decoding_never_panics(text in ".{0,300}") {
            let _ = decode(&text, &LIMITS);
        }

        /// The same for text that looks like JSON commands.
        #[test]
        fn json_shaped_frames_never_panic(
            kind in prop::sample::select(vec!["room:join", "message:send", "typing:start", "presence:update", "history:get", "ping", "x"]),
            room in "[a-z:*?]{0,20}",
            extra in "[\\[\\]{}\",:0-9a-z\\\\]{0,80}",
        ) {
            let text = format!(r#"{{"type":"{kind}","room":"{room}","id":1,"x":{extra}}}"#);
            let _ = decode(&text, &LIMITS);
        }

        /// A well-formed join keeps its id and room.
        #[test]
        fn valid_joins_round_trip(room in "[A-Za-z0-9_.:@-]{1,128}", id in any::<u32>(), since in any::<Option<u32>>()) {
            let mut frame = serde_json::json!({"type": "room:join", "room": room, "id": id});
            if let Some(s) = since {
                frame["since"] = serde_json::json!(s);
            }
            let request = decode(&frame.to_string(), &LIMITS).unwrap();
            prop_assert_eq!(request.id, Some(CommandId::number(id)));
            prop_assert_eq!(request.command, Command::Join { room, since: since.map(u64::from) });
        }

        /// Room names with anything outside the allowed set are refused.
        #[test]
        fn room_names_outside_the_alphabet_are_refused(prefix in "[a-z]{0,5}", bad in "[*?\\[\\] /#\\u{0}-\\u{1f}é]", suffix in "[a-z]{0,5}") {
            let name = format!("{prefix}{bad}{suffix}");
            prop_assert!(validate_room(&name).is_err());
        }

        /// Content length is counted in characters, and the limit holds.
        #[test]
        fn content_limit_holds(content in "\\PC{0,150}") {
            let frame = serde_json::json!({"type": "message:send", "room": "r", "content": content});
            let result = decode(&frame.to_string(), &LIMITS);
            let chars = content.chars().count();
            match result {
                Ok(_) => prop_assert!(chars <= 100),
                Err(r) => prop_assert!(chars > 100 || content.contains('\0'), "{:?}", r),
            }
        }
    }
}

#[test]
fn decodes_the_room_commands() {
    let r = ok(
        r#"{"type":"room:create","room":"t:1","roomType":"broadcast","visibility":"private","title":"T","maxUsers":5,"members":["b","c"],"metadata":{"k":1}}"#,
    );
    let Command::Rooms(RoomCommand::Create(new)) = r.command else {
        panic!("{:?}", r.command)
    };
    assert_eq!(
        (new.kind, new.visibility),
        (RoomType::Broadcast, Visibility::Private)
    );
    assert_eq!((new.title.as_deref(), new.max_users), (Some("T"), Some(5)));
    assert_eq!(
        new.members,
        [("b".into(), Role::Member), ("c".into(), Role::Member)]
    );
    assert_eq!(new.metadata, serde_json::json!({"k": 1}));

    // null clears, absent keeps
    let r = ok(r#"{"type":"room:update","room":"t:1","title":null,"rateLimit":3}"#);
    let Command::Rooms(RoomCommand::Update { patch, .. }) = r.command else {
        panic!()
    };
    assert_eq!(patch.title, Some(None));
    assert_eq!(patch.rate_limit, Some(Some(3)));
    assert_eq!(patch.max_users, None);

    let r = ok(r#"{"type":"member:update","room":"t:1","userId":"b","muted":true}"#);
    assert_eq!(
        r.command,
        Command::Rooms(RoomCommand::MemberUpdate {
            room: "t:1".into(),
            user_id: "b".into(),
            role: None,
            muted: Some(true),
        })
    );
    let r = ok(r#"{"type":"member:list","room":"t:1"}"#);
    assert!(matches!(
        r.command,
        Command::Rooms(RoomCommand::MemberList { limit: 100, .. })
    ));
    assert!(matches!(
        ok(r#"{"type":"room:list"}"#).command,
        Command::Rooms(RoomCommand::List)
    ));
    assert!(matches!(
        ok(r#"{"type":"member:add","room":"t:1","userId":"b"}"#).command,
        Command::Rooms(RoomCommand::MemberAdd {
            role: Role::Member,
            ..
        })
    ));

    for (text, code) in [
        (
            r#"{"type":"room:create","room":"t","visibility":"public","id":1}"#,
            ErrorCode::BadRequest,
        ),
        (
            r#"{"type":"room:create","room":"t","roomType":"x","visibility":"public"}"#,
            ErrorCode::BadRequest,
        ),
        (
            r#"{"type":"room:update","room":"t"}"#,
            ErrorCode::BadRequest,
        ),
        (
            r#"{"type":"member:list","room":"t","limit":201}"#,
            ErrorCode::BadRequest,
        ),
        (
            r#"{"type":"member:add","room":"t","userId":""}"#,
            ErrorCode::BadRequest,
        ),
        (r#"{"type":"dm:open"}"#, ErrorCode::BadRequest),
        (
            r#"{"type":"room:create","room":"t","roomType":"group","visibility":"public","metadata":{"a":"0123456789abcdef"}}"#,
            ErrorCode::TooLarge,
        ),
    ] {
        assert_eq!(err(text).error.code, code, "{text}");
    }
    assert_eq!(
        err(r#"{"type":"room:create","room":"t","visibility":"public","id":1}"#).id,
        Some(CommandId::number(1))
    );
}

#[test]
fn room_events_keep_the_event_type_on_top() {
    let room = RoomObject {
        room: "r".into(),
        kind: RoomType::Group,
        visibility: Visibility::Public,
        title: None,
        max_users: None,
        rate_limit: None,
        metadata: serde_json::json!({}),
        created_by: "o".into(),
        created_at: "t".into(),
        member_count: 1,
    };
    let v: serde_json::Value = serde_json::from_str(&encode(&Event::RoomUpdated {
        room: "r",
        data: &room,
    }))
    .unwrap();
    assert_eq!(
        (v["type"].as_str(), v["data"]["type"].as_str()),
        (Some("room:updated"), Some("group"))
    );
    let member = MemberObject {
        user_id: "u".into(),
        role: Role::Moderator,
        muted: true,
        joined_at: "t".into(),
        last_read_seq: 0,
    };
    let text = encode(&Event::MemberAdded {
        room: "r",
        member: &member,
    });
    assert_eq!(
        &*text,
        r#"{"type":"member:added","room":"r","userId":"u","role":"moderator","muted":true,"joinedAt":"t","lastReadSeq":0}"#
    );
    let text = encode(&Event::MemberRemoved {
        room: "r",
        user_id: "u",
        by: "o",
    });
    assert_eq!(
        &*text,
        r#"{"type":"member:removed","room":"r","userId":"u","by":"o"}"#
    );
}

#[test]
fn lifecycle_commands_decode() {
    let r =
        ok(r#"{"type":"message:send","room":"x","content":"hi","replyTo":"m1","kind":"image"}"#);
    match r.command {
        Command::Send { reply_to, kind, .. } => {
            assert_eq!(reply_to.as_deref(), Some("m1"));
            assert_eq!(kind, MessageKind::Image);
        }
        other => panic!("{other:?}"),
    }
    let e = err(r#"{"type":"message:send","room":"x","content":"hi","kind":"system"}"#);
    assert_eq!(e.error.code, ErrorCode::Forbidden);
    let e = err(r#"{"type":"message:send","room":"x","content":"hi","replyTo":""}"#);
    assert_eq!(e.error.code, ErrorCode::BadRequest);
    assert_eq!(
        ok(r#"{"type":"message:edit","room":"x","messageId":"m","content":"new"}"#).command,
        Command::Lifecycle(LifecycleCommand::Edit {
            room: "x".into(),
            message_id: "m".into(),
            content: "new".into(),
            metadata: None,
        })
    );
    let e = err(r#"{"type":"message:edit","room":"x","messageId":"m"}"#);
    assert_eq!(e.error.code, ErrorCode::BadRequest);
    let e = err(r#"{"type":"message:delete","room":"x"}"#);
    assert_eq!(e.error.code, ErrorCode::BadRequest);
    assert_eq!(
        ok(r#"{"type":"room:read","room":"x","seq":4}"#).command,
        Command::Lifecycle(LifecycleCommand::Read {
            room: "x".into(),
            seq: 4
        })
    );
    let e = err(r#"{"type":"room:read","room":"x"}"#);
    assert_eq!(e.error.code, ErrorCode::BadRequest);
    assert_eq!(
        ok(r#"{"type":"message:delete","room":"x","messageId":"m"}"#).command,
        Command::Lifecycle(LifecycleCommand::Delete {
            room: "x".into(),
            message_id: "m".into(),
        })
    );
}
